package allocator

import (
	"container/heap"
	"slices"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// expiry is a filter's expiry time and key.
type expiry struct {
	at  allocator.LogicalTime
	key allocKey
}

// expiryQueue holds every filter's expiry, soonest first. Filters declined
// together expire together, so keys are grouped by expiry time and only
// the distinct times go through the heap: a cycle that adds thousands of
// one-hour filters pushes one time. Entries of filters that were revived
// or forgotten stay until they surface and are then skipped, which keeps
// removal O(1).
type expiryQueue struct {
	times  timeHeap
	byTime map[allocator.LogicalTime][]allocKey
	// lastLen is the largest number of keys one time has had: how a new
	// time's slice is sized.
	lastLen int
}

func (q *expiryQueue) push(e expiry) {
	if q.byTime == nil {
		q.byTime = map[allocator.LogicalTime][]allocKey{}
	}
	keys, ok := q.byTime[e.at]
	if !ok {
		heap.Push(&q.times, e.at)
		// Sized like the last new time's keys: a cycle's declines all
		// expire together, and growing thousands of keys a slice at a
		// time copied them over and over.
		keys = make([]allocKey, 0, max(q.lastLen, 8))
	}
	keys = append(keys, e.key)
	q.byTime[e.at] = keys
	q.lastLen = max(q.lastLen, len(keys))
}

// popDue removes and returns the keys of the filters expiring at or
// before now.
func (q *expiryQueue) popDue(now allocator.LogicalTime) []allocKey {
	var out []allocKey
	for len(q.times) > 0 && q.times[0] <= now {
		at := heap.Pop(&q.times).(allocator.LogicalTime)
		out = append(out, q.byTime[at]...)
		delete(q.byTime, at)
	}
	return out
}

type timeHeap []allocator.LogicalTime

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(allocator.LogicalTime)) }
func (h *timeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// filterIndex holds decline filters by agent, then by client (framework
// and role, interned): a policy looks at one agent at a time, and a small
// integer-keyed map per agent keeps those lookups in cache and free of
// string hashing however many filters the cluster holds.
type filterIndex map[string]map[ClientRef][]allocator.Filter

func (x filterIndex) get(agent string, ref ClientRef) []allocator.Filter {
	return x[agent][ref]
}

func (x filterIndex) set(agent string, ref ClientRef, fs []allocator.Filter) {
	if len(fs) == 0 {
		x.del(agent, ref)
		return
	}
	m := x[agent]
	if m == nil {
		m = map[ClientRef][]allocator.Filter{}
		x[agent] = m
	}
	m[ref] = fs
}

// add merges f into the client's filters on the agent with one lookup per
// level (see mergeFilter). It reports whether f was kept, and so needs an
// expiry.
func (x filterIndex) add(agent string, ref ClientRef, f allocator.Filter) bool {
	m := x[agent]
	if m == nil {
		m = map[ClientRef][]allocator.Filter{}
		x[agent] = m
	}
	fs, kept := mergeFilter(m[ref], f)
	m[ref] = fs
	return kept
}

// mergeFilter adds f to fs, filters of one framework, role and agent,
// keeping only filters that matter: a filter applies while it lasts to
// anything its resources contain, so one that declined at least as much
// for at least as long makes another redundant. A framework that declines
// the same resources cycle after cycle (or a subset of them) thus keeps one
// filter instead of one per decline, and checks stay short however long
// it keeps declining. It reports whether f was kept.
func mergeFilter(fs []allocator.Filter, f allocator.Filter) ([]allocator.Filter, bool) {
	for _, e := range fs {
		if e.ExpiresAt >= f.ExpiresAt && e.Resources.Contains(f.Resources) {
			return fs, false
		}
	}
	fs = slices.DeleteFunc(fs, func(e allocator.Filter) bool {
		return f.ExpiresAt >= e.ExpiresAt && f.Resources.Contains(e.Resources)
	})
	return append(fs, f), true
}

// CompactFilters returns the smallest set of filters that refuses exactly
// what fs refuses at every time, as a State keeps them: per framework, role
// and agent, a filter is dropped when another one declined at least the
// same resources for at least as long. The result is sorted by framework,
// role, agent and expiry, as State.Filters. A master's raw filter list
// compares with a mirror's filters through it.
func CompactFilters(fs []allocator.Filter) []allocator.Filter {
	byKey := map[allocKey][]allocator.Filter{}
	for _, f := range fs {
		k := allocKey{f.FrameworkID, f.Role, f.AgentID}
		byKey[k], _ = mergeFilter(byKey[k], f)
	}
	var out []allocator.Filter
	for _, kfs := range byKey {
		out = append(out, kfs...)
	}
	sortFilters(out)
	return out
}

func (x filterIndex) del(agent string, ref ClientRef) {
	if m := x[agent]; m != nil {
		delete(m, ref)
		if len(m) == 0 {
			delete(x, agent)
		}
	}
}

// eachFilter calls f for every (framework, role, agent) with filters; f
// may delete the key.
func (s *State) eachFilter(f func(k allocKey, ref ClientRef)) {
	for agent, m := range s.filters {
		for ref := range m {
			c := s.clients.keys[ref]
			f(allocKey{c.framework, c.role, agent}, ref)
		}
	}
}
