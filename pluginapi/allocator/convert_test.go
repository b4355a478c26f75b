package allocator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/corral-project/corral/sdk/resources"
)

func TestSnapshotChunks(t *testing.T) {
	big := &Snapshot{Version: 42, Now: 7}
	for i := range 2500 {
		big.Agents = append(big.Agents, Agent{ID: fmt.Sprintf("a%d", i), Total: resources.MustParse("cpus:1")})
	}
	for i := range 1200 {
		big.Allocations = append(big.Allocations, Allocation{FrameworkID: "f", Role: "r", AgentID: fmt.Sprintf("a%d", i)})
	}
	big.Frameworks = []Framework{{ID: "f", Roles: []string{"r"}}}

	tests := []struct {
		name       string
		snap       *Snapshot
		wantChunks int
	}{
		{"empty snapshot is one chunk", &Snapshot{Version: 3, Now: 9}, 1},
		{"small snapshot is one chunk", &Snapshot{Version: 3, Agents: []Agent{{ID: "a"}}}, 1},
		{"large snapshot is split", big, 4}, // 2500 + 1 + 1200 = 3701 entries
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := snapshotChunks(tt.snap, InitChunkSize)
			if len(chunks) != tt.wantChunks {
				t.Fatalf("got %d chunks, want %d", len(chunks), tt.wantChunks)
			}
			var agents, allocs, fws int
			for i, c := range chunks {
				if c.GetVersion() != tt.snap.Version || c.GetLogicalNowMs() != int64(tt.snap.Now) {
					t.Errorf("chunk %d: version %d now %d, want %d and %d", i, c.GetVersion(), c.GetLogicalNowMs(), tt.snap.Version, tt.snap.Now)
				}
				n := len(c.GetAgents()) + len(c.GetFrameworks()) + len(c.GetRoles()) + len(c.GetAllocations()) + len(c.GetFilters())
				if n > InitChunkSize {
					t.Errorf("chunk %d has %d entries, limit %d", i, n, InitChunkSize)
				}
				agents += len(c.GetAgents())
				allocs += len(c.GetAllocations())
				fws += len(c.GetFrameworks())
			}
			if agents != len(tt.snap.Agents) || allocs != len(tt.snap.Allocations) || fws != len(tt.snap.Frameworks) {
				t.Errorf("chunks carry %d agents, %d allocations, %d frameworks; snapshot has %d, %d, %d",
					agents, allocs, fws, len(tt.snap.Agents), len(tt.snap.Allocations), len(tt.snap.Frameworks))
			}
		})
	}
}

func TestOfferReferenceEncoding(t *testing.T) {
	var host, plugin offerMemory
	offers := []Proposal{
		{FrameworkID: "f1", Role: "r", AgentID: "a1", Resources: resources.MustParse("cpus:1")},
		{FrameworkID: "f2", Role: "r", AgentID: "a2", Resources: resources.MustParse("cpus:2")},
		{FrameworkID: "f3", Role: "r", AgentID: "a3", Resources: resources.MustParse("cpus:3")},
	}
	host.remember(7, offers, true)
	plugin.remember(7, offers, false)
	alloc := func(fw, agent, r string) *Allocation {
		return &Allocation{FrameworkID: fw, Role: "r", AgentID: agent, Resources: resources.MustParse(r)}
	}
	deltas := []Delta{
		{Version: 2, At: 9, Kind: Allocated, Allocation: alloc("f2", "a2", "cpus:2")},
		{Version: 3, At: 9, Kind: Allocated, Allocation: alloc("f3", "a3", "cpus:3")},
		// Same key, other resources: sent in full, and it ends the run.
		{Version: 4, At: 9, Kind: Recovered, Allocation: alloc("f1", "a1", "cpus:0.5")},
		{Version: 5, At: 9, Kind: Recovered, Allocation: alloc("f1", "a1", "cpus:1"), RefuseSeconds: 3600},
		{Version: 6, At: 9, Kind: Recovered, Allocation: alloc("f3", "a3", "cpus:3")},
		// Another time: a new run.
		{Version: 7, At: 10, Kind: Recovered, Allocation: alloc("f2", "a2", "cpus:2")},
	}
	req := &AllocateRequest{BaseVersion: 1, TargetVersion: 7, Deltas: deltas}
	p, err := allocateRequestToProto(req, &host, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Deltas) != 4 {
		t.Fatalf("wire deltas = %v, want 4: a run of 2, one in full, a run of 2, a run of 1", p.Deltas)
	}
	if r := p.Deltas[0].GetOfferRefs(); r == nil || r.GetRecovered() || fmt.Sprint(r.GetIndices()) != "[1 2]" {
		t.Errorf("wire delta 0 = %v", p.Deltas[0])
	}
	if p.Deltas[1].GetRecovered() == nil {
		t.Errorf("wire delta 1 = %v, want the resources in full", p.Deltas[1])
	}
	if r := p.Deltas[2].GetOfferRefs(); r == nil || !r.GetRecovered() || fmt.Sprint(r.GetIndices(), r.GetRefuseSeconds()) != "[0 2] [3600 0]" {
		t.Errorf("wire delta 2 = %v", p.Deltas[2])
	}
	back, err := allocateRequestFromProto(p, &plugin)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Deltas) != len(deltas) {
		t.Fatalf("expanded %d deltas, sent %d", len(back.Deltas), len(deltas))
	}
	for i := range deltas {
		g, w := back.Deltas[i], deltas[i]
		if g.Version != w.Version || g.At != w.At || g.Kind != w.Kind || g.RefuseSeconds != w.RefuseSeconds ||
			g.Allocation.FrameworkID != w.Allocation.FrameworkID || !g.Allocation.Resources.Equal(w.Allocation.Resources) {
			t.Errorf("delta %d: got %+v, sent %+v", i, g, w)
		}
	}
	if _, err := allocateRequestFromProto(p, &offerMemory{}); err == nil || !strings.Contains(err.Error(), "no longer remembers") {
		t.Errorf("unknown reference: %v", err)
	}
	if _, err := allocateRequestFromProto(p, nil); err == nil {
		t.Error("a reference outside the plugin glue was accepted")
	}
}

