package master

import (
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// maxPendingDeltas bounds the log while the plugin is down; past it the
// master re-Inits the plugin from a snapshot instead of replaying.
const maxPendingDeltas = 100000

// deltaLog numbers every change of allocator-relevant state and keeps the
// ones the plugin has not acknowledged yet.
type deltaLog struct {
	version  uint64 // version of the newest change
	pending  []allocator.Delta
	overflow bool
}

func (l *deltaLog) add(at allocator.LogicalTime, d allocator.Delta) {
	l.version++
	d.Version = l.version
	d.At = at
	if len(l.pending) >= maxPendingDeltas {
		l.overflow = true
		l.pending = nil
		return
	}
	if !l.overflow {
		l.pending = append(l.pending, d)
	}
}

// dropping: the log has overflowed and keeps no delta until the next
// reset. A hot path may then skip building a delta and call skip instead.
func (l *deltaLog) dropping() bool { return l.overflow }

// skip numbers a change the log would drop anyway (see dropping).
func (l *deltaLog) skip() { l.version++ }

// since returns the deltas after version base, or ok=false when they are
// no longer all held.
func (l *deltaLog) since(base uint64) ([]allocator.Delta, bool) {
	if l.overflow {
		return nil, false
	}
	if base == l.version {
		return nil, true
	}
	i := sort.Search(len(l.pending), func(i int) bool { return l.pending[i].Version > base })
	if i == len(l.pending) || l.pending[i].Version != base+1 {
		return nil, false
	}
	return append([]allocator.Delta(nil), l.pending[i:]...), true
}

// keepCap is the capacity up to which ack keeps the log's array for the
// deltas to come.
const keepCap = 16384

// ack drops deltas the plugin now holds. The ones left (those logged
// while the plugin computed) move to the front of the same array: a fresh
// array per cycle, grown again by append through the next one, was a
// third of everything the master allocated in make bench-scale at 10k
// placements a second. An array grown past keepCap by a backlog (the
// plugin was down) is let go once the backlog is acknowledged.
func (l *deltaLog) ack(v uint64) {
	i := sort.Search(len(l.pending), func(i int) bool { return l.pending[i].Version > v })
	if rest := len(l.pending) - i; cap(l.pending) > keepCap && cap(l.pending) > 4*rest {
		l.pending = append([]allocator.Delta(nil), l.pending[i:]...)
		return
	}
	n := copy(l.pending, l.pending[i:])
	clear(l.pending[n:]) // what acknowledged deltas point to can go
	l.pending = l.pending[:n]
}

// reset is called after a fresh Init at the current version.
func (l *deltaLog) reset() {
	l.pending = nil
	l.overflow = false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
