package allocatortest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

var mp = resources.MustParse

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func prop(fw, role, agent, res string) allocator.Proposal {
	return allocator.Proposal{FrameworkID: fw, Role: role, AgentID: agent, Resources: mp(res)}
}

// TestValidation feeds the Sim hand-written proposals and checks that it
// drops exactly those the master would, saying why, and books the others.
func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offers  []allocator.Proposal
		invalid []string // reasons, in order
		booked  []string
	}{
		{name: "valid", offers: []allocator.Proposal{prop("f1", "r", "a1", "cpus:1;mem:1024")},
			booked: []string{"f1/r@a1 cpus:1;mem:1024"}},
		{name: "unknown agent", offers: []allocator.Proposal{prop("f1", "r", "a9", "cpus:1")},
			invalid: []string{"unknown agent"}},
		{name: "inactive agent", offers: []allocator.Proposal{prop("f1", "r", "a2", "cpus:1")},
			invalid: []string{"agent is inactive"}},
		{name: "unknown framework", offers: []allocator.Proposal{prop("f9", "r", "a1", "cpus:1")},
			invalid: []string{"unknown framework"}},
		{name: "inactive framework", offers: []allocator.Proposal{prop("f2", "r", "a1", "cpus:1")},
			invalid: []string{"framework is inactive"}},
		{name: "unsubscribed role", offers: []allocator.Proposal{prop("f1", "s", "a1", "cpus:1")},
			invalid: []string{"framework is not subscribed to role s"}},
		{name: "suppressed role", offers: []allocator.Proposal{prop("f3", "s", "a1", "cpus:1")},
			invalid: []string{"framework suppressed offers for role s"}},
		{name: "empty", offers: []allocator.Proposal{{FrameworkID: "f1", Role: "r", AgentID: "a1"}},
			invalid: []string{"empty offer"}},
		{name: "more than the agent has", offers: []allocator.Proposal{prop("f1", "r", "a1", "cpus:5")},
			invalid: []string{"not free on the agent, which has cpus:3;mem:3072;ports:[31000-31009]"}},
		{name: "already offered", offers: []allocator.Proposal{prop("f3", "r", "a1", "cpus:1;ports:[31010-31010]")},
			invalid: []string{"not free on the agent"}},
		{name: "double-booked in one response", offers: []allocator.Proposal{
			prop("f1", "r", "a1", "cpus:2"), prop("f3", "r", "a1", "cpus:2")},
			invalid: []string{"not free on the agent, which has cpus:1;mem:3072;ports:[31000-31009]"},
			booked:  []string{"f1/r@a1 cpus:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFake()
			s := NewSim(p)
			must(t, s.AddAgent(allocator.Agent{ID: "a1", Total: mp("cpus:4;mem:4096;ports:[31000-31010]"), Active: true}))
			must(t, s.AddAgent(allocator.Agent{ID: "a2", Total: mp("cpus:4;mem:4096")}))
			must(t, s.AddFramework(allocator.Framework{ID: "f1", Roles: []string{"r"}, Active: true}))
			must(t, s.AddFramework(allocator.Framework{ID: "f2", Roles: []string{"r"}}))
			must(t, s.AddFramework(allocator.Framework{ID: "f3", Roles: []string{"r", "s"}, SuppressedRoles: []string{"s"}, Active: true}))
			// An outstanding offer holds part of a1.
			p.script = &allocator.AllocateResponse{Offers: []allocator.Proposal{prop("f1", "r", "a1", "cpus:1;mem:1024;ports:[31010-31010]")}}
			s.MustAllocate(t, 1000)

			p.script = &allocator.AllocateResponse{Offers: tc.offers}
			c, err := s.Allocate(2000)
			if c == nil {
				t.Fatal(err)
			}
			if (err != nil) != (len(tc.invalid) > 0) {
				t.Fatalf("error %v, want one exactly when a proposal is invalid", err)
			}
			if len(c.Invalid) != len(tc.invalid) {
				t.Fatalf("invalid %v, want %q", c.Invalid, tc.invalid)
			}
			for i, r := range c.Invalid {
				if !strings.Contains(r.Reason, tc.invalid[i]) || !strings.Contains(err.Error(), r.Reason) {
					t.Errorf("invalid %s: %q (error %v), want %q", DescribeProposal(r.Proposal), r.Reason, err, tc.invalid[i])
				}
			}
			var booked []string
			for _, o := range s.Offers()[1:] {
				booked = append(booked, DescribeProposal(o))
			}
			if !slices.Equal(booked, tc.booked) || len(c.Offers) != len(tc.booked) {
				t.Errorf("booked %q (cycle offers %d), want %q", booked, len(c.Offers), tc.booked)
			}
			if n := len(s.PendingDeltas()); n != len(tc.booked) {
				t.Errorf("%d pending deltas, want one Allocated per booked offer", n)
			}
		})
	}
}

