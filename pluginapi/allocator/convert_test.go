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
	}
	host.remember(7, offers, true)
	plugin.remember(7, offers, false)
	req := &AllocateRequest{BaseVersion: 1, TargetVersion: 3, Deltas: []Delta{
		{Version: 2, Kind: Allocated, Allocation: &Allocation{FrameworkID: "f2", Role: "r", AgentID: "a2", Resources: resources.MustParse("cpus:2")}},
		// Same key, other resources: sent in full.
		{Version: 3, Kind: Recovered, Allocation: &Allocation{FrameworkID: "f1", Role: "r", AgentID: "a1", Resources: resources.MustParse("cpus:0.5")}},
	}}
	p, err := allocateRequestToProto(req, &host)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Deltas[0].GetAllocatedOffer(); r == nil || r.GetResponseId() != 7 || r.GetIndex() != 1 {
		t.Errorf("delta 0 = %v, want a reference to offer 1 of response 7", p.Deltas[0])
	}
	if p.Deltas[1].GetRecovered() == nil {
		t.Errorf("delta 1 = %v, want the resources in full", p.Deltas[1])
	}
	back, err := allocateRequestFromProto(p, &plugin)
	if err != nil {
		t.Fatal(err)
	}
	if a := back.Deltas[0].Allocation; a.FrameworkID != "f2" || !a.Resources.Equal(resources.MustParse("cpus:2")) {
		t.Errorf("resolved %+v", a)
	}
	if _, err := allocateRequestFromProto(p, &offerMemory{}); err == nil || !strings.Contains(err.Error(), "no longer remembers") {
		t.Errorf("unknown reference: %v", err)
	}
	if _, err := allocateRequestFromProto(p, nil); err == nil {
		t.Error("a reference outside the plugin glue was accepted")
	}
}
