package fairshare

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// These tests drive the engine on hand-built states, one cycle at a time.
// Multi-cycle behaviour through the plugin contract is covered by each
// policy's transcripts and the allocatortest property checks.

var mp = resources.MustParse

func fw(id string, roles ...string) allocator.Framework {
	return allocator.Framework{ID: id, Roles: roles, Active: true}
}

func agent(id, res string) allocator.Agent {
	return allocator.Agent{ID: id, Total: mp(res), Active: true}
}

func demand(fwID, role string, shape string, n int) allocator.Demand {
	return allocator.Demand{FrameworkID: fwID, Role: role, Shapes: []allocator.TaskShape{{Resources: mp(shape), Count: n}}}
}

func state(t *testing.T, snap allocator.Snapshot) *sdk.State {
	t.Helper()
	s := sdk.NewState()
	if err := s.Init(&snap); err != nil {
		t.Fatal(err)
	}
	return s
}

func describe(props []allocator.Proposal) []string {
	out := make([]string, 0, len(props))
	for _, p := range props {
		out = append(out, fmt.Sprintf("%s/%s@%s %s", p.FrameworkID, p.Role, p.AgentID, p.Resources))
	}
	sort.Strings(out)
	return out
}

func want(t *testing.T, got []allocator.Proposal, want ...string) {
	t.Helper()
	sort.Strings(want)
	if d := describe(got); !slices.Equal(d, want) {
		t.Errorf("offers:\n got  %q\n want %q", d, want)
	}
}

// The DRF paper's example, at task granularity: on one 9 CPU / 18 GB
// machine, A's <1 CPU, 4 GB> and B's <3 CPU, 1 GB> tasks end at 3 and 2,
// both at a dominant share of 2/3, in a single cycle.
func TestProgressiveFillingDRFPaper(t *testing.T) {
	s := state(t, allocator.Snapshot{
		Agents:     []allocator.Agent{agent("s1", "cpus:9;mem:18432")},
		Frameworks: []allocator.Framework{fw("A", "a"), fw("B", "b")},
		Demands:    []allocator.Demand{demand("A", "a", "cpus:1;mem:4096", 100), demand("B", "b", "cpus:3;mem:1024", 100)},
	})
	e := New(DefaultOptions(PolicyDRF))
	want(t, e.Allocate(s, 1000, 0), "A/a@s1 cpus:3;mem:12288", "B/b@s1 cpus:6;mem:2048")
	if u := e.Unmet(); len(u) != 2 || u[0].Units != 97 || u[1].Units != 98 {
		t.Errorf("unmet = %+v, want A 97 and B 98 units that fit nowhere", u)
	}
}

// Without a declaration a framework gets Mesos behaviour: whole agents.
func TestNoDemandWholeAgent(t *testing.T) {
	s := state(t, allocator.Snapshot{
		Agents:     []allocator.Agent{agent("s1", "cpus:9;mem:18432")},
		Frameworks: []allocator.Framework{fw("A", "a"), fw("B", "b")},
		Demands:    []allocator.Demand{demand("B", "b", "cpus:3;mem:1024", 1)},
	})
	// A and B tie at 0; role a goes first and takes everything.
	want(t, New(DefaultOptions(PolicyDRF)).Allocate(s, 1000, 0), "A/a@s1 cpus:9;mem:18432")
}

// Outstanding offers cover declared units: they are not asked for twice.
func TestOutstandingOffersCoverDemand(t *testing.T) {
	s := state(t, allocator.Snapshot{
		Agents:      []allocator.Agent{agent("s1", "cpus:8;mem:8192")},
		Frameworks:  []allocator.Framework{fw("A", "a")},
		Demands:     []allocator.Demand{demand("A", "a", "cpus:1;mem:1024", 3)},
		Allocations: []allocator.Allocation{{FrameworkID: "A", Role: "a", AgentID: "s1", Resources: mp("cpus:2;mem:2048")}},
	})
	want(t, New(DefaultOptions(PolicyDRF)).Allocate(s, 1000, 0), "A/a@s1 cpus:1;mem:1024")
}

// Hierarchical weights: eng (weight 3) with two children shares 3:1 with
// ops; inside eng, eng/ml (weight 2) and eng/web (weight 1) share 2:1.
func TestHierarchicalWeights(t *testing.T) {
	var agents []allocator.Agent
	for i := range 24 {
		agents = append(agents, agent(fmt.Sprintf("a%02d", i), "cpus:1;mem:1024"))
	}
	s := state(t, allocator.Snapshot{
		Agents:     agents,
		Frameworks: []allocator.Framework{fw("ml", "eng/ml"), fw("web", "eng/web"), fw("ops", "ops")},
		Roles:      []allocator.Role{{Name: "eng", Weight: 3}, {Name: "eng/ml", Weight: 2}},
	})
	props := New(DefaultOptions(PolicyDRF)).Allocate(s, 1000, 0)
	n := map[string]int{}
	for _, p := range props {
		n[p.FrameworkID]++
	}
	if n["ml"] != 12 || n["web"] != 6 || n["ops"] != 6 {
		t.Errorf("agents per framework = %v, want ml 12, web 6, ops 6", n)
	}
}

