package master

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord"
)

// A standby's memory, kept faulted in for the failover burst.
//
// A master that takes over builds its books from the whole cluster at once:
// some 35 KiB per agent with 10 tasks of heap and goroutine stacks
// (BenchmarkReregistrationGRPC's new-mem-KiB/agent), 350 MiB at 10k agents,
// which a fresh process takes from the OS a page at a time. Those first
// touches were more than half of the new leader's CPU in the burst
// (BenchmarkReregistrationGRPC, 10k agents: about 350 cpu-µs/agent with a
// cold heap, 150-170 with memory the process had touched before). So a
// standby holds that much memory, touched, while it stands by, and frees it
// the moment it leads: the burst then reuses resident pages (the Go
// runtime zeroes them, cheaply, and returns what stays unused to the OS in
// the background). The price is the standby's RSS, which is what it needs
// anyway once it leads.

// WarmBytesPerAgent is how much a standby keeps warm per agent in the
// registry: the burst's new memory per agent, with some margin.
const WarmBytesPerAgent = 40 << 10

// maxWarmBytes caps the warm memory (a registry of a quarter of a million
// agents stops growing it).
const maxWarmBytes = 10 << 30

// HeapWarmer holds touched memory until Release. The zero value holds none.
type HeapWarmer struct {
	mu     sync.Mutex
	chunks [][]byte
	size   int
}

const warmChunk = 1 << 20

// Grow makes the warm memory at least bytes (it never shrinks; capped).
func (w *HeapWarmer) Grow(bytes int) {
	bytes = min(bytes, maxWarmBytes)
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.size < bytes {
		c := make([]byte, warmChunk)
		for i := 0; i < len(c); i += 4096 {
			c[i] = 1 // fault the page in
		}
		w.chunks = append(w.chunks, c)
		w.size += len(c)
	}
}

// Size is how much memory is held warm.
func (w *HeapWarmer) Size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

// Release frees the warm memory and collects it at once, so the
// allocations that follow (the leader's burst) reuse its pages, and the
// next collection is paced by the books, not by the warm memory (which
// would let the heap grow into fresh pages first).
func (w *HeapWarmer) Release() {
	w.mu.Lock()
	had := w.size > 0
	w.chunks, w.size = nil, 0
	w.mu.Unlock()
	if had {
		runtime.GC()
	}
}

// WarmStandby keeps w as large as the agents in the registry's records
// need (WarmBytesPerAgent each), re-reading their number every interval
// (agents are admitted while this master stands by), until ctx ends. A
// store without records, or records that cannot be read, leave w as it
// is: warming is an optimization, never a reason to fail.
func WarmStandby(ctx context.Context, store coord.Store, w *HeapWarmer, every time.Duration, log hclog.Logger) {
	rs, ok := store.(coord.RecordStore)
	if !ok {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		agents, err := rs.Records("agents").List(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Debug("warming the standby's memory: reading the agent records failed", "error", err)
		} else if want := len(agents) * WarmBytesPerAgent; want > w.Size() {
			// In steps, so that leading (ctx ends) never waits for
			// hundreds of MiB to be touched.
			for size := w.Size(); size < want && ctx.Err() == nil; size = w.Size() {
				w.Grow(min(want, size+64<<20))
			}
			log.Debug("standby memory kept warm for the agents in the registry", "agents", len(agents), "mib", w.Size()>>20)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