func TestResponseResourceTable(t *testing.T) {
	same := resources.MustParse("cpus:12;mem:49152;ports:[31010-32000]")
	r := &AllocateResponse{AppliedVersion: 3}
	for i := range 5 {
		r.Offers = append(r.Offers, Proposal{FrameworkID: "f", Role: "r", AgentID: fmt.Sprint("a", i), Resources: same})
	}
	r.Offers = append(r.Offers, Proposal{FrameworkID: "f", Role: "r", AgentID: "a9", Resources: resources.MustParse("cpus:1")})
	p := allocateResponseToProto(r, nil)
	if len(p.ResourceTable) != 2 {
		t.Errorf("resource table has %d lists, want 2", len(p.ResourceTable))
	}
	back, err := allocateResponseFromProto(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range back.Offers {
		if o.AgentID != r.Offers[i].AgentID || !o.Resources.Equal(r.Offers[i].Resources) {
			t.Errorf("offer %d: got %+v, sent %+v", i, o, r.Offers[i])
		}
	}
	p.Offers[0].ResourcesRef = 9
	if _, err := allocateResponseFromProto(p, nil); err == nil || !strings.Contains(err.Error(), "refers to resource list 9 of 2") {
		t.Errorf("bad reference: %v", err)
	}
}

// TestOfferMemoryRecyclesIndex: the host reuses the index of the response
// it forgets for the next one; nothing of the forgotten response may
// resolve through it, and the responses still remembered resolve as sent.
func TestOfferMemoryRecyclesIndex(t *testing.T) {
	var host offerMemory
	offer := func(resp int) Proposal {
		// One resource list for all: a stale index entry would resolve.
		return Proposal{FrameworkID: fmt.Sprint("f", resp), Role: "r", AgentID: "a", Resources: resources.MustParse("cpus:1")}
	}
	const responses = recentResponses + 3
	for resp := range responses {
		host.remember(uint64(100+resp), []Proposal{offer(resp)}, true)
	}
	if len(host.recent) != recentResponses {
		t.Fatalf("remembers %d responses, want %d", len(host.recent), recentResponses)
	}
	for resp := range responses {
		o := offer(resp)
		id, index, ok := host.ref((*Allocation)(&o))
		remembered := resp >= responses-recentResponses
		if ok != remembered || (ok && (id != uint64(100+resp) || index != 0)) {
			t.Errorf("response %d (remembered %v): ref = %d/%d, %v", resp, remembered, id, index, ok)
		}
	}
}

// TestOfferRefOrder: the host finds offers committed in the order it got
// them without building an index, and finds them in any other order
// through the index; every reference names an offer equal to the
// allocation.
func TestOfferRefOrder(t *testing.T) {
	var offers []Proposal
	for i := range 100 {
		offers = append(offers, Proposal{FrameworkID: fmt.Sprint("f", i%7), Role: "r", AgentID: fmt.Sprint("a", i),
			Resources: resources.MustParse(fmt.Sprintf("cpus:%d", 1+i%3))})
	}
	var host offerMemory
	host.remember(5, offers, true)
	check := func(order []int) {
		t.Helper()
		for _, i := range order {
			o := offers[i]
			id, j, ok := host.ref((*Allocation)(&o))
			if !ok || id != 5 || !proposalsEqual([]Proposal{offers[j]}, []Proposal{o}) {
				t.Fatalf("ref of offer %d = %d/%d %v", i, id, j, ok)
			}
		}
	}
	var inOrder, everyThird, reversed []int
	for i := range offers {
		inOrder = append(inOrder, i)
		if i%3 == 0 {
			everyThird = append(everyThird, i)
		}
		reversed = append(reversed, len(offers)-1-i)
	}
	check(inOrder)
	check(everyThird) // wraps to the start, then skips within the window
	if host.recent[0].index != nil {
		t.Error("offers found in order, yet the index was built")
	}
	check(reversed)
	if host.recent[0].index == nil {
		t.Error("offers found in reverse without the index")
	}
	miss := Allocation{FrameworkID: "f1", Role: "r", AgentID: "a1", Resources: resources.MustParse("cpus:9")}
	if _, _, ok := host.ref(&miss); ok {
		t.Error("an allocation of other resources was found")
	}
}
