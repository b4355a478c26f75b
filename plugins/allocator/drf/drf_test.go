package drf

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/sdk/resources"
)

var mp = resources.MustParse

func fw(id string, roles ...string) allocator.Framework {
	return allocator.Framework{ID: id, Roles: roles, Active: true}
}

func describe(offers []allocator.Proposal) []string {
	out := []string{}
	for _, o := range offers {
		out = append(out, fmt.Sprintf("%s/%s@%s %s", o.FrameworkID, o.Role, o.AgentID, o.Resources))
	}
	return out
}

func wantOffers(t *testing.T, got []allocator.Proposal, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if g := describe(got); !slices.Equal(g, want) {
		t.Fatalf("offers:\n got  %q\n want %q", g, want)
	}
}

// runTasks plays frameworks that, whenever offered, launch one task of
// their size and decline the rest with refuse_seconds 0. It stops when an
// offer fits no framework's task or nothing is left to offer, and returns the last cycle's metrics.
func runTasks(t *testing.T, s *sim, agent string, task map[string]resources.Resources) (map[string]int, map[string]float64) {
	t.Helper()
	count := map[string]int{}
	for cycle := 0; cycle < 1000; cycle++ {
		offers, metrics := s.mustAllocate(allocator.LogicalTime(1000*(cycle+1)), 0)
		if len(offers) == 0 {
			return count, metrics // the agent is full
		}
		if len(offers) != 1 {
			t.Fatalf("cycle %d: want one offer of the single agent, got %q", cycle, describe(offers))
		}
		o := offers[0]
		if !o.Resources.Contains(task[o.FrameworkID]) {
			for id, r := range task {
				if o.Resources.Contains(r) {
					t.Fatalf("cycle %d: offer %s went to %s, which cannot use it, while %s could", cycle, o.Resources, o.FrameworkID, id)
				}
			}
			if err := s.decline(o.FrameworkID, agent, 0); err != nil {
				t.Fatal(err)
			}
			return count, metrics
		}
		if err := s.accept(o.FrameworkID, agent, task[o.FrameworkID], 0); err != nil {
			t.Fatal(err)
		}
		count[o.FrameworkID]++
	}
	t.Fatal("no convergence after 1000 cycles")
	return nil, nil
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

// The worked example of the DRF paper (Ghodsi et al., NSDI 2011, section
// 4): 9 CPUs and 18 GB, user A runs <1 CPU, 4 GB> tasks and user B
// <3 CPUs, 1 GB>. DRF gives A three tasks and B two, equalizing both
// dominant shares at 2/3.
func TestDRFPaperExample(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	s.addAgent("s1", mp("cpus:9;mem:18432"), true)
	s.addFramework(fw("A", "a"))
	s.addFramework(fw("B", "b"))
	count, metrics := runTasks(t, s, "s1", map[string]resources.Resources{
		"A": mp("cpus:1;mem:4096"),
		"B": mp("cpus:3;mem:1024"),
	})
	if count["A"] != 3 || count["B"] != 2 {
		t.Fatalf("tasks: A=%d B=%d, want A=3 B=2", count["A"], count["B"])
	}
	if got := s.taskTotal("A"); !got.Equal(mp("cpus:3;mem:12288")) {
		t.Errorf("A holds %s", got)
	}
	for _, k := range []string{"share/framework/A", "share/framework/B", "share/role/a", "share/role/b"} {
		if !near(metrics[k], 2.0/3) {
			t.Errorf("%s = %v, want 2/3", k, metrics[k])
		}
	}
}

func TestWeightedRoles(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	s.addAgent("s1", mp("cpus:30;mem:30720"), true)
	s.addFramework(fw("f-light", "light"))
	s.addFramework(fw("f-heavy", "heavy"))
	s.setWeight("heavy", 2)
	task := mp("cpus:1;mem:1024")
	count, metrics := runTasks(t, s, "s1", map[string]resources.Resources{"f-light": task, "f-heavy": task})
	if count["f-light"]+count["f-heavy"] != 30 {
		t.Fatalf("tasks %v, want the agent's 30 slots filled", count)
	}
	ratio := float64(count["f-heavy"]) / float64(count["f-light"])
	if ratio < 1.8 || ratio > 2.2 {
		t.Errorf("heavy/light task ratio %.2f (%v), want about 2 for weight 2 vs 1", ratio, count)
	}
	// Weighted shares are what DRF equalizes.
	if d := math.Abs(metrics["share/role/heavy"] - metrics["share/role/light"]); d > 1.0/30+1e-9 {
		t.Errorf("weighted role shares differ by %v: %v", d, metrics)
	}
}

func TestDeclineFilter(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	s.addAgent("a1", mp("cpus:4;mem:4096"), true)
	s.addFramework(fw("f1", "r"))
	offers, _ := s.mustAllocate(1000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:4;mem:4096")
	if err := s.decline("f1", "a1", 5); err != nil {
		t.Fatal(err)
	}
	for _, now := range []allocator.LogicalTime{2000, 5999} {
		offers, _ = s.mustAllocate(now, 0)
		wantOffers(t, offers) // filtered until 1000 + 5 s
	}
	// Another framework is not affected by f1's filter.
	s.addFramework(fw("f2", "r"))
	offers, _ = s.mustAllocate(5999, 0)
	wantOffers(t, offers, "f2/r@a1 cpus:4;mem:4096")
	if err := s.decline("f2", "a1", 0); err != nil {
		t.Fatal(err)
	}
	offers, _ = s.mustAllocate(6000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:4;mem:4096") // expired; f1 first by ID
}

func TestFilterOnlyCoversDeclinedResources(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	s.addAgent("a1", mp("cpus:4;mem:4096"), true)
	s.addFramework(fw("f1", "r"))
	s.mustAllocate(1000, 0)
	if err := s.decline("f1", "a1", 60); err != nil {
		t.Fatal(err)
	}
	offers, _ := s.mustAllocate(2000, 0)
	wantOffers(t, offers)
	// The agent grows: the new offer is not a subset of what was declined.
	s.updateAgent(allocator.Agent{ID: "a1", Total: mp("cpus:8;mem:4096"), Active: true})
	offers, _ = s.mustAllocate(3000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:8;mem:4096")
}

func TestSuppressRevive(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	s.addAgent("a1", mp("cpus:4;mem:4096"), true)
	s.addFramework(fw("f1", "r1", "r2"))
	s.suppress("f1", []string{"r1"})
	offers, _ := s.mustAllocate(1000, 0)
	wantOffers(t, offers, "f1/r2@a1 cpus:4;mem:4096")
	if err := s.decline("f1", "a1", 3600); err != nil {
		t.Fatal(err)
	}
	s.suppress("f1", nil) // all roles
	offers, _ = s.mustAllocate(2000, 0)
	wantOffers(t, offers)
	s.revive("f1", []string{"r1"})
	offers, _ = s.mustAllocate(3000, 0)
	wantOffers(t, offers, "f1/r1@a1 cpus:4;mem:4096")
	if err := s.decline("f1", "a1", 3600); err != nil {
		t.Fatal(err)
	}
	// Both roles now carry an hour-long filter and r2 is suppressed; a
	// revive of all roles clears both.
	offers, _ = s.mustAllocate(4000, 0)
	wantOffers(t, offers)
	s.revive("f1", nil)
	offers, _ = s.mustAllocate(5000, 0)
	if len(offers) != 1 || offers[0].FrameworkID != "f1" {
		t.Fatalf("after revive: %q", describe(offers))
	}
}

func TestMinOffer(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		s := newSim(t, NewPlugin(), "{}")
		s.addAgent("a1", mp("cpus:1;mem:16"), true)
		s.addFramework(fw("f1", "r"))
		s.mustAllocate(1000, 0)
		if err := s.accept("f1", "a1", mp("cpus:0.995;mem:16"), 0); err != nil {
			t.Fatal(err)
		}
		offers, _ := s.mustAllocate(2000, 0)
		wantOffers(t, offers) // cpus:0.005 is below cpus:0.01 and there is no mem
		if err := s.finish("f1", "a1", mp("cpus:0.995;mem:16")); err != nil {
			t.Fatal(err)
		}
		offers, _ = s.mustAllocate(3000, 0)
		wantOffers(t, offers, "f1/r@a1 cpus:1;mem:16") // meets cpus:0.01
	})
	t.Run("mem alternative", func(t *testing.T) {
		s := newSim(t, NewPlugin(), "{}")
		s.addAgent("a1", mp("cpus:0.005;mem:64"), true)
		s.addFramework(fw("f1", "r"))
		offers, _ := s.mustAllocate(1000, 0)
		wantOffers(t, offers, "f1/r@a1 cpus:0.005;mem:64")
	})
	t.Run("configured", func(t *testing.T) {
		s := newSim(t, NewPlugin(), `{"min_offer":"cpus:1;mem:512|gpus:1"}`)
		s.addAgent("a1", mp("cpus:0.5;mem:4096"), true)
		s.addAgent("a2", mp("cpus:2;mem:256"), true)
		s.addAgent("a3", mp("cpus:1;mem:512"), true)
		s.addAgent("a4", mp("gpus:1"), true)
		s.addFramework(fw("f1", "r"))
		offers, _ := s.mustAllocate(1000, 0)
		wantOffers(t, offers, "f1/r@a3 cpus:1;mem:512", "f1/r@a4 gpus:1")
	})
}

func TestInactive(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	s.addAgent("a1", mp("cpus:4;mem:4096"), false)
	s.addAgent("a2", mp("cpus:4;mem:4096"), true)
	s.addFramework(allocator.Framework{ID: "f1", Roles: []string{"r"}})
	offers, _ := s.mustAllocate(1000, 0)
	wantOffers(t, offers) // the only framework is inactive
	s.updateFramework(fw("f1", "r"))
	offers, _ = s.mustAllocate(2000, 0)
	wantOffers(t, offers, "f1/r@a2 cpus:4;mem:4096") // a1 is inactive
	s.updateAgent(allocator.Agent{ID: "a1", Total: mp("cpus:4;mem:4096"), Active: true})
	offers, _ = s.mustAllocate(3000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:4;mem:4096")
	// An inactive framework keeps its share but gets nothing more.
	s.addFramework(fw("f2", "r"))
	s.updateFramework(allocator.Framework{ID: "f1", Roles: []string{"r"}})
	if err := s.decline("f1", "a1", 0); err != nil {
		t.Fatal(err)
	}
	offers, _ = s.mustAllocate(4000, 0)
	wantOffers(t, offers, "f2/r@a1 cpus:4;mem:4096")
}

func TestMaxOffers(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	for i := 1; i <= 5; i++ {
		s.addAgent(fmt.Sprintf("a%d", i), mp("cpus:1;mem:1024"), true)
	}
	s.addFramework(fw("f1", "r"))
	offers, _ := s.mustAllocate(1000, 2)
	wantOffers(t, offers, "f1/r@a1 cpus:1;mem:1024", "f1/r@a2 cpus:1;mem:1024")
	offers, _ = s.mustAllocate(2000, 2)
	wantOffers(t, offers, "f1/r@a3 cpus:1;mem:1024", "f1/r@a4 cpus:1;mem:1024")
	offers, _ = s.mustAllocate(3000, 0)
	wantOffers(t, offers, "f1/r@a5 cpus:1;mem:1024")
}

// TestFairAcrossAgents checks that, with many agents in one cycle, offers
// alternate between roles as shares grow.
func TestFairAcrossAgents(t *testing.T) {
	s := newSim(t, NewPlugin(), "{}")
	for i := 1; i <= 4; i++ {
		s.addAgent(fmt.Sprintf("a%d", i), mp("cpus:2;mem:2048"), true)
	}
	s.addFramework(fw("f1", "r1"))
	s.addFramework(fw("f2", "r2"))
	s.addFramework(fw("f3", "r2"))
	offers, metrics := s.mustAllocate(1000, 0)
	wantOffers(t, offers,
		"f1/r1@a1 cpus:2;mem:2048",
		"f2/r2@a2 cpus:2;mem:2048",
		"f1/r1@a3 cpus:2;mem:2048", // r1 and r2 tie at 1/4; r1 sorts first
		"f3/r2@a4 cpus:2;mem:2048", // within r2, f3 is below f2
	)
	if metrics["share/role/r1"] != 0 {
		t.Errorf("metrics describe the state before this cycle's proposals: %v", metrics)
	}
	_, metrics = s.mustAllocate(2000, 0)
	for k, want := range map[string]float64{"share/role/r1": 0.5, "share/role/r2": 0.5, "share/framework/f2": 0.25} {
		if !near(metrics[k], want) {
			t.Errorf("%s = %v, want %v", k, metrics[k], want)
		}
	}
}

func TestFairnessExclude(t *testing.T) {
	// f1 holds all the GPUs; counting them, it is far ahead of f2.
	// Excluding gpus, f1 (1 of 8 cpus) is behind f2 (2 of 8) and gets the
	// new agent.
	for _, tc := range []struct {
		config, want string
	}{
		{`{}`, "f2/r2@a3 cpus:5;mem:5120"},
		{`{"fairness_exclude":["gpus"]}`, "f1/r1@a3 cpus:5;mem:5120"},
	} {
		t.Run(tc.config, func(t *testing.T) {
			s := newSim(t, NewPlugin(), tc.config)
			s.addAgent("a1", mp("cpus:1;mem:512;gpus:4"), true)
			s.addAgent("a2", mp("cpus:2;mem:512"), true)
			s.addFramework(fw("f1", "r1"))
			s.addFramework(fw("f2", "r2"))
			offers, _ := s.mustAllocate(1000, 0)
			wantOffers(t, offers, "f1/r1@a1 cpus:1;gpus:4;mem:512", "f2/r2@a2 cpus:2;mem:512")
			for _, o := range offers {
				if err := s.accept(o.FrameworkID, o.AgentID, o.Resources, 0); err != nil {
					t.Fatal(err)
				}
			}
			s.addAgent("a3", mp("cpus:5;mem:5120"), true)
			offers, _ = s.mustAllocate(2000, 0)
			wantOffers(t, offers, tc.want)
		})
	}
}

func TestDeterministicOrder(t *testing.T) {
	run := func(config string) []string {
		s := newSim(t, NewPlugin(), config)
		for i := 0; i < 20; i++ {
			s.addAgent(fmt.Sprintf("a%02d", i), mp("cpus:1;mem:1024"), true)
		}
		s.addFramework(fw("f1", "r"))
		offers, _ := s.mustAllocate(1000, 3)
		return describe(offers)
	}
	sorted := run("{}")
	if want := []string{"f1/r@a00 cpus:1;mem:1024", "f1/r@a01 cpus:1;mem:1024", "f1/r@a02 cpus:1;mem:1024"}; !slices.Equal(sorted, want) {
		t.Fatalf("sorted order: %q, want %q", sorted, want)
	}
	seed1, seed1again, seed2 := run(`{"shuffle_seed":1}`), run(`{"shuffle_seed":1}`), run(`{"shuffle_seed":2}`)
	if !slices.Equal(seed1, seed1again) {
		t.Fatalf("same seed, different offers: %q vs %q", seed1, seed1again)
	}
	if slices.Equal(seed1, sorted) || slices.Equal(seed1, seed2) {
		t.Fatalf("shuffle had no effect: sorted %q, seed 1 %q, seed 2 %q", sorted, seed1, seed2)
	}
}

func TestParseConfig(t *testing.T) {
	def := DefaultConfig()
	if len(def.MinOffer) != 2 || !def.MinOffer[0].Equal(mp("cpus:0.01")) || !def.MinOffer[1].Equal(mp("mem:32")) {
		t.Errorf("default min_offer = %v", def.MinOffer)
	}
	cfg, err := ParseConfig([]byte(`{"min_offer":"","fairness_exclude":["gpus"],"shuffle_seed":7}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.MinOffer) != 0 || !slices.Equal(cfg.FairnessExclude, []string{"gpus"}) || cfg.ShuffleSeed != 7 {
		t.Errorf("parsed %+v", cfg)
	}
	for _, tc := range []struct{ config, attr string }{
		{`{"min_offer":"cpus:abc"}`, "min_offer"},
		{`{"min_offer":"cpus:1||mem:2"}`, "min_offer"},
		{`{"min_offer":3}`, "min_offer"},
		{`{"fairness_exclude":"gpus"}`, "fairness_exclude"},
		{`{"fairness_exclude":[""]}`, "fairness_exclude"},
		{`{"shuffle_seed":-1}`, "shuffle_seed"},
		{`{"shuffle_seed":1.5}`, "shuffle_seed"},
		{`{"bogus":1}`, "bogus"},
	} {
		_, err := ParseConfig([]byte(tc.config))
		if err == nil || !strings.Contains(err.Error(), `"`+tc.attr+`"`) {
			t.Errorf("ParseConfig(%s) = %v, want an error naming %q", tc.config, err, tc.attr)
		}
	}
	// The schema's defaults parse to the default config.
	var b strings.Builder
	b.WriteString("{")
	for i, a := range Schema().Attributes {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%s", a.Name, a.DefaultJSON)
	}
	b.WriteString("}")
	fromSchema, err := ParseConfig([]byte(b.String()))
	if err != nil {
		t.Fatalf("schema defaults %s: %v", b.String(), err)
	}
	if len(fromSchema.MinOffer) != len(def.MinOffer) || fromSchema.ShuffleSeed != 0 || len(fromSchema.FairnessExclude) != 0 {
		t.Errorf("schema defaults give %+v, want %+v", fromSchema, def)
	}
}

func TestContract(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		contracttest.Run(t, func(*testing.T) allocator.Allocator { return NewPlugin() })
	})
	t.Run("grpc", func(t *testing.T) {
		contracttest.Run(t, func(t *testing.T) allocator.Allocator { return contracttest.InProcess(t, NewPlugin()) })
	})
	// The real binary, one process per check, as the master starts it.
	t.Run("binary", func(t *testing.T) {
		path, err := pluginBinary()
		if err != nil {
			t.Skip(err.Error())
		}
		contracttest.Run(t, func(t *testing.T) allocator.Allocator { return startBinary(t, path) })
	})
}
