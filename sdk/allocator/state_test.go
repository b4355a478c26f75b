package allocator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

var mp = resources.MustParse

// applier numbers deltas for a state.
type applier struct {
	t *testing.T
	s *State
}

func (a applier) apply(d allocator.Delta) error {
	d.Version = a.s.Version() + 1
	return a.s.Apply(d)
}

func (a applier) must(d allocator.Delta) {
	a.t.Helper()
	if err := a.apply(d); err != nil {
		a.t.Fatal(err)
	}
}

func alloc(fw, role, agent, r string) *allocator.Allocation {
	return &allocator.Allocation{FrameworkID: fw, Role: role, AgentID: agent, Resources: mp(r)}
}

func baseState(t *testing.T) (*State, applier) {
	t.Helper()
	s := NewState()
	err := s.Init(&allocator.Snapshot{
		Version: 5,
		Now:     1000,
		Agents: []allocator.Agent{
			{ID: "b", Total: mp("cpus:4;mem:4096"), Active: true, Attributes: map[string]string{"rack": "1"}},
			{ID: "a", Total: mp("cpus:4;mem:4096"), Active: true},
		},
		Frameworks: []allocator.Framework{
			{ID: "f1", Roles: []string{"r1"}, Active: true},
			{ID: "f2", Roles: []string{"r2", "r3"}, Active: true},
		},
		Roles:       []allocator.Role{{Name: "r2", Weight: 2}},
		Allocations: []allocator.Allocation{*alloc("f1", "r1", "a", "cpus:2;mem:1024")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, applier{t, s}
}

func TestInitAndAccessors(t *testing.T) {
	s, _ := baseState(t)
	if s.Version() != 5 || s.Now() != 1000 {
		t.Fatalf("version %d now %d", s.Version(), s.Now())
	}
	if ids := s.AgentIDs(); !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("AgentIDs = %v", ids)
	}
	if ag := s.Agents(); len(ag) != 2 || ag[0].ID != "a" || ag[1].Attributes["rack"] != "1" {
		t.Errorf("Agents = %+v", ag)
	}
	if got := s.Available("a"); !got.Equal(mp("cpus:2;mem:3072")) {
		t.Errorf("Available(a) = %s", got)
	}
	if got := s.ClusterTotal(); !got.Equal(mp("cpus:8;mem:8192")) {
		t.Errorf("ClusterTotal = %s", got)
	}
	roles := s.Roles()
	if len(roles) != 3 || roles[1].Name != "r2" || roles[1].Weight != 2 || s.Weight("r1") != 1 {
		t.Errorf("Roles = %+v, Weight(r1) = %v", roles, s.Weight("r1"))
	}
	if got := s.RoleShare("r1"); got != 0.25 {
		t.Errorf("RoleShare(r1) = %v, want 2/8", got)
	}
	if got := s.Allocations(); len(got) != 1 || !got[0].Resources.Equal(mp("cpus:2;mem:1024")) {
		t.Errorf("Allocations = %+v", got)
	}
	// Accessors return copies.
	ag, _ := s.Agent("b")
	ag.Attributes["rack"] = "9"
	f, _ := s.Framework("f2")
	f.Roles[0] = "zz"
	if ag2, _ := s.Agent("b"); ag2.Attributes["rack"] != "1" {
		t.Error("Agent returned an alias of the state's map")
	}
	if f2, _ := s.Framework("f2"); f2.Roles[0] != "r2" {
		t.Error("Framework returned an alias of the state's slice")
	}
}

func TestInitRejectsBadSnapshots(t *testing.T) {
	for name, snap := range map[string]*allocator.Snapshot{
		"nil":                nil,
		"duplicate agent":    {Agents: []allocator.Agent{{ID: "a"}, {ID: "a"}}},
		"duplicate fw":       {Frameworks: []allocator.Framework{{ID: "f"}, {ID: "f"}}},
		"allocation nowhere": {Allocations: []allocator.Allocation{*alloc("f", "r", "zz", "cpus:1")}},
	} {
		s, _ := baseState(t)
		if err := s.Init(snap); err == nil {
			t.Errorf("%s: Init succeeded", name)
		} else if s.Version() != 0 || len(s.AgentIDs()) != 0 {
			t.Errorf("%s: failed Init left state behind", name)
		}
	}
}

func TestApplyEveryKind(t *testing.T) {
	s, a := baseState(t)
	a.must(allocator.Delta{At: 1500, Kind: allocator.AgentAdded, Agent: &allocator.Agent{ID: "c", Total: mp("cpus:8;mem:8192"), Active: true}})
	if got := s.ClusterTotal(); !got.Equal(mp("cpus:16;mem:16384")) {
		t.Fatalf("total after add = %s", got)
	}
	a.must(allocator.Delta{At: 1500, Kind: allocator.AgentUpdated, Agent: &allocator.Agent{ID: "c", Total: mp("cpus:4;mem:4096")}})
	if s.AgentActive("c") || !s.ClusterTotal().Equal(mp("cpus:12;mem:12288")) {
		t.Fatalf("update: active %v total %s", s.AgentActive("c"), s.ClusterTotal())
	}
	a.must(allocator.Delta{At: 1500, Kind: allocator.Allocated, Allocation: alloc("f2", "r2", "c", "cpus:3")})
	a.must(allocator.Delta{At: 1500, Kind: allocator.AgentRemoved, AgentID: "c"})
	if !s.ClusterTotal().Equal(mp("cpus:8;mem:8192")) || !s.RoleAllocated("r2").IsEmpty() || len(s.Allocations()) != 1 {
		t.Fatalf("removing an agent must drop its allocations: total %s r2 %s", s.ClusterTotal(), s.RoleAllocated("r2"))
	}

	a.must(allocator.Delta{At: 1600, Kind: allocator.FrameworkAdded, Framework: &allocator.Framework{ID: "f3", Roles: []string{"r1"}, Active: true}})
	a.must(allocator.Delta{At: 1600, Kind: allocator.FrameworkUpdated, Framework: &allocator.Framework{ID: "f3", Roles: []string{"r1", "r4"}}})
	if f, _ := s.Framework("f3"); f.Active || len(f.Roles) != 2 {
		t.Fatalf("framework update: %+v", f)
	}
	a.must(allocator.Delta{At: 1600, Kind: allocator.Allocated, Allocation: alloc("f3", "r1", "b", "cpus:1")})
	a.must(allocator.Delta{At: 1600, Kind: allocator.FrameworkRemoved, FrameworkID: "f3"})
	if _, ok := s.Framework("f3"); ok || !s.Available("b").Equal(mp("cpus:4;mem:4096")) {
		t.Fatalf("removing a framework must drop it and its allocations: available(b) %s", s.Available("b"))
	}

	a.must(allocator.Delta{At: 1700, Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: "r1", Weight: 4}})
	if s.Weight("r1") != 4 || s.RoleShare("r1") != 0.25/4 {
		t.Fatalf("weight %v share %v", s.Weight("r1"), s.RoleShare("r1"))
	}

	a.must(allocator.Delta{At: 1700, Kind: allocator.Suppressed, FrameworkID: "f2", Roles: []string{"r3"}})
	if !s.Suppressed("f2", "r3") || s.Suppressed("f2", "r2") {
		t.Fatal("suppress r3")
	}
	a.must(allocator.Delta{At: 1700, Kind: allocator.Suppressed, FrameworkID: "f2"})
	if f, _ := s.Framework("f2"); !slices.Equal(f.SuppressedRoles, []string{"r2", "r3"}) {
		t.Fatalf("suppress all: %v", f.SuppressedRoles)
	}
	a.must(allocator.Delta{At: 1700, Kind: allocator.Revived, FrameworkID: "f2", Roles: []string{"r2"}})
	if s.Suppressed("f2", "r2") || !s.Suppressed("f2", "r3") {
		t.Fatal("revive r2")
	}

	a.must(allocator.Delta{At: 2000, Kind: allocator.Recovered, Allocation: alloc("f1", "r1", "a", "cpus:1"), RefuseSeconds: 5})
	if got := s.Available("a"); !got.Equal(mp("cpus:3;mem:3072")) {
		t.Fatalf("available after recover = %s", got)
	}
	if s.Version() != 18 || s.Now() != 2000 {
		t.Fatalf("version %d now %d", s.Version(), s.Now())
	}
}

func TestApplyRejects(t *testing.T) {
	for name, d := range map[string]allocator.Delta{
		"unknown kind":       {Kind: 99},
		"update unknown":     {Kind: allocator.AgentUpdated, Agent: &allocator.Agent{ID: "zz"}},
		"add existing agent": {Kind: allocator.AgentAdded, Agent: &allocator.Agent{ID: "a"}},
		"remove unknown fw":  {Kind: allocator.FrameworkRemoved, FrameworkID: "zz"},
		"allocate nowhere":   {Kind: allocator.Allocated, Allocation: alloc("f1", "r1", "zz", "cpus:1")},
		"over-recover":       {Kind: allocator.Recovered, Allocation: alloc("f1", "r1", "a", "cpus:3")},
		"wrong role":         {Kind: allocator.Recovered, Allocation: alloc("f1", "r9", "a", "cpus:1")},
		"negative weight":    {Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: "r", Weight: -1}},
		"missing agent":      {Kind: allocator.AgentAdded},
	} {
		s, a := baseState(t)
		before := s.Allocations()
		if err := a.apply(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if s.Version() != 5 || !slices.EqualFunc(before, s.Allocations(), func(x, y allocator.Allocation) bool {
			return x.Resources.Equal(y.Resources)
		}) {
			t.Errorf("%s: rejected delta changed the state", name)
		}
	}
	s, _ := baseState(t)
	err := s.Apply(allocator.Delta{Version: 7, Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: "r"}})
	if err == nil || !strings.Contains(err.Error(), "expects 6") {
		t.Errorf("out-of-order delta: %v", err)
	}
}

