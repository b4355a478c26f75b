package master

import "sync"

// maxCombineRounds is how many batches one caller runs for others before
// it hands the rest to a new goroutine and returns.
const maxCombineRounds = 4

// combiner batches the hot calls (acknowledgements, accepts, declines,
// agents' status updates) under one acquisition of the books' lock (flat
// combining). Thousands of such calls a second each taking m.mu made a
// lock convoy: under contention sync.Mutex hands the lock to waiters in
// turn, one goroutine wake-up per call, and on a busy machine each
// wake-up costs milliseconds, so the calls queued on the lock and offers
// expired before launches reached them. Here a caller queues its
// operation; the first caller that finds nobody running the queue runs
// it, batch after batch, each batch under one m.mu acquisition, and the
// others wait only for their own operation to have run.
type combiner struct {
	mu      sync.Mutex
	pending []func()
	active  bool
}

// underBooks runs f holding m.mu, possibly on another caller's goroutine
// and batched with other operations, and returns once f has run. f must
// not call underBooks.
func (m *Master) underBooks(f func()) {
	done := make(chan struct{})
	c := &m.combiner
	c.mu.Lock()
	c.pending = append(c.pending, func() { defer close(done); f() })
	if c.active {
		c.mu.Unlock()
		<-done
		return
	}
	c.active = true
	c.mu.Unlock()
	m.combine(maxCombineRounds)
	<-done
}

// combine runs batches of the queued operations until the queue is empty
// or rounds batches ran (rounds <= 0: no limit); then, with operations
// still queued, a new goroutine carries on, so no caller serves the others
// for long.
func (m *Master) combine(rounds int) {
	c := &m.combiner
	for n := 0; ; n++ {
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.active = false
			c.mu.Unlock()
			return
		}
		if rounds > 0 && n >= rounds {
			c.mu.Unlock()
			go m.combine(rounds)
			return
		}
		batch := c.pending
		c.pending = nil
		c.mu.Unlock()
		m.mu.Lock()
		for _, op := range batch {
			op()
		}
		m.mu.Unlock()
	}
}
