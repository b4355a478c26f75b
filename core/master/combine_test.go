package master

import (
	"sync"
	"testing"
	"time"
)

// TestUnderBooksRunsEachOperationOnceUnderTheLock: from many goroutines at
// once, every operation runs exactly once, holding m.mu, before its
// caller returns; and a caller's operations run in its order.
func TestUnderBooksRunsEachOperationOnceUnderTheLock(t *testing.T) {
	m := &Master{}
	const callers, each = 64, 200
	ran := make([][]int, callers)
	var unlocked int
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.underBooks(func() {
					if m.mu.TryLock() {
						unlocked++ // only ever touched with m.mu held: TryLock got it
						m.mu.Unlock()
					}
					ran[c] = append(ran[c], i)
				})
				if len(ran[c]) != i+1 {
					t.Errorf("caller %d: underBooks returned before its operation %d ran", c, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	if unlocked > 0 {
		t.Errorf("%d operations ran without holding m.mu", unlocked)
	}
	for c, r := range ran {
		for i, v := range r {
			if v != i {
				t.Fatalf("caller %d: operations ran as %v; want each once, in order", c, r)
			}
		}
		if len(r) != each {
			t.Fatalf("caller %d: %d operations ran; want %d", c, len(r), each)
		}
	}
	// The goroutine that ran the last batch goes idle just after its
	// callers return.
	idle := func() bool {
		m.combiner.mu.Lock()
		defer m.combiner.mu.Unlock()
		return !m.combiner.active && len(m.combiner.pending) == 0
	}
	for deadline := time.Now().Add(30 * time.Second); !idle(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the combiner is still active 30 s after every caller returned")
		}
	}
}
