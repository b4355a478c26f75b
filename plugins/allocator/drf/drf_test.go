package drf

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/allocator/allocatortest"
	"github.com/corral-project/corral/sdk/resources"
)

var mp = resources.MustParse

func fw(id string, roles ...string) allocator.Framework {
	return allocator.Framework{ID: id, Roles: roles, Active: true}
}

// gpuFW is a framework that declared GPU_RESOURCES: only such frameworks
// are offered agents with gpus.
func gpuFW(id string, roles ...string) allocator.Framework {
	f := fw(id, roles...)
	f.Capabilities = []string{allocator.CapabilityGPUResources}
	return f
}

func agent(id, total string) allocator.Agent {
	return allocator.Agent{ID: id, Total: mp(total), Active: true}
}

// newSim drives a fresh DRF plugin configured with config.
func newSim(t *testing.T, config string) *allocatortest.Sim {
	t.Helper()
	s := allocatortest.NewSim(NewPlugin())
	must(t, s.Configure(config))
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// allocate runs one cycle with at most maxOffers offers (0: no limit).
func allocate(t *testing.T, s *allocatortest.Sim, now allocator.LogicalTime, maxOffers int) ([]allocator.Proposal, map[string]float64) {
	t.Helper()
	s.MaxOffers = maxOffers
	c := s.MustAllocate(t, now)
	return c.Offers, c.Metrics
}

func describe(offers []allocator.Proposal) []string {
	out := []string{}
	for _, o := range offers {
		out = append(out, allocatortest.DescribeProposal(o))
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

// greedy runs frameworks that launch one task of their shape per offer
// until nothing left is usable by any of them.
func greedy(t *testing.T, s *allocatortest.Sim, tasks map[string]string) *allocatortest.Outcome {
	t.Helper()
	var w allocatortest.Workload
	for _, id := range slices.Sorted(maps.Keys(tasks)) {
		w.Frameworks = append(w.Frameworks, allocatortest.Greedy{Framework: id, Task: mp(tasks[id]), PerOffer: 1})
	}
	out, err := s.RunGreedy(w)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

// The worked example of the DRF paper (Ghodsi et al., NSDI 2011, section
// 4): 9 CPUs and 18 GB, user A runs <1 CPU, 4 GB> tasks and user B
// <3 CPUs, 1 GB>. DRF gives A three tasks and B two, equalizing both
// dominant shares at 2/3.
func TestDRFPaperExample(t *testing.T) {
	s := newSim(t, "{}")
	must(t, s.AddAgent(agent("s1", "cpus:9;mem:18432")))
	must(t, s.AddFramework(fw("A", "a")))
	must(t, s.AddFramework(fw("B", "b")))
	out := greedy(t, s, map[string]string{"A": "cpus:1;mem:4096", "B": "cpus:3;mem:1024"})
	if out.Launched["A"] != 3 || out.Launched["B"] != 2 {
		t.Fatalf("tasks: %v, want A=3 B=2", out.Launched)
	}
	if got := s.FrameworkTasks("A"); !got.Equal(mp("cpus:3;mem:12288")) {
		t.Errorf("A holds %s", got)
	}
	for _, k := range []string{"share/framework/A", "share/framework/B", "share/role/a", "share/role/b"} {
		if !near(out.Last.Metrics[k], 2.0/3) {
			t.Errorf("%s = %v, want 2/3", k, out.Last.Metrics[k])
		}
	}
}

func TestWeightedRoles(t *testing.T) {
	s := newSim(t, "{}")
	must(t, s.AddAgent(agent("s1", "cpus:30;mem:30720")))
	must(t, s.AddFramework(fw("f-light", "light")))
	must(t, s.AddFramework(fw("f-heavy", "heavy")))
	must(t, s.SetRole(allocator.Role{Name: "heavy", Weight: 2}))
	out := greedy(t, s, map[string]string{"f-light": "cpus:1;mem:1024", "f-heavy": "cpus:1;mem:1024"})
	count := out.Launched
	if count["f-light"]+count["f-heavy"] != 30 {
		t.Fatalf("tasks %v, want the agent's 30 slots filled", count)
	}
	ratio := float64(count["f-heavy"]) / float64(count["f-light"])
	if ratio < 1.8 || ratio > 2.2 {
		t.Errorf("heavy/light task ratio %.2f (%v), want about 2 for weight 2 vs 1", ratio, count)
	}
	// Weighted shares are what DRF equalizes.
	m := out.Last.Metrics
	if d := math.Abs(m["share/role/heavy"] - m["share/role/light"]); d > 1.0/30+1e-9 {
		t.Errorf("weighted role shares differ by %v: %v", d, m)
	}
}

func TestDeclineFilter(t *testing.T) {
	s := newSim(t, "{}")
	must(t, s.AddAgent(agent("a1", "cpus:4;mem:4096")))
	must(t, s.AddFramework(fw("f1", "r")))
	offers, _ := allocate(t, s, 1000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:4;mem:4096")
	must(t, s.Decline("f1", "a1", 5))
	for _, now := range []allocator.LogicalTime{2000, 5999} {
		offers, _ = allocate(t, s, now, 0)
		wantOffers(t, offers) // filtered until 1000 + 5 s
	}
	// Another framework is not affected by f1's filter.
	must(t, s.AddFramework(fw("f2", "r")))
	offers, _ = allocate(t, s, 5999, 0)
	wantOffers(t, offers, "f2/r@a1 cpus:4;mem:4096")
	must(t, s.Decline("f2", "a1", 0))
	offers, _ = allocate(t, s, 6000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:4;mem:4096") // expired; f1 first by ID
}

func TestFilterOnlyCoversDeclinedResources(t *testing.T) {
	s := newSim(t, "{}")
	must(t, s.AddAgent(agent("a1", "cpus:4;mem:4096")))
	must(t, s.AddFramework(fw("f1", "r")))
	allocate(t, s, 1000, 0)
	must(t, s.Decline("f1", "a1", 60))
	offers, _ := allocate(t, s, 2000, 0)
	wantOffers(t, offers)
	// The agent grows: the new offer is not a subset of what was declined.
	must(t, s.UpdateAgent(agent("a1", "cpus:8;mem:4096")))
	offers, _ = allocate(t, s, 3000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:8;mem:4096")
}

func TestSuppressRevive(t *testing.T) {
	s := newSim(t, "{}")
	must(t, s.AddAgent(agent("a1", "cpus:4;mem:4096")))
	must(t, s.AddFramework(fw("f1", "r1", "r2")))
	must(t, s.Suppress("f1", "r1"))
	offers, _ := allocate(t, s, 1000, 0)
	wantOffers(t, offers, "f1/r2@a1 cpus:4;mem:4096")
	must(t, s.Decline("f1", "a1", 3600))
	must(t, s.Suppress("f1")) // all roles
	offers, _ = allocate(t, s, 2000, 0)
	wantOffers(t, offers)
	must(t, s.Revive("f1", "r1"))
	offers, _ = allocate(t, s, 3000, 0)
	wantOffers(t, offers, "f1/r1@a1 cpus:4;mem:4096")
	must(t, s.Decline("f1", "a1", 3600))
	// Both roles now carry an hour-long filter and r2 is suppressed; a
	// revive of all roles clears both.
	offers, _ = allocate(t, s, 4000, 0)
	wantOffers(t, offers)
	must(t, s.Revive("f1"))
	offers, _ = allocate(t, s, 5000, 0)
	if len(offers) != 1 || offers[0].FrameworkID != "f1" {
		t.Fatalf("after revive: %q", describe(offers))
	}
}

func TestMinOffer(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		s := newSim(t, "{}")
		must(t, s.AddAgent(agent("a1", "cpus:1;mem:16")))
		must(t, s.AddFramework(fw("f1", "r")))
		allocate(t, s, 1000, 0)
		task, err := s.Launch("f1", "a1", mp("cpus:0.995;mem:16"), 0)
		must(t, err)
		offers, _ := allocate(t, s, 2000, 0)
		wantOffers(t, offers) // cpus:0.005 is below cpus:0.01 and there is no mem
		must(t, s.Finish("f1", task.ID))
		offers, _ = allocate(t, s, 3000, 0)
		wantOffers(t, offers, "f1/r@a1 cpus:1;mem:16") // meets cpus:0.01
	})
	t.Run("mem alternative", func(t *testing.T) {
		s := newSim(t, "{}")
		must(t, s.AddAgent(agent("a1", "cpus:0.005;mem:64")))
		must(t, s.AddFramework(fw("f1", "r")))
		offers, _ := allocate(t, s, 1000, 0)
		wantOffers(t, offers, "f1/r@a1 cpus:0.005;mem:64")
	})
	t.Run("configured", func(t *testing.T) {
		s := newSim(t, `{"min_offer":"cpus:1;mem:512|gpus:1"}`)
		must(t, s.AddAgent(agent("a1", "cpus:0.5;mem:4096")))
		must(t, s.AddAgent(agent("a2", "cpus:2;mem:256")))
		must(t, s.AddAgent(agent("a3", "cpus:1;mem:512")))
		must(t, s.AddAgent(agent("a4", "gpus:1")))
		must(t, s.AddFramework(gpuFW("f1", "r")))
		offers, _ := allocate(t, s, 1000, 0)
		wantOffers(t, offers, "f1/r@a3 cpus:1;mem:512", "f1/r@a4 gpus:1")
	})
}

func TestInactive(t *testing.T) {
	s := newSim(t, "{}")
	inactive := agent("a1", "cpus:4;mem:4096")
	inactive.Active = false
	must(t, s.AddAgent(inactive))
	must(t, s.AddAgent(agent("a2", "cpus:4;mem:4096")))
	must(t, s.AddFramework(allocator.Framework{ID: "f1", Roles: []string{"r"}}))
	offers, _ := allocate(t, s, 1000, 0)
	wantOffers(t, offers) // the only framework is inactive
	must(t, s.SetFrameworkActive("f1", true))
	offers, _ = allocate(t, s, 2000, 0)
	wantOffers(t, offers, "f1/r@a2 cpus:4;mem:4096") // a1 is inactive
	_, err := s.Launch("f1", "a2", mp("cpus:4;mem:4096"), 0)
	must(t, err)
	must(t, s.UpdateAgent(agent("a1", "cpus:4;mem:4096")))
	offers, _ = allocate(t, s, 3000, 0)
	wantOffers(t, offers, "f1/r@a1 cpus:4;mem:4096")
	// Deactivating f1 rescinds its offer on a1; it keeps its task's share
	// on a2 but gets nothing more.
	must(t, s.AddFramework(fw("f2", "r")))
	must(t, s.SetFrameworkActive("f1", false))
	offers, _ = allocate(t, s, 4000, 0)
	wantOffers(t, offers, "f2/r@a1 cpus:4;mem:4096")
}

func TestMaxOffers(t *testing.T) {
	s := newSim(t, "{}")
	for i := 1; i <= 5; i++ {
		must(t, s.AddAgent(agent(fmt.Sprintf("a%d", i), "cpus:1;mem:1024")))
	}
	must(t, s.AddFramework(fw("f1", "r")))
	offers, _ := allocate(t, s, 1000, 2)
	wantOffers(t, offers, "f1/r@a1 cpus:1;mem:1024", "f1/r@a2 cpus:1;mem:1024")
	offers, _ = allocate(t, s, 2000, 2)
	wantOffers(t, offers, "f1/r@a3 cpus:1;mem:1024", "f1/r@a4 cpus:1;mem:1024")
	offers, _ = allocate(t, s, 3000, 0)
	wantOffers(t, offers, "f1/r@a5 cpus:1;mem:1024")
}

// TestFairAcrossAgents checks that, with many agents in one cycle, offers
// alternate between roles as shares grow.
func TestFairAcrossAgents(t *testing.T) {
	s := newSim(t, "{}")
	for i := 1; i <= 4; i++ {
		must(t, s.AddAgent(agent(fmt.Sprintf("a%d", i), "cpus:2;mem:2048")))
	}
	must(t, s.AddFramework(fw("f1", "r1")))
	must(t, s.AddFramework(fw("f2", "r2")))
	must(t, s.AddFramework(fw("f3", "r2")))
	offers, metrics := allocate(t, s, 1000, 0)
	wantOffers(t, offers,
		"f1/r1@a1 cpus:2;mem:2048",
		"f2/r2@a2 cpus:2;mem:2048",
		"f1/r1@a3 cpus:2;mem:2048", // r1 and r2 tie at 1/4; r1 sorts first
		"f3/r2@a4 cpus:2;mem:2048", // within r2, f3 is below f2
	)
	if metrics["share/role/r1"] != 0 {
		t.Errorf("metrics describe the state before this cycle's proposals: %v", metrics)
	}
	_, metrics = allocate(t, s, 2000, 0)
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
			s := newSim(t, tc.config)
			must(t, s.AddAgent(agent("a1", "cpus:1;mem:512;gpus:4")))
			must(t, s.AddAgent(agent("a2", "cpus:2;mem:512")))
			must(t, s.AddFramework(gpuFW("f1", "r1")))
			must(t, s.AddFramework(gpuFW("f2", "r2")))
			offers, _ := allocate(t, s, 1000, 0)
			wantOffers(t, offers, "f1/r1@a1 cpus:1;gpus:4;mem:512", "f2/r2@a2 cpus:2;mem:512")
			for _, o := range offers {
				_, err := s.Launch(o.FrameworkID, o.AgentID, o.Resources, 0)
				must(t, err)
			}
			must(t, s.AddAgent(agent("a3", "cpus:5;mem:5120")))
			offers, _ = allocate(t, s, 2000, 0)
			wantOffers(t, offers, tc.want)
		})
	}
}

func TestDeterministicOrder(t *testing.T) {
	run := func(config string) []string {
		s := newSim(t, config)
		for i := 0; i < 20; i++ {
			must(t, s.AddAgent(agent(fmt.Sprintf("a%02d", i), "cpus:1;mem:1024")))
		}
		must(t, s.AddFramework(fw("f1", "r")))
		offers, _ := allocate(t, s, 1000, 3)
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

// TestProperties runs the testkit's property checks, directly and with
// gpus excluded from fairness.
func TestProperties(t *testing.T) {
	for _, tc := range []struct {
		config  string
		exclude []string
	}{
		{`{}`, nil},
		{`{"fairness_exclude":["gpus"]}`, []string{"gpus"}},
	} {
		t.Run(tc.config, func(t *testing.T) {
			allocatortest.Properties{FairnessExclude: tc.exclude}.Check(t, direct, tc.config)
		})
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

func TestContract(t *testing.T) { plugin.TestContract(t) }
