package allocator

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// filterCount is the number of filters the state holds, expired or not.
func (s *State) filterCount() int {
	n := 0
	for _, e := range s.agents {
		n += len(e.filters.entries)
	}
	return n
}

// TestFilterFootprint: a filter costs the mirror a 16-byte entry and an
// 8-byte expiry, and declines of the same resources on one agent share
// one resource list however many frameworks decline them. Filters are what
// the mirror gains every cycle at scale (issue 5's benchmark adds ~2,500
// per cycle at 10k agents × 1k frameworks).
func TestFilterFootprint(t *testing.T) {
	if n := unsafe.Sizeof(filterEntry{}); n != 16 {
		t.Errorf("a filter entry takes %d bytes, want 16", n)
	}
	if n := unsafe.Sizeof(expiry{}); n != 8 {
		t.Errorf("an expiry entry takes %d bytes, want 8", n)
	}
	s := NewState()
	snap := &allocator.Snapshot{Version: 1, Agents: []allocator.Agent{{ID: "a", Total: mp("cpus:16;mem:65536;ports:[31000-32000]"), Active: true}}}
	for i := range 200 {
		snap.Frameworks = append(snap.Frameworks, allocator.Framework{ID: fmt.Sprintf("f%03d", i), Roles: []string{"r"}, Active: true})
	}
	if err := s.Init(snap); err != nil {
		t.Fatal(err)
	}
	a := applier{t, s}
	free := "cpus:16;mem:65536;ports:[31000-32000]"
	for i := range 200 {
		fw := fmt.Sprintf("f%03d", i)
		a.must(allocator.Delta{At: 1000, Kind: allocator.Allocated, Allocation: alloc(fw, "r", "a", free)})
		a.must(allocator.Delta{At: 1000, Kind: allocator.Recovered, Allocation: alloc(fw, "r", "a", free), RefuseSeconds: 3600})
	}
	e := s.agents["a"]
	if len(e.filters.entries) != 200 || len(e.filters.res) != 1 || e.filters.res[0].refs != 200 {
		t.Fatalf("200 declines of the same resources: %d entries, resource table %d lists (refs %v), want 200 and 1 (200)",
			len(e.filters.entries), len(e.filters.res), e.filters.res)
	}
	for i := 1; i < len(e.filters.entries); i++ {
		if e.filters.entries[i-1].client > e.filters.entries[i].client {
			t.Fatal("filter entries are not sorted by client")
		}
	}
	// Each framework declined once; a smaller decline by f000 for longer
	// adds a second list, and one that covers the first replaces it.
	a.must(allocator.Delta{At: 2000, Kind: allocator.Allocated, Allocation: alloc("f000", "r", "a", "cpus:1")})
	a.must(allocator.Delta{At: 2000, Kind: allocator.Recovered, Allocation: alloc("f000", "r", "a", "cpus:1"), RefuseSeconds: 7200})
	if len(e.filters.entries) != 201 || len(e.filters.res) != 2 {
		t.Fatalf("after a narrower, longer decline: %d entries, %d lists, want 201 and 2", len(e.filters.entries), len(e.filters.res))
	}
	a.must(allocator.Delta{At: 3000, Kind: allocator.Allocated, Allocation: alloc("f000", "r", "a", free)})
	a.must(allocator.Delta{At: 3000, Kind: allocator.Recovered, Allocation: alloc("f000", "r", "a", free), RefuseSeconds: 7200})
	if len(e.filters.entries) != 200 || e.filters.res[1].refs != 0 || !e.filters.res[1].r.IsEmpty() {
		t.Fatalf("a covering decline left %d entries, list 1 refs %d (%s), want 200 and a freed list",
			len(e.filters.entries), e.filters.res[1].refs, e.filters.res[1].r)
	}
	if !s.Filtered("f000", "r", "a", mp("cpus:1"), 9000) || s.Filtered("f001", "r", "a", mp("cpus:1"), 3600*1000+1000) {
		t.Error("filters do not answer as declined")
	}
	// Removing frameworks releases their uses of the shared list; when
	// none is left the agent's table is given back.
	for i := range 200 {
		a.must(allocator.Delta{At: 4000, Kind: allocator.FrameworkRemoved, FrameworkID: fmt.Sprintf("f%03d", i)})
	}
	if len(e.filters.entries) != 0 || e.filters.res != nil {
		t.Errorf("no framework left, yet %d entries and table %v", len(e.filters.entries), e.filters.res)
	}
}

// TestFilterAgentSlots: a removed agent's slot goes to the next new agent,
// and the removed agent's queued expiries only ever drop filters whose
// time has come.
func TestFilterAgentSlots(t *testing.T) {
	s, a := baseState(t)
	a.must(allocator.Delta{At: 2000, Kind: allocator.Recovered, Allocation: alloc("f1", "r1", "a", "cpus:2;mem:1024"), RefuseSeconds: 5})
	slot := s.agents["a"].slot
	a.must(allocator.Delta{At: 2100, Kind: allocator.AgentRemoved, AgentID: "a"})
	a.must(allocator.Delta{At: 2100, Kind: allocator.AgentAdded, Agent: &allocator.Agent{ID: "c", Total: mp("cpus:4"), Active: true}})
	if got := s.agents["c"].slot; got != slot {
		t.Fatalf("the new agent got slot %d, want the removed agent's %d", got, slot)
	}
	if s.filterCount() != 0 {
		t.Fatal("the removed agent's filter survived it")
	}
	// c's filter outlives a's queued expiry at 7000.
	a.must(allocator.Delta{At: 2200, Kind: allocator.Allocated, Allocation: alloc("f1", "r1", "c", "cpus:1")})
	a.must(allocator.Delta{At: 2200, Kind: allocator.Recovered, Allocation: alloc("f1", "r1", "c", "cpus:1"), RefuseSeconds: 10})
	s.Advance(7000)
	if !s.Filtered("f1", "r1", "c", mp("cpus:1"), 7000) {
		t.Error("the removed agent's expiry dropped the new agent's filter")
	}
	s.Advance(12200)
	if s.filterCount() != 0 {
		t.Errorf("c's filter outlived its expiry: %+v", s.Filters(0))
	}
}

// filtered is the reference rule: a filter refuses what its resources
// contain until it expires.
func filtered(fs []allocator.Filter, offered resources.Resources, now allocator.LogicalTime) bool {
	for _, f := range fs {
		if now < f.ExpiresAt && f.Resources.Contains(offered) {
			return true
		}
	}
	return false
}
