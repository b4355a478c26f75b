package allocator

import (
	"container/heap"
	"slices"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Decline filters are the one part of the mirror that grows every cycle:
// at scale thousands of frameworks decline thousands of offers for an hour
// each, and the filters pile up until they expire. So a filter is kept as
// small as it can be: 16 bytes in its agent's entry (the client as a
// ClientRef, its declined resources as an index into the agent's table of
// distinct declined resource lists, and its expiry in logical ms) and 8
// bytes in the expiry queue (the agent's slot and the client). No ID
// string is stored per filter, and declines of the same resources on one
// agent (the usual case: the agent's free resources offered in turn to one
// framework after another) share one resource list.

// filterEntry is one decline filter on an agent.
type filterEntry struct {
	client  ClientRef
	res     uint32 // index into agentFilters.res
	expires allocator.LogicalTime
}

// filterRes is one distinct declined resource list of an agent's filters,
// with the number of filters using it (0: the slot is free).
type filterRes struct {
	r    resources.Resources
	refs int32
}

// agentFilters is the decline filters on one agent.
type agentFilters struct {
	// entries are sorted by client (a client's filters are adjacent), so
	// that a policy's check of one client is a binary search.
	entries []filterEntry
	res     []filterRes
}

// of returns the client's filters: a subslice of f.entries.
func (f *agentFilters) of(client ClientRef) []filterEntry {
	i, found := slices.BinarySearchFunc(f.entries, client, cmpClient)
	if !found {
		return nil
	}
	j := i + 1
	for j < len(f.entries) && f.entries[j].client == client {
		j++
	}
	return f.entries[i:j]
}

func cmpClient(e filterEntry, c ClientRef) int { return int(e.client) - int(c) }

// filtered reports whether an active filter of client refuses offered.
func (f *agentFilters) filtered(client ClientRef, offered resources.Resources, now allocator.LogicalTime) bool {
	if len(f.entries) == 0 {
		return false
	}
	for _, e := range f.of(client) {
		if now < e.expires && f.res[e.res].r.Contains(offered) {
			return true
		}
	}
	return false
}

// add merges a filter into the client's (see mergeFilter for the rule)
// and reports whether it was kept, and so needs an expiry.
func (f *agentFilters) add(client ClientRef, r resources.Resources, expires allocator.LogicalTime) bool {
	i, _ := slices.BinarySearchFunc(f.entries, client, cmpClient)
	j := i
	for ; j < len(f.entries) && f.entries[j].client == client; j++ {
		e := f.entries[j]
		if e.expires >= expires && f.res[e.res].r.Contains(r) {
			return false
		}
	}
	// Drop the client's filters the new one makes redundant.
	k := i
	for n := i; n < j; n++ {
		e := f.entries[n]
		if expires >= e.expires && r.Contains(f.res[e.res].r) {
			f.release(e.res)
			continue
		}
		f.entries[k] = e
		k++
	}
	if k < j {
		f.entries = slices.Delete(f.entries, k, j)
	}
	f.entries = slices.Insert(f.entries, k, filterEntry{client: client, res: f.intern(r), expires: expires})
	return true
}

// intern returns the index of r in f.res, adding it (or reusing a free
// slot) when no filter on the agent refuses the same resources yet.
func (f *agentFilters) intern(r resources.Resources) uint32 {
	free := -1
	for i := range f.res {
		switch {
		case f.res[i].refs == 0:
			if free < 0 {
				free = i
			}
		case f.res[i].r.Equal(r):
			f.res[i].refs++
			return uint32(i)
		}
	}
	if free < 0 {
		free = len(f.res)
		f.res = append(f.res, filterRes{})
	}
	f.res[free] = filterRes{r: r, refs: 1}
	return uint32(free)
}

// release drops one use of resource list i.
func (f *agentFilters) release(i uint32) {
	if f.res[i].refs--; f.res[i].refs == 0 {
		f.res[i].r = resources.Resources{}
	}
}

// removeWhere drops the filters drop selects and reports whether any was.
func (f *agentFilters) removeWhere(drop func(filterEntry) bool) bool {
	n := len(f.entries)
	f.entries = slices.DeleteFunc(f.entries, func(e filterEntry) bool {
		if drop(e) {
			f.release(e.res)
			return true
		}
		return false
	})
	if len(f.entries) == 0 {
		// Nothing refers to the table any more: give its memory back.
		f.entries, f.res = nil, nil
	}
	return len(f.entries) != n
}

// expiry names the filters of one client on one agent that may expire at
// a time: the agent by its slot in State.agentSlots. Slots and client refs
// are reused once their agent or framework is gone, so an entry may come
// to name another agent or client; expiring then only drops filters whose
// time has come, which is right whoever they belong to.
type expiry struct {
	slot   int32
	client ClientRef
}

// expiryQueue holds every filter's expiry, soonest first. Filters declined
// together expire together, so entries are grouped by expiry time and only
// the distinct times go through the heap: a cycle that adds thousands of
// one-hour filters pushes one time. Entries of filters that were revived
// or forgotten stay until they surface and are then skipped, which keeps
// removal O(1).
type expiryQueue struct {
	times  timeHeap
	byTime map[allocator.LogicalTime][]expiry
	// lastLen is the largest number of entries one time has had: how a
	// new time's slice is sized.
	lastLen int
}

func (q *expiryQueue) push(at allocator.LogicalTime, e expiry) {
	if q.byTime == nil {
		q.byTime = map[allocator.LogicalTime][]expiry{}
	}
	es, ok := q.byTime[at]
	if !ok {
		heap.Push(&q.times, at)
		// Sized like the last new time's entries: a cycle's declines all
		// expire together, and growing thousands of entries a slice at a
		// time copied them over and over.
		es = make([]expiry, 0, max(q.lastLen, 8))
	}
	es = append(es, e)
	q.byTime[at] = es
	q.lastLen = max(q.lastLen, len(es))
}

// popDue removes and returns the entries of the filters expiring at or
// before now.
func (q *expiryQueue) popDue(now allocator.LogicalTime) []expiry {
	var out []expiry
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

// mergeFilter adds f to fs, filters of one framework, role and agent,
// keeping only filters that matter: a filter applies while it lasts to
// anything its resources contain, so one that declined at least as much
// for at least as long makes another redundant. A framework that declines
// the same resources cycle after cycle (or a subset of them) thus keeps one
// filter instead of one per decline, and checks stay short however long
// it keeps declining. It reports whether f was kept. (agentFilters.add
// applies the same rule to the mirror's compact entries.)
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

// addFilter records a decline of r by the client on agent e until expires.
func (s *State) addFilter(e *agentEntry, framework, role string, r resources.Resources, expires allocator.LogicalTime) {
	ref := s.clients.intern(framework, role)
	if e.filters.add(ref, r, expires) {
		s.filterQueue.push(expires, expiry{slot: e.slot, client: ref})
	}
}

// removeFilters drops the filters drop selects on every agent, marking the
// agents that lost one as changed.
func (s *State) removeFilters(drop func(filterEntry) bool) {
	for id, e := range s.agents {
		if len(e.filters.entries) > 0 && e.filters.removeWhere(drop) {
			s.markChanged(id)
		}
	}
}
