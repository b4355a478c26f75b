package allocator

import (
	"fmt"
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