func TestFilters(t *testing.T) {
	s, a := baseState(t)
	a.must(allocator.Delta{At: 2000, Kind: allocator.Recovered, Allocation: alloc("f1", "r1", "a", "cpus:2;mem:1024"), RefuseSeconds: 5})
	declined := mp("cpus:2;mem:1024")
	for _, tc := range []struct {
		now     allocator.LogicalTime
		offered resources.Resources
		want    bool
	}{
		{2000, declined, true},
		{6999, mp("cpus:1"), true},                  // a subset of what was declined
		{6999, mp("cpus:4;mem:4096"), false},        // more than was declined
		{7000, declined, false},                     // expired
		{3000, mp("cpus:2;mem:1024;gpus:1"), false}, // a resource not declined
	} {
		if got := s.Filtered("f1", "r1", "a", tc.offered, tc.now); got != tc.want {
			t.Errorf("Filtered(%s at %d) = %v, want %v", tc.offered, tc.now, got, tc.want)
		}
	}
	if s.Filtered("f1", "r1", "b", declined, 2000) || s.Filtered("f2", "r1", "a", declined, 2000) {
		t.Error("a filter leaked to another agent or framework")
	}
	if fs := s.Filters(6999); len(fs) != 1 || fs[0].ExpiresAt != 7000 {
		t.Errorf("Filters(6999) = %+v", fs)
	}
	if fs := s.Filters(7000); len(fs) != 0 {
		t.Errorf("Filters(7000) = %+v", fs)
	}
	// refuse_seconds 0 installs nothing.
	a.must(allocator.Delta{At: 2000, Kind: allocator.Allocated, Allocation: alloc("f2", "r2", "b", "cpus:1")})
	a.must(allocator.Delta{At: 2000, Kind: allocator.Recovered, Allocation: alloc("f2", "r2", "b", "cpus:1")})
	if len(s.Filters(2000)) != 1 {
		t.Errorf("refuse_seconds 0 installed a filter: %+v", s.Filters(2000))
	}
	// Revive clears the framework's filters for the revived roles.
	a.must(allocator.Delta{At: 2100, Kind: allocator.Revived, FrameworkID: "f1"})
	if s.Filtered("f1", "r1", "a", declined, 2100) {
		t.Error("revive did not clear the filter")
	}
	// Advance forgets expired filters.
	a.must(allocator.Delta{At: 3000, Kind: allocator.Allocated, Allocation: alloc("f1", "r1", "a", "cpus:1")})
	a.must(allocator.Delta{At: 3000, Kind: allocator.Recovered, Allocation: alloc("f1", "r1", "a", "cpus:1"), RefuseSeconds: 1})
	s.Advance(4000)
	if n := s.filterCount(); n != 0 || s.Now() != 4000 {
		t.Errorf("Advance(4000) kept %d filters, now %d", n, s.Now())
	}
}