// TestDeltaStream runs the safety workloads against the fake, whose SDK
// mirror rejects any inconsistent delta, then checks that the mirror holds
// exactly the Sim's books.
func TestDeltaStream(t *testing.T) {
	for _, limits := range []bool{false, true} {
		for seed := uint64(1); seed <= 4; seed++ {
			p := newFake()
			s := NewSim(p)
			if err := RunSafety(s, seed, 200, limits); err != nil {
				t.Fatalf("seed %d, limits %v: %v", seed, limits, err)
			}
			if _, err := s.call(); err != nil { // flush the pending deltas
				t.Fatal(err)
			}
			snap := s.Snapshot()
			mirror := p.state
			for _, c := range []struct {
				what      string
				got, want any
			}{
				{"allocations", mirror.Allocations(), snap.Allocations},
				{"tasks", mirror.Tasks(), snap.Tasks},
				{"demands", mirror.Demands(), snap.Demands},
				// The mirror keeps no redundant filter; the Sim keeps
				// every decline, as the master does.
				{"filters", mirror.Filters(s.Now()), sdk.CompactFilters(snap.Filters)},
				{"frameworks", len(mirror.Frameworks()), len(snap.Frameworks)},
				{"agents", mirror.AgentIDs(), agentIDs(snap.Agents)},
			} {
				if g, w := describeAny(c.got), describeAny(c.want); g != w {
					t.Errorf("seed %d, limits %v: the plugin's mirror holds %s\n%s\nthe Sim's books\n%s", seed, limits, c.what, g, w)
				}
			}
			if len(snap.Tasks) == 0 || p.gaps != 0 {
				t.Errorf("seed %d: %d tasks, %d version gaps: the workload should run tasks and never lose the version", seed, len(snap.Tasks), p.gaps)
			}
		}
	}
}

func agentIDs(as []allocator.Agent) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// describeAny renders allocations, tasks and demands by their text forms,
// so that resources compare by value.
func describeAny(v any) string {
	var lines []string
	switch v := v.(type) {
	case []allocator.Allocation:
		for _, a := range v {
			lines = append(lines, a.FrameworkID+"/"+a.Role+"@"+a.AgentID+" "+a.Resources.String())
		}
	case []allocator.Task:
		for _, t := range v {
			lines = append(lines, DescribeTask(t))
		}
	case []allocator.Demand:
		for _, d := range v {
			l := d.FrameworkID + "/" + d.Role
			for _, sh := range d.Shapes {
				l += " " + formatShape(sh)
			}
			lines = append(lines, l)
		}
	case []allocator.Filter:
		for _, f := range v {
			lines = append(lines, fmt.Sprintf("%s/%s@%s %s until=%d", f.FrameworkID, f.Role, f.AgentID, f.Resources, f.ExpiresAt))
		}
	case []allocator.Proposal:
		for _, p := range v {
			lines = append(lines, DescribeProposal(p))
		}
	default:
		return fmt.Sprint(v)
	}
	return strings.Join(lines, "\n")
}

