package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// oomWatcher follows the OOM kill count of every container with one
// goroutine woken by the kernel (see notifier), and fans the growths out to
// every Watch stream. It keeps, per container, the count last seen, so
// that a new stream first hears of every container the OOM killer has
// already visited (an agent restarted after an OOM kill is still told) and
// then of each growth.
//
// The notifier exists only while some container is registered: with none,
// the watcher holds no file and runs no goroutine.
type oomWatcher struct {
	logger hclog.Logger
	// file is the count file in a container's memory directory.
	file string
	// notifyFirst says the kernel notifies before it kills (v1: the OOM
	// event fires when the cgroup hits OOM, before the OOM killer has
	// picked and counted its victim), so a notification with no growth
	// yet is read again a few times (recheckDelays).
	notifyFirst bool
	newNotifier func() (notifier, error)
	// loops counts running notifier loops (tests wait for them to end).
	loops sync.WaitGroup

	mu    sync.Mutex
	n     notifier
	regs  map[string]*oomReg // by container ID
	byKey map[int]*oomReg
	subs  map[*oomSub]struct{}
}

// recheckDelays are when a v1 notification that found no new kill reads the
// count again, from the notification: the kill follows the notification
// at once on a quiet machine, but the allocating task can be preempted
// between the two on a loaded one.
var recheckDelays = []time.Duration{5 * time.Millisecond, 25 * time.Millisecond, 100 * time.Millisecond,
	500 * time.Millisecond, 2 * time.Second, 5 * time.Second}

// oomReg is one watched container.
type oomReg struct {
	id      string
	counter *oomCounter
	key     int
	seen    uint64 // the count last read
	recheck int    // index into recheckDelays of the next recheck
	timer   *time.Timer
}

// oomEvent is a container's new OOM kill count, or its end (gone).
type oomEvent struct {
	n    uint64
	gone bool
}

// oomSub is one Watch stream's queue: the latest event per container,
// coalesced, and a wake-up.
type oomSub struct {
	mu      sync.Mutex
	pending map[string]oomEvent
	wake    chan struct{}
}

func newOOMWatcher(logger hclog.Logger, unified bool) *oomWatcher {
	w := &oomWatcher{logger: logger, regs: map[string]*oomReg{}, byKey: map[int]*oomReg{}, subs: map[*oomSub]struct{}{}}
	if unified {
		w.file = "memory.events"
		w.newNotifier = func() (notifier, error) { return newInotifyNotifier() }
	} else {
		w.file = "memory.oom_control"
		w.notifyFirst = true
		w.newNotifier = func() (notifier, error) { return newEventfdNotifier() }
	}
	return w
}