// TestCachedLists checks that the shared sorted lists follow framework and
// role changes.
func TestCachedLists(t *testing.T) {
	s, a := baseState(t)
	check := func(wantFws, wantRoles []string) {
		t.Helper()
		if got := s.FrameworkIDs(); !slices.Equal(got, wantFws) {
			t.Errorf("FrameworkIDs = %q, want %q", got, wantFws)
		}
		if got := s.RoleNames(); !slices.Equal(got, wantRoles) {
			t.Errorf("RoleNames = %q, want %q", got, wantRoles)
		}
		var roles []string
		for _, r := range s.Roles() {
			roles = append(roles, r.Name)
		}
		if !slices.Equal(roles, wantRoles) {
			t.Errorf("Roles names %q, RoleNames %q", roles, wantRoles)
		}
	}
	check([]string{"f1", "f2"}, []string{"r1", "r2", "r3"})
	a.must(allocator.Delta{Kind: allocator.FrameworkAdded, Framework: &allocator.Framework{ID: "f0", Roles: []string{"r9"}, Active: true}})
	check([]string{"f0", "f1", "f2"}, []string{"r1", "r2", "r3", "r9"})
	a.must(allocator.Delta{Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: "q", Weight: 3}})
	check([]string{"f0", "f1", "f2"}, []string{"q", "r1", "r2", "r3", "r9"})
	a.must(allocator.Delta{Kind: allocator.FrameworkRemoved, FrameworkID: "f2"})
	check([]string{"f0", "f1"}, []string{"q", "r1", "r2", "r9"})
	if f := s.FrameworkView("f1"); f == nil || f.ID != "f1" || s.FrameworkView("f2") != nil {
		t.Errorf("FrameworkView(f1) = %+v, FrameworkView(f2) = %+v", f, s.FrameworkView("f2"))
	}
}

