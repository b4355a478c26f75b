package master

import (
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// addFilter sweeps expired filters often enough that the list stays
// within twice the live ones (plus minFilterSweep), and rarely enough
// that a sweep's cost spreads over the appends since the last one.
func TestAddFilterSweepsExpiredFilters(t *testing.T) {
	tests := []struct {
		name   string
		refuse allocator.LogicalTime // each filter's life, in logical ms
		live   int                   // filters alive at any one time
	}{
		{"short-lived", 10, 10},
		{"long-lived", 5000, 5000},
		{"never expire in the run", 1 << 40, 20000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &frameworkEntry{}
			scanned, last := 0, 0 // filters looked at by sweeps
			for now := allocator.LogicalTime(1); now <= 20000; now++ {
				if len(f.filters) >= f.filtersSweepAt {
					scanned += len(f.filters)
				}
				f.addFilter(now, allocator.Filter{AgentID: "a", ExpiresAt: now + tc.refuse})
				if limit := 2*tc.live + minFilterSweep; len(f.filters) > limit {
					t.Fatalf("at %d ms %d filters held, %d alive: want at most %d", now, len(f.filters), tc.live, limit)
				}
				last = len(f.filters)
			}
			if scanned > 3*20000 {
				t.Fatalf("sweeps looked at %d filters for 20000 added, want at most 3 per filter", scanned)
			}
			if got := len(activeFilters(f.filters, 20000)); got != min(tc.live, last) {
				t.Fatalf("%d filters active at the end, want %d", got, min(tc.live, last))
			}
		})
	}
}