// Agents with gpus go only to frameworks that declare GPU_RESOURCES.
func TestScarceResources(t *testing.T) {
	gpuFW := fw("g", "r")
	gpuFW.Capabilities = []string{allocator.CapabilityGPUResources}
	s := state(t, allocator.Snapshot{
		Agents:     []allocator.Agent{agent("a1", "cpus:4;mem:4096;gpus:2"), agent("a2", "cpus:4;mem:4096")},
		Frameworks: []allocator.Framework{fw("c", "r"), gpuFW},
	})
	want(t, New(DefaultOptions(PolicyDRF)).Allocate(s, 1000, 0), "g/r@a1 cpus:4;gpus:2;mem:4096", "c/r@a2 cpus:4;mem:4096")

	opts := DefaultOptions(PolicyDRF)
	opts.ScarceResources = nil
	want(t, New(opts).Allocate(s, 1000, 0), "c/r@a1 cpus:4;gpus:2;mem:4096", "g/r@a2 cpus:4;mem:4096")
}

// A framework's own minimum offer for a role replaces the global one.
func TestPerFrameworkMinOffer(t *testing.T) {
	picky := fw("p", "r")
	picky.MinAllocatable = map[string][]resources.Resources{"r": {mp("cpus:2")}}
	s := state(t, allocator.Snapshot{
		Agents:     []allocator.Agent{agent("a1", "cpus:1;mem:4096")},
		Frameworks: []allocator.Framework{picky, fw("q", "r")},
	})
	// p is first by ID on a tie but wants at least 2 cpus.
	want(t, New(DefaultOptions(PolicyDRF)).Allocate(s, 1000, 0), "q/r@a1 cpus:1;mem:4096")
}

// Quota: the guaranteed role is served first up to its guarantee, the
// headroom it still needs is held back from others while it has demand,
// and limits cap offers.
func TestQuotaGuaranteeHeadroomLimit(t *testing.T) {
	var agents []allocator.Agent
	for i := range 4 {
		agents = append(agents, agent(fmt.Sprintf("a%d", i), "cpus:4;mem:4096"))
	}
	snap := allocator.Snapshot{
		Agents:     agents,
		Frameworks: []allocator.Framework{fw("big", "batch"), fw("prod", "prod")},
		Roles: []allocator.Role{
			{Name: "prod", Guarantee: mp("cpus:8")},
			{Name: "batch", Limit: mp("cpus:6")},
		},
		// prod wants two 4-cpu tasks; batch takes anything.
		Demands: []allocator.Demand{demand("prod", "prod", "cpus:4;mem:1024", 2)},
	}
	props := New(DefaultOptions(PolicyQuota)).Allocate(state(t, snap), 1000, 0)
	want(t, props, "prod/prod@a0 cpus:4;mem:1024", "prod/prod@a1 cpus:4;mem:1024",
		"big/batch@a0 mem:3072", "big/batch@a1 mem:3072", "big/batch@a2 cpus:4;mem:4096", "big/batch@a3 cpus:2;mem:4096")

	// With prod's demand gone, nothing is held back; batch stops at its limit.
	snap.Demands = nil
	snap.Frameworks = []allocator.Framework{fw("big", "batch")}
	props = New(DefaultOptions(PolicyQuota)).Allocate(state(t, snap), 1000, 0)
	want(t, props, "big/batch@a0 cpus:4;mem:4096", "big/batch@a1 cpus:2;mem:4096",
		"big/batch@a2 mem:4096", "big/batch@a3 mem:4096")
}

// Tiers: a higher priority role is offered first even at a higher share.
func TestPriorityTiers(t *testing.T) {
	s := state(t, allocator.Snapshot{
		Agents:      []allocator.Agent{agent("a1", "cpus:4;mem:4096"), agent("a2", "cpus:4;mem:4096")},
		Frameworks:  []allocator.Framework{fw("lo", "low"), fw("hi", "high")},
		Roles:       []allocator.Role{{Name: "high", Priority: 10}},
		Allocations: []allocator.Allocation{{FrameworkID: "hi", Role: "high", AgentID: "a1", Resources: mp("cpus:3;mem:3072")}},
	})
	want(t, New(DefaultOptions(PolicyPriority)).Allocate(s, 1000, 0), "hi/high@a1 cpus:1;mem:1024", "hi/high@a2 cpus:4;mem:4096")
}