// TestFilterMerging declines on one agent in turn and checks that the
// mirror keeps only the filters that matter, that it refuses exactly what
// every decline together refuses, and that CompactFilters agrees.
func TestFilterMerging(t *testing.T) {
	type decline struct {
		at      allocator.LogicalTime
		res     string
		seconds float64
	}
	for _, tc := range []struct {
		name     string
		declines []decline
		want     []string // kept filters: resources until
	}{
		{"the same decline repeated", []decline{{2000, "cpus:2", 10}, {3000, "cpus:2", 10}, {4000, "cpus:2", 10}},
			[]string{"cpus:2 until=14000"}},
		{"a subset for less time adds nothing", []decline{{2000, "cpus:2;mem:1024", 10}, {3000, "cpus:1", 5}},
			[]string{"cpus:2;mem:1024 until=12000"}},
		{"a superset for longer replaces", []decline{{2000, "cpus:1", 5}, {3000, "cpus:2;mem:1024", 10}},
			[]string{"cpus:2;mem:1024 until=13000"}},
		{"a subset for longer stays beside", []decline{{2000, "cpus:2;mem:1024", 5}, {3000, "cpus:1", 10}},
			[]string{"cpus:2;mem:1024 until=7000", "cpus:1 until=13000"}},
		{"disjoint declines both stay", []decline{{2000, "cpus:1", 10}, {2000, "mem:512", 10}},
			[]string{"cpus:1 until=12000", "mem:512 until=12000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, a := baseState(t)
			var raw []allocator.Filter
			for _, d := range tc.declines {
				a.must(allocator.Delta{At: d.at, Kind: allocator.Allocated, Allocation: alloc("f2", "r2", "b", d.res)})
				a.must(allocator.Delta{At: d.at, Kind: allocator.Recovered, Allocation: alloc("f2", "r2", "b", d.res), RefuseSeconds: d.seconds})
				raw = append(raw, allocator.Filter{FrameworkID: "f2", Role: "r2", AgentID: "b", Resources: mp(d.res),
					ExpiresAt: d.at + allocator.LogicalTime(d.seconds*1000)})
			}
			var got []string
			for _, f := range s.Filters(0) {
				got = append(got, fmt.Sprintf("%s until=%d", f.Resources, f.ExpiresAt))
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("kept %q, want %q", got, want)
			}
			if c := CompactFilters(raw); fmt.Sprint(c) != fmt.Sprint(s.Filters(0)) {
				t.Errorf("CompactFilters = %+v, the mirror keeps %+v", c, s.Filters(0))
			}
			// The kept filters refuse exactly what the raw declines do.
			for now := allocator.LogicalTime(2000); now <= 16000; now += 500 {
				for _, offered := range []string{"cpus:1", "cpus:2", "mem:512", "cpus:1;mem:512", "cpus:2;mem:1024", "cpus:3"} {
					rawFiltered := filtered(raw, mp(offered), now)
					if got := s.Filtered("f2", "r2", "b", mp(offered), now); got != rawFiltered {
						t.Errorf("at %d, %s: filtered %v, the declines say %v", now, offered, got, rawFiltered)
					}
				}
			}
		})
	}
}

