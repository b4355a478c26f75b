package allocator

import (
	"container/heap"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// expiry is a filter's expiry time and key.
type expiry struct {
	at  allocator.LogicalTime
	key allocKey
}

// expiryQueue is a min-heap of filter expiries. Entries of filters that
// were revived or forgotten stay until they surface and are then skipped,
// which keeps removal O(1).
type expiryQueue struct{ h expiryHeap }

func (q *expiryQueue) push(e expiry) { heap.Push(&q.h, e) }
func (q *expiryQueue) pop() expiry   { return heap.Pop(&q.h).(expiry) }
func (q *expiryQueue) peek() expiry  { return q.h[0] }
func (q *expiryQueue) len() int      { return len(q.h) }

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