// TestVersionGap: a plugin that lost its state is re-Init'ed from a
// snapshot and asked again, as the master does.
func TestVersionGap(t *testing.T) {
	p := newFake()
	s := NewSim(p)
	must(t, s.AddAgent(allocator.Agent{ID: "a1", Total: mp("cpus:4;mem:4096"), Active: true}))
	must(t, s.AddFramework(allocator.Framework{ID: "f1", Roles: []string{"r"}, Active: true}))
	s.MustAllocate(t, 1000)
	_, err := s.Launch("f1", "a1", mp("cpus:1;mem:1024"), 0)
	must(t, err)
	p.gap = true
	c := s.MustAllocate(t, 2000)
	if p.inits != 2 || s.Reinits() != 1 {
		t.Fatalf("plugin Init'ed %d times, Sim counts %d re-Inits; want 2 and 1", p.inits, s.Reinits())
	}
	if got := describeAny(c.Offers); !strings.Contains(got, "cpus:3;mem:3072") {
		t.Fatalf("after the re-Init the plugin offered %s, want the rest of a1", got)
	}
}

// TestGuaranteeRole: a task counts against its own role's guarantee or
// its nearest ancestor's; guarantees of farther ancestors do not add up.
func TestGuaranteeRole(t *testing.T) {
	s := NewSim(newFake())
	must(t, s.SetRole(allocator.Role{Name: "eng", Guarantee: mp("cpus:4")}))
	must(t, s.SetRole(allocator.Role{Name: "eng/ml", Guarantee: mp("cpus:1")}))
	must(t, s.SetRole(allocator.Role{Name: "ops", Weight: 2}))
	for role, want := range map[string]string{
		"eng": "eng", "eng/ml": "eng/ml", "eng/ml/train": "eng/ml", "eng/web": "eng", "ops": "", "ops/x": "", "other": "",
	} {
		if got := s.guaranteeRole(role); got != want {
			t.Errorf("guarantee role of %s = %q, want %q", role, got, want)
		}
	}
	for _, tc := range []struct {
		used, guarantee string
		fits            bool
	}{
		{"cpus:4;mem:99999", "cpus:4", true}, // mem is not named
		{"cpus:4.001", "cpus:4", false},
		{"cpus:1;mem:2048", "cpus:4;mem:2048", true},
		{"cpus:1;mem:2049", "cpus:4;mem:2048", false},
	} {
		if got := fitsGuarantee(mp(tc.used), mp(tc.guarantee)); got != tc.fits {
			t.Errorf("fitsGuarantee(%s, %s) = %v", tc.used, tc.guarantee, got)
		}
	}
}

func TestRunGreedy(t *testing.T) {
	s := NewSim(newFake())
	must(t, s.AddAgent(allocator.Agent{ID: "a1", Total: mp("cpus:9;mem:18432"), Active: true}))
	must(t, s.AddFramework(allocator.Framework{ID: "A", Roles: []string{"a"}, Active: true}))
	must(t, s.AddFramework(allocator.Framework{ID: "B", Roles: []string{"b"}, Active: true}))
	out, err := s.RunGreedy(Workload{Frameworks: []Greedy{
		{Framework: "A", Task: mp("cpus:1;mem:4096"), PerOffer: 1},
		{Framework: "B", Task: mp("cpus:3;mem:1024"), Demand: true},
	}})
	must(t, err)
	// First-fit always offers to A, which takes one task per offer until
	// no memory is left; it then declines with a filter and B takes what
	// fits in the rest in one go.
	if out.Launched["A"] != 4 || out.Launched["B"] != 1 || len(out.Last.Offers) != 0 {
		t.Fatalf("launched %v in %d cycles, last cycle offered %d; want A=4 B=1 and a final cycle without offers",
			out.Launched, out.Cycles, len(out.Last.Offers))
	}
	if d := s.Demands(); len(d) != 1 || d[0].FrameworkID != "B" || d[0].Shapes[0].Count != UnlimitedDemand {
		t.Fatalf("demands %v, want B's unlimited one", d)
	}
}