func TestShares(t *testing.T) {
	total := mp("cpus:10;mem:1000;gpus:2;ports:[1-100]")
	for _, tc := range []struct {
		alloc   string
		exclude []string
		want    float64
	}{
		{"", nil, 0},
		{"cpus:1;mem:500", nil, 0.5},
		{"cpus:5;mem:100;gpus:2", nil, 1},
		{"cpus:5;mem:100;gpus:2", []string{"gpus"}, 0.5},
		{"ports:[1-100];cpus:1", nil, 0.1}, // ranges do not count
		{"disk:50", nil, 0},                // the cluster has no disk
	} {
		if got := DominantShare(mp(tc.alloc), total, tc.exclude...); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("DominantShare(%s, exclude %v) = %v, want %v", tc.alloc, tc.exclude, got, tc.want)
		}
	}

	s, a := baseState(t)
	a.must(allocator.Delta{Kind: allocator.Allocated, Allocation: alloc("f2", "r2", "b", "cpus:4;mem:512")})
	a.must(allocator.Delta{Kind: allocator.Allocated, Allocation: alloc("f2", "r3", "b", "mem:2048")})
	if got := s.RoleShare("r2"); got != 0.25 { // 4/8 cpus, weight 2
		t.Errorf("RoleShare(r2) = %v", got)
	}
	if got := s.FrameworkShare("f2"); got != 0.5 { // cpus 4/8, mem 2560/8192
		t.Errorf("FrameworkShare(f2) = %v", got)
	}
	if got := s.FrameworkShare("f2", "cpus"); got != 2560.0/8192 {
		t.Errorf("FrameworkShare(f2 without cpus) = %v", got)
	}
}

