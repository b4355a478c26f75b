package master

import (
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// The log hands out copies and keeps its array across acknowledgements:
// a request built from it reads the same after the log moved on, and
// the deltas left after an ack are the newer ones, in order.
func TestDeltaLogAckKeepsOrderAndRequestsIntact(t *testing.T) {
	var l deltaLog
	add := func(n int) {
		for range n {
			l.add(0, allocator.Delta{Kind: allocator.Recovered, AgentID: "a"})
		}
	}
	versions := func(ds []allocator.Delta) []uint64 {
		var out []uint64
		for _, d := range ds {
			out = append(out, d.Version)
		}
		return out
	}
	add(10)
	req, ok := l.since(4)
	if !ok || len(req) != 6 || req[0].Version != 5 {
		t.Fatalf("since(4) = %v, %v; want versions 5..10", versions(req), ok)
	}
	before := versions(req)
	l.ack(7) // the plugin took 5..7 meanwhile
	add(5)   // 11..15 logged after
	if got := versions(req); len(got) != len(before) || got[0] != before[0] || got[len(got)-1] != before[len(before)-1] {
		t.Fatalf("a request built before the ack now reads %v, want %v", got, before)
	}
	rest, ok := l.since(7)
	if !ok || len(rest) != 8 || rest[0].Version != 8 || rest[7].Version != 15 {
		t.Fatalf("after ack(7) since(7) = %v, %v; want versions 8..15", versions(rest), ok)
	}
	if _, ok := l.since(6); ok {
		t.Fatal("since(6) answered after version 7 was acknowledged; want a gap (Init again)")
	}
	l.ack(15)
	if d, ok := l.since(15); !ok || len(d) != 0 {
		t.Fatalf("since(15) after ack(15) = %v, %v; want nothing, ok", versions(d), ok)
	}

	// A backlog past keepCap gives its array back once acknowledged.
	add(keepCap + 1)
	l.ack(l.version - 1)
	if cap(l.pending) > keepCap || len(l.pending) != 1 || l.pending[0].Version != l.version {
		t.Fatalf("after a backlog's ack: len %d cap %d; want the newest delta in a small array", len(l.pending), cap(l.pending))
	}
}