// register starts watching container id, whose memory cgroup is dir. A
// container registered again (same ID) replaces its registration.
func (w *oomWatcher) register(id, dir string) error {
	f, err := os.Open(filepath.Join(dir, w.file))
	if err != nil {
		return fmt.Errorf("open OOM count of %s: %w", dir, err)
	}
	c := &oomCounter{f: f, buf: make([]byte, 512)}
	seen, err := c.read()
	if err != nil {
		c.close()
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == nil {
		n, err := w.newNotifier()
		if err != nil {
			c.close()
			return fmt.Errorf("start OOM notifications: %w", err)
		}
		w.n = n
		w.loops.Add(1)
		go w.loop(n)
	}
	key, err := w.n.add(c)
	if err != nil {
		c.close()
		w.stopIfIdleLocked()
		return fmt.Errorf("watch OOM kills of %s: %w", dir, err)
	}
	if old, ok := w.regs[id]; ok {
		w.dropLocked(old)
	}
	r := &oomReg{id: id, counter: c, key: key, seen: seen}
	w.regs[id] = r
	w.byKey[key] = r
	if seen > 0 {
		w.broadcastLocked(id, oomEvent{n: seen})
	}
	return nil
}

// unregister stops watching container id and releases its files; a
// container not registered is ignored.
func (w *oomWatcher) unregister(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.regs[id]
	if !ok {
		return
	}
	delete(w.regs, id)
	w.dropLocked(r)
	w.broadcastLocked(id, oomEvent{gone: true})
	w.stopIfIdleLocked()
}

// retain unregisters every container not in keep.
func (w *oomWatcher) retain(keep func(id string) bool) {
	w.mu.Lock()
	var drop []string
	for id := range w.regs {
		if !keep(id) {
			drop = append(drop, id)
		}
	}
	w.mu.Unlock()
	for _, id := range drop {
		w.unregister(id)
	}
}

func (w *oomWatcher) dropLocked(r *oomReg) {
	if w.byKey[r.key] == r {
		delete(w.byKey, r.key)
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	w.n.remove(r.key)
	r.counter.close()
}

// stopIfIdleLocked closes the notifier once nothing is registered; its
// loop ends on the error wait then returns.
func (w *oomWatcher) stopIfIdleLocked() {
	if len(w.regs) > 0 || w.n == nil {
		return
	}
	if err := w.n.close(); err != nil {
		w.logger.Warn("close OOM notifier", "error", err)
	}
	w.n = nil
}

// loop reads n's notifications until n is closed.
func (w *oomWatcher) loop(n notifier) {
	defer w.loops.Done()
	for {
		keys, err := n.wait()
		w.mu.Lock()
		if w.n != n {
			w.mu.Unlock()
			return // closed (and perhaps replaced by a new one)
		}
		if err != nil {
			// Not a close: a notifier that cannot be read is no longer
			// a watcher; OOM kills are still found when tasks exit.
			w.logger.Error("OOM notifications failed; OOM kills are now found only when tasks exit", "error", err)
			w.mu.Unlock()
			return
		}
		for _, k := range keys {
			if k == anyKey {
				for _, r := range w.regs {
					w.checkLocked(r, false)
				}
				continue
			}
			if r, ok := w.byKey[k]; ok {
				w.n.ack(k)
				w.checkLocked(r, true)
			}
		}
		w.mu.Unlock()
	}
}

// checkLocked reads r's count and tells every stream if it grew. After a
// notification (notified) that found no growth where the kernel notifies
// first, it reads again later.
func (w *oomWatcher) checkLocked(r *oomReg, notified bool) {
	n, err := r.counter.read()
	if err != nil {
		return // the cgroup is being removed: nothing to report
	}
	if n > r.seen {
		r.seen = n
		r.recheck = len(recheckDelays)
		if r.timer != nil {
			r.timer.Stop()
		}
		w.broadcastLocked(r.id, oomEvent{n: n})
		return
	}
	if !w.notifyFirst {
		return
	}
	if notified {
		r.recheck = 0
	}
	if r.recheck >= len(recheckDelays) {
		return
	}
	d := recheckDelays[r.recheck]
	r.recheck++
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.regs[r.id] == r {
			w.checkLocked(r, false)
		}
	})
}

func (w *oomWatcher) broadcastLocked(id string, ev oomEvent) {
	for s := range w.subs {
		s.push(id, ev)
	}
}

// subscribe returns a new stream's queue, holding every container whose
// count is already above zero.
func (w *oomWatcher) subscribe() *oomSub {
	s := &oomSub{pending: map[string]oomEvent{}, wake: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, r := range w.regs {
		if r.seen > 0 {
			s.push(id, oomEvent{n: r.seen})
		}
	}
	w.subs[s] = struct{}{}
	return s
}

func (w *oomWatcher) unsubscribe(s *oomSub) {
	w.mu.Lock()
	delete(w.subs, s)
	w.mu.Unlock()
}

// registered is how many containers are watched.
func (w *oomWatcher) registered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.regs)
}

func (s *oomSub) push(id string, ev oomEvent) {
	s.mu.Lock()
	s.pending[id] = ev
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns and clears what is pending.
func (s *oomSub) take() map[string]oomEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	p := s.pending
	s.pending = map[string]oomEvent{}
	return p
}