func TestScratch(t *testing.T) {
	s, _ := baseState(t)
	v := s.Scratch()
	if err := v.Offer(allocator.Proposal{FrameworkID: "f2", Role: "r2", AgentID: "a", Resources: mp("cpus:2")}); err != nil {
		t.Fatal(err)
	}
	if got := v.Available("a"); !got.Equal(mp("mem:3072")) {
		t.Errorf("scratch available = %s", got)
	}
	if got := s.Available("a"); !got.Equal(mp("cpus:2;mem:3072")) {
		t.Errorf("scratch leaked into the state: %s", got)
	}
	if got := v.RoleShare("r2"); got != 0.125 {
		t.Errorf("scratch RoleShare(r2) = %v", got)
	}
	for name, p := range map[string]allocator.Proposal{
		"double-booked": {FrameworkID: "f1", Role: "r1", AgentID: "a", Resources: mp("cpus:1")},
		"unknown agent": {FrameworkID: "f1", Role: "r1", AgentID: "zz", Resources: mp("cpus:1")},
		"wrong role":    {FrameworkID: "f1", Role: "r2", AgentID: "b", Resources: mp("cpus:1")},
		"empty":         {FrameworkID: "f1", Role: "r1", AgentID: "b"},
		"unknown fw":    {FrameworkID: "zz", Role: "r1", AgentID: "b", Resources: mp("cpus:1")},
	} {
		if err := v.Offer(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if len(v.Proposals()) != 1 {
		t.Errorf("Proposals = %+v", v.Proposals())
	}
}

// ApplyAll's shortcut for allocations recovered in the same batch must
// leave exactly the state that applying the deltas one by one leaves.
func TestApplyAllMatchesApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	agents, fws := []string{"a", "b"}, []string{"f1", "f2"}
	roleOf := map[string]string{"f1": "r1", "f2": "r2"}
	for seed := range 200 {
		one, _ := baseState(t)
		all, _ := baseState(t)
		var batch []allocator.Delta
		held := map[allocKey]resources.Resources{{"f1", "r1", "a"}: mp("cpus:2;mem:1024")}
		v := one.Version()
		for range 12 {
			fw := fws[rng.IntN(2)]
			k := allocKey{fw, roleOf[fw], agents[rng.IntN(2)]}
			d := allocator.Delta{At: allocator.LogicalTime(2000 + seed)}
			switch r := held[k]; {
			case rng.IntN(5) == 0:
				d.Kind, d.Framework = allocator.FrameworkUpdated, &allocator.Framework{ID: fw, Roles: []string{roleOf[fw]}, Active: true}
			case !r.IsEmpty() && rng.IntN(2) == 0:
				d.Kind, d.Allocation, d.RefuseSeconds = allocator.Recovered, &allocator.Allocation{FrameworkID: k.framework, Role: k.role, AgentID: k.agent, Resources: r}, float64(rng.IntN(2)*60)
				delete(held, k)
			default:
				res := mp("cpus:0.5;mem:128")
				d.Kind, d.Allocation = allocator.Allocated, &allocator.Allocation{FrameworkID: k.framework, Role: k.role, AgentID: k.agent, Resources: res}
				held[k] = held[k].Add(res)
			}
			v++
			d.Version = v
			batch = append(batch, d)
		}
		for _, d := range batch {
			if err := one.Apply(d); err != nil {
				t.Fatalf("seed %d: Apply: %v", seed, err)
			}
		}
		if err := all.ApplyAll(batch); err != nil {
			t.Fatalf("seed %d: ApplyAll: %v", seed, err)
		}
		got, want := dumpState(all), dumpState(one)
		if got != want {
			t.Fatalf("seed %d: ApplyAll left\n%s\nApply left\n%s", seed, got, want)
		}
	}
}

func dumpState(s *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version %d now %d\n", s.Version(), s.Now())
	for _, a := range s.Allocations() {
		fmt.Fprintf(&b, "alloc %s/%s@%s %s\n", a.FrameworkID, a.Role, a.AgentID, a.Resources)
	}
	for _, f := range s.Filters(0) {
		fmt.Fprintf(&b, "filter %s/%s@%s %s until %d\n", f.FrameworkID, f.Role, f.AgentID, f.Resources, f.ExpiresAt)
	}
	for _, id := range s.AgentIDs() {
		fmt.Fprintf(&b, "agent %s free %s changed %v\n", id, s.Available(id), s.AgentChanged(id))
	}
	for _, r := range []string{"r1", "r2"} {
		fmt.Fprintf(&b, "role %s %s\n", r, s.RoleAllocated(r))
	}
	return b.String()
}

// TestClientRefs: FilteredRef answers as FilteredBy does; a removed
// framework's refs go to new pairs without its filters, and a filter
// that outlives a reused ref still expires under its own pair.
func TestClientRefs(t *testing.T) {
	s, a := baseState(t)
	declined := mp("cpus:2;mem:1024")
	a.must(allocator.Delta{At: 2000, Kind: allocator.Recovered, Allocation: alloc("f1", "r1", "a", "cpus:2;mem:1024"), RefuseSeconds: 5})
	r1, r2 := s.ClientRef("f1", "r1"), s.ClientRef("f2", "r2")
	if r1 == r2 || s.ClientRef("f1", "r1") != r1 {
		t.Fatalf("refs f1/r1 %d (again %d), f2/r2 %d", r1, s.ClientRef("f1", "r1"), r2)
	}
	fa, fb := s.AgentFilters("a"), s.AgentFilters("b")
	for _, c := range []struct {
		f       AgentFilters
		ref     ClientRef
		fw, rl  string
		offered resources.Resources
		want    bool
	}{
		{fa, r1, "f1", "r1", declined, true},
		{fa, r1, "f1", "r1", mp("cpus:3"), false},
		{fa, r2, "f2", "r2", declined, false},
		{fb, r1, "f1", "r1", declined, false},
	} {
		byRef, byName := c.f.FilteredRef(c.ref, c.offered, 2000), c.f.FilteredBy(c.fw, c.rl, c.offered, 2000)
		if byRef != c.want || byName != c.want {
			t.Errorf("%s/%s offered %s: FilteredRef %v, FilteredBy %v, want %v", c.fw, c.rl, c.offered, byRef, byName, c.want)
		}
	}
	if v := s.AgentView("a"); !v.Known() || !v.Active() || !v.Available().Equal(mp("cpus:4;mem:4096")) || !v.Total().Equal(mp("cpus:4;mem:4096")) {
		t.Errorf("AgentView(a) = known %v active %v available %s total %s", v.Known(), v.Active(), v.Available(), v.Total())
	}
	if v := s.AgentView("nope"); v.Known() || v.Active() || !v.Available().IsEmpty() {
		t.Error("AgentView of an unknown agent is not empty")
	}

	// f1 goes away with its filter; a new framework gets its ref and is
	// not filtered by f1's decline.
	gen := s.ClientsGeneration()
	a.must(allocator.Delta{At: 2100, Kind: allocator.FrameworkRemoved, FrameworkID: "f1"})
	if s.ClientsGeneration() == gen {
		t.Fatal("removing a framework kept the clients generation, and with it the refs")
	}
	a.must(allocator.Delta{At: 2100, Kind: allocator.FrameworkAdded, Framework: &allocator.Framework{ID: "f3", Roles: []string{"r1"}, Active: true}})
	if r3 := s.ClientRef("f3", "r1"); r3 != r1 {
		t.Errorf("f3/r1 got ref %d, want f1/r1's freed %d", r3, r1)
	}
	if s.Filtered("f3", "r1", "a", declined, 2100) || s.AgentFilters("a").FilteredRef(r1, declined, 2100) {
		t.Error("the new framework inherited the removed one's filter")
	}
	// f3 declines for 10 s; the queue still holds f1's expiry
	// (at 7000) under f1's name, which must not touch f3's filter.
	a.must(allocator.Delta{At: 2200, Kind: allocator.Allocated, Allocation: alloc("f3", "r1", "a", "cpus:1")})
	a.must(allocator.Delta{At: 2200, Kind: allocator.Recovered, Allocation: alloc("f3", "r1", "a", "cpus:1"), RefuseSeconds: 10})
	s.Advance(7000)
	if !s.Filtered("f3", "r1", "a", mp("cpus:1"), 7000) {
		t.Error("f1's expiry removed f3's filter")
	}
	s.Advance(12200)
	if s.Filtered("f3", "r1", "a", mp("cpus:1"), 12200) || len(s.Filters(0)) != 0 {
		t.Errorf("f3's filter outlived its expiry: %+v", s.Filters(0))
	}
}