// Preemption revokes the youngest lower-tier tasks on the agent needing
// the fewest revocations, never one within its guarantee.
func TestPreemption(t *testing.T) {
	task := func(id, role, ag string, started allocator.LogicalTime, within bool) allocator.Task {
		return allocator.Task{ID: id, FrameworkID: "lo", Role: role, AgentID: ag, Resources: mp("cpus:2;mem:1024"), StartedAt: started, WithinGuarantee: within}
	}
	alloc := func(role, ag, r string) allocator.Allocation {
		return allocator.Allocation{FrameworkID: "lo", Role: role, AgentID: ag, Resources: mp(r)}
	}
	snap := allocator.Snapshot{
		Agents:     []allocator.Agent{agent("a1", "cpus:4;mem:4096"), agent("a2", "cpus:4;mem:4096")},
		Frameworks: []allocator.Framework{fw("lo", "low", "low/g"), fw("hi", "high")},
		Roles:      []allocator.Role{{Name: "high", Priority: 10}, {Name: "low/g", Guarantee: mp("cpus:2")}},
		Allocations: []allocator.Allocation{
			alloc("low", "a1", "cpus:4;mem:2048"), alloc("low/g", "a2", "cpus:2;mem:1024"), alloc("low", "a2", "cpus:2;mem:1024"),
		},
		Tasks: []allocator.Task{
			task("old", "low", "a1", 100, false), task("young", "low", "a1", 900, false),
			task("guaranteed", "low/g", "a2", 500, true), task("other", "low", "a2", 200, false),
		},
		Demands: []allocator.Demand{demand("hi", "high", "cpus:3;mem:512", 1)},
	}
	opts := DefaultOptions(PolicyPriority)
	opts.Preemption = true
	e := New(opts)
	s := state(t, snap)
	props := e.Allocate(s, 1000, 0)
	// The spare memory fits nothing hi wants, so lo may have it, except on
	// a1, which is reserved for hi while its tasks are revoked.
	want(t, props, "lo/low/g@a2 mem:2048")
	revs := e.Revocations(s, 1000, props)
	// a2 would need "other" and "guaranteed"; a1 frees 4 cpus with both of
	// its tasks, and the youngest goes first.
	if len(revs) != 2 || revs[0].TaskID != "young" || revs[1].TaskID != "old" {
		t.Errorf("revocations = %+v, want young then old on a1", revs)
	}
	opts.Preemption = false
	e = New(opts)
	props = e.Allocate(s, 1000, 0)
	if revs := e.Revocations(s, 1000, props); len(revs) != 0 {
		t.Errorf("revocations with preemption off = %+v", revs)
	}
}

// Hold-back: a declared shape that fits nowhere for the timeout reserves
// the agent closest to fitting; small tasks stop getting it; once it is
// free enough the starving framework gets the offer.
func TestHoldBack(t *testing.T) {
	opts := DefaultOptions(PolicyDRF)
	opts.StarvationTimeout, opts.MaxHold = 5000, 60000
	e := New(opts)
	snap := allocator.Snapshot{
		Agents:     []allocator.Agent{agent("a1", "cpus:4;mem:4096"), agent("a2", "cpus:4;mem:4096")},
		Frameworks: []allocator.Framework{fw("big", "b"), fw("small", "s")},
		Demands:    []allocator.Demand{demand("big", "b", "cpus:4;mem:512", 1), demand("small", "s", "cpus:0.5;mem:64", 100)},
		Allocations: []allocator.Allocation{
			{FrameworkID: "small", Role: "s", AgentID: "a1", Resources: mp("cpus:3.5;mem:448")},
			{FrameworkID: "small", Role: "s", AgentID: "a2", Resources: mp("cpus:3;mem:384")},
		},
	}
	s := state(t, snap)
	want(t, e.Allocate(s, 1000, 0), "small/s@a1 cpus:0.5;mem:64", "small/s@a2 cpus:1;mem:128")
	// Starving since 1000; at 6000 the timeout passes and a hold starts.
	e.Allocate(s, 6000, 0)
	if h := e.Holds(); len(h) != 1 {
		t.Fatalf("holds = %v, want one", h)
	}
	held := e.Holds()[0]
	// Freed resources on the held agent now go to nobody but big.
	snap.Allocations = []allocator.Allocation{
		{FrameworkID: "small", Role: "s", AgentID: "a1", Resources: mp("cpus:2;mem:256")},
		{FrameworkID: "small", Role: "s", AgentID: "a2", Resources: mp("cpus:2;mem:256")},
	}
	s = state(t, snap)
	for _, p := range e.Allocate(s, 7000, 0) {
		if p.AgentID == held {
			t.Errorf("held agent %s offered: %+v", held, p)
		}
	}
	snap.Allocations = []allocator.Allocation{{FrameworkID: "small", Role: "s", AgentID: otherThan(held), Resources: mp("cpus:4;mem:512")}}
	s = state(t, snap)
	want(t, e.Allocate(s, 8000, 0), "big/b@"+held+" cpus:4;mem:512")
	if h := e.Holds(); len(h) != 0 {
		t.Errorf("holds after placing = %v", h)
	}
}

func otherThan(id string) string {
	if id == "a1" {
		return "a2"
	}
	return "a1"
}
