// Package statusupdate delivers task status updates to the master at least
// once and in order, as Mesos' status update manager does: each task has a
// queue, only its head is in flight, the head is retried with exponential
// backoff until the master acknowledges its UUID, and only then is the next
// update sent.
package statusupdate

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Defaults follow Mesos: first retry after 10 s, doubling up to 10 min.
const (
	DefaultInitialBackoff = 10 * time.Second
	DefaultMaxBackoff     = 10 * time.Minute
)

// Update is one status update for a framework's task.
type Update struct {
	FrameworkID string
	Status      *corralpb.TaskStatus
}

// Options configure a Manager.
type Options struct {
	// Send hands an update to the master connection. It is called with the
	// manager's lock held, so it must not block and must not call back into
	// the Manager; an error just means the update waits for its retry.
	Send func(Update) error
	// OnTerminalAck runs (without the lock) when a task's terminal update
	// has been acknowledged, i.e. when the agent may forget the task.
	OnTerminalAck  func(frameworkID, taskID string)
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Now            func() time.Time // injected clock; time.Now by default
	Logger         hclog.Logger
}

type key struct{ framework, task string }

type stream struct {
	queue   []Update
	backoff time.Duration
	next    time.Time // when the head is sent again
}

// Manager keeps the per-task queues. It is safe for concurrent use.
type Manager struct {
	opts Options
	wake chan struct{}

	mu      sync.Mutex
	streams map[key]*stream
}

// New returns a Manager; call Run to get retries on wall-clock time.
func New(opts Options) *Manager {
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = DefaultInitialBackoff
	}
	if opts.MaxBackoff < opts.InitialBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.InitialBackoff)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	return &Manager{opts: opts, wake: make(chan struct{}, 1), streams: map[key]*stream{}}
}

// IsTerminal reports whether a task in state s will never change again.
func IsTerminal(s corralpb.TaskState) bool {
	switch s {
	case corralpb.TaskState_TASK_FINISHED, corralpb.TaskState_TASK_FAILED, corralpb.TaskState_TASK_KILLED,
		corralpb.TaskState_TASK_LOST, corralpb.TaskState_TASK_ERROR:
		return true
	}
	return false
}

// Enqueue appends u to its task's queue and sends it at once if it is the
// head.
func (m *Manager) Enqueue(u Update) {
	k := key{u.FrameworkID, u.Status.GetTaskId()}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.streams[k]
	if !ok {
		s = &stream{}
		m.streams[k] = s
	}
	s.queue = append(s.queue, u)
	if len(s.queue) == 1 {
		s.backoff = m.opts.InitialBackoff
		m.sendHeadLocked(k, s)
	}
}

// sendHeadLocked sends s's head and schedules its retry.
func (m *Manager) sendHeadLocked(k key, s *stream) {
	head := s.queue[0]
	if err := m.opts.Send(head); err != nil {
		m.opts.Logger.Debug("status update not sent; will retry", "framework_id", k.framework, "task_id", k.task,
			"state", head.Status.GetState(), "retry_in", s.backoff, "error", err)
	}
	s.next = m.opts.Now().Add(s.backoff)
	m.poke()
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Ack removes the head of the task's queue if uuid matches it and sends the
// next update. It reports whether the acknowledgement matched.
func (m *Manager) Ack(frameworkID, taskID string, uuid []byte) bool {
	k := key{frameworkID, taskID}
	m.mu.Lock()
	s, ok := m.streams[k]
	if !ok || !bytes.Equal(s.queue[0].Status.GetUuid(), uuid) {
		m.mu.Unlock()
		// Duplicate acks are normal after a resend; nothing to do.
		m.opts.Logger.Debug("ignoring acknowledgement that matches no in-flight update",
			"framework_id", frameworkID, "task_id", taskID)
		return false
	}
	acked := s.queue[0]
	s.queue[0] = Update{}
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		delete(m.streams, k)
	} else {
		s.backoff = m.opts.InitialBackoff
		m.sendHeadLocked(k, s)
	}
	m.mu.Unlock()
	if IsTerminal(acked.Status.GetState()) && m.opts.OnTerminalAck != nil {
		m.opts.OnTerminalAck(frameworkID, taskID)
	}
	return true
}

// ResendAll sends every in-flight head now and restarts its backoff; the
// agent calls it after (re)registering, since the old connection may have
// lost them.
func (m *Manager) ResendAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.streams {
		s.backoff = m.opts.InitialBackoff
		m.sendHeadLocked(k, s)
	}
}

// DropFramework forgets every pending update of a framework that is gone
// and returns how many were dropped.
func (m *Manager) DropFramework(frameworkID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, s := range m.streams {
		if k.framework == frameworkID {
			n += len(s.queue)
			delete(m.streams, k)
		}
	}
	return n
}

// RetryDue resends every head whose retry time has come, doubling its
// backoff, and returns the earliest next retry time (zero if none).
func (m *Manager) RetryDue() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	var earliest time.Time
	for k, s := range m.streams {
		if !s.next.After(now) {
			s.backoff = min(2*s.backoff, m.opts.MaxBackoff)
			m.opts.Logger.Debug("retrying unacknowledged status update", "framework_id", k.framework,
				"task_id", k.task, "state", s.queue[0].Status.GetState())
			m.sendHeadLocked(k, s)
		}
		if earliest.IsZero() || s.next.Before(earliest) {
			earliest = s.next
		}
	}
	return earliest
}

// Pending returns a copy of the updates queued for a task, head first.
func (m *Manager) Pending(frameworkID, taskID string) []Update {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.streams[key{frameworkID, taskID}]
	if !ok {
		return nil
	}
	return append([]Update(nil), s.queue...)
}

// Len is the number of queued updates over all tasks.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, s := range m.streams {
		n += len(s.queue)
	}
	return n
}

// Run retries unacknowledged updates on wall-clock time until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.RetryDue()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(m.opts.Now()), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-timer.C:
		}
	}
}
