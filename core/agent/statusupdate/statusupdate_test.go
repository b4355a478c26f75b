package statusupdate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// fakeClock is advanced by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// wire records what the manager sent, and can be "disconnected".
type wire struct {
	mu   sync.Mutex
	sent []Update
	down bool
}

func (w *wire) Send(u Update) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		return errors.New("not connected")
	}
	w.sent = append(w.sent, u)
	return nil
}

func (w *wire) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, u := range w.sent {
		out = append(out, fmt.Sprintf("%s/%s:%s", u.FrameworkID, u.Status.GetTaskId(), u.Status.GetState()))
	}
	w.sent = nil
	return out
}

func (w *wire) setDown(d bool) { w.mu.Lock(); w.down = d; w.mu.Unlock() }

var seq byte

func upd(fw, task string, st corralpb.TaskState) Update {
	seq++
	return Update{FrameworkID: fw, Status: &corralpb.TaskStatus{TaskId: task, State: st, Uuid: []byte{seq}}}
}

type acked struct{ fw, task string }

func newManager(t *testing.T) (*Manager, *wire, *fakeClock, *[]acked) {
	t.Helper()
	w := &wire{}
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var mu sync.Mutex
	terminal := &[]acked{}
	m := New(Options{
		Send:           w.Send,
		InitialBackoff: 10 * time.Second,
		MaxBackoff:     40 * time.Second,
		Now:            clk.Now,
		OnTerminalAck: func(fw, task string) {
			mu.Lock()
			defer mu.Unlock()
			*terminal = append(*terminal, acked{fw, task})
		},
	})
	return m, w, clk, terminal
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestRetryUntilAckWithBackoff(t *testing.T) {
	m, w, clk, terminal := newManager(t)
	u := upd("fw", "t1", corralpb.TaskState_TASK_FINISHED)
	m.Enqueue(u)
	equal(t, "first send", w.take(), []string{"fw/t1:TASK_FINISHED"})

	// Retries come at +10 s, then +20 s, then every 40 s (the cap).
	for i, gap := range []time.Duration{10, 20, 40, 40} {
		clk.Advance(gap*time.Second - time.Millisecond)
		m.RetryDue()
		equal(t, fmt.Sprintf("retry %d before due", i), w.take(), nil)
		clk.Advance(time.Millisecond)
		next := m.RetryDue()
		equal(t, fmt.Sprintf("retry %d", i), w.take(), []string{"fw/t1:TASK_FINISHED"})
		if want := min(2*gap, 40) * time.Second; next.Sub(clk.Now()) != want {
			t.Fatalf("retry %d: next retry in %v, want %v", i, next.Sub(clk.Now()), want)
		}
	}

	if m.Ack("fw", "t1", []byte("wrong")) {
		t.Fatal("ack with a wrong uuid matched")
	}
	if len(*terminal) != 0 {
		t.Fatal("terminal ack reported before the ack")
	}
	if !m.Ack("fw", "t1", u.Status.Uuid) {
		t.Fatal("ack with the head's uuid did not match")
	}
	if m.Len() != 0 {
		t.Fatalf("%d updates left after ack", m.Len())
	}
	if len(*terminal) != 1 || (*terminal)[0] != (acked{"fw", "t1"}) {
		t.Fatalf("terminal acks = %v", *terminal)
	}
	clk.Advance(time.Hour)
	if next := m.RetryDue(); !next.IsZero() {
		t.Fatalf("retry scheduled after ack: %v", next)
	}
	equal(t, "after ack", w.take(), nil)
	if m.Ack("fw", "t1", u.Status.Uuid) {
		t.Fatal("duplicate ack matched")
	}
}

func TestOrderingPerTask(t *testing.T) {
	m, w, _, terminal := newManager(t)
	a1 := upd("fw", "a", corralpb.TaskState_TASK_STARTING)
	a2 := upd("fw", "a", corralpb.TaskState_TASK_RUNNING)
	a3 := upd("fw", "a", corralpb.TaskState_TASK_FAILED)
	b1 := upd("fw", "b", corralpb.TaskState_TASK_STARTING)
	m.Enqueue(a1)
	m.Enqueue(a2)
	m.Enqueue(b1)
	m.Enqueue(a3)
	// Only the heads go out; b is independent of a.
	equal(t, "heads", w.take(), []string{"fw/a:TASK_STARTING", "fw/b:TASK_STARTING"})
	// Acking a later update out of order does nothing.
	if m.Ack("fw", "a", a2.Status.Uuid) {
		t.Fatal("ack of a non-head update matched")
	}
	equal(t, "after stray ack", w.take(), nil)
	m.Ack("fw", "a", a1.Status.Uuid)
	equal(t, "after ack 1", w.take(), []string{"fw/a:TASK_RUNNING"})
	m.Ack("fw", "a", a2.Status.Uuid)
	equal(t, "after ack 2", w.take(), []string{"fw/a:TASK_FAILED"})
	if got := m.Pending("fw", "a"); len(got) != 1 || got[0].Status != a3.Status {
		t.Fatalf("pending = %v", got)
	}
	m.Ack("fw", "a", a3.Status.Uuid)
	equal(t, "after ack 3", w.take(), nil)
	if len(*terminal) != 1 {
		t.Fatalf("terminal acks = %v", *terminal)
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (b's head)", m.Len())
	}
}

func TestResendAfterReconnect(t *testing.T) {
	m, w, clk, _ := newManager(t)
	w.setDown(true)
	a1 := upd("fw", "a", corralpb.TaskState_TASK_STARTING)
	m.Enqueue(a1)
	m.Enqueue(upd("fw", "a", corralpb.TaskState_TASK_RUNNING))
	m.Enqueue(upd("fw2", "b", corralpb.TaskState_TASK_RUNNING))
	clk.Advance(10 * time.Second)
	m.RetryDue() // fails: still down; backoff grows anyway
	equal(t, "while down", w.take(), nil)

	w.setDown(false)
	m.ResendAll()
	got := w.take()
	if len(got) != 2 || !(got[0] == "fw/a:TASK_STARTING" || got[1] == "fw/a:TASK_STARTING") {
		t.Fatalf("resent %v, want both heads", got)
	}
	// Backoff restarts at the initial value after a resend.
	clk.Advance(10 * time.Second)
	m.RetryDue()
	if got := w.take(); len(got) != 2 {
		t.Fatalf("retry after resend sent %v, want both heads again", got)
	}
	m.Ack("fw", "a", a1.Status.Uuid)
	equal(t, "after ack", w.take(), []string{"fw/a:TASK_RUNNING"})
}

func TestDropFramework(t *testing.T) {
	m, w, clk, terminal := newManager(t)
	m.Enqueue(upd("gone", "a", corralpb.TaskState_TASK_RUNNING))
	m.Enqueue(upd("gone", "a", corralpb.TaskState_TASK_KILLED))
	m.Enqueue(upd("gone", "b", corralpb.TaskState_TASK_FINISHED))
	keep := upd("stays", "c", corralpb.TaskState_TASK_RUNNING)
	m.Enqueue(keep)
	w.take()
	if n := m.DropFramework("gone"); n != 3 {
		t.Fatalf("dropped %d, want 3", n)
	}
	clk.Advance(time.Minute)
	m.RetryDue()
	equal(t, "retries after drop", w.take(), []string{"stays/c:TASK_RUNNING"})
	if len(*terminal) != 0 {
		t.Fatalf("dropping reported terminal acks: %v", *terminal)
	}
	if got := m.Pending("stays", "c"); len(got) != 1 {
		t.Fatalf("other framework lost its update: %v", got)
	}
}

// TestRunRetriesOnWallClock drives Run with a short real backoff and waits
// for the retries with a deadline.
func TestRunRetriesOnWallClock(t *testing.T) {
	w := &wire{}
	m := New(Options{Send: w.Send, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	u := upd("fw", "t", corralpb.TaskState_TASK_RUNNING)
	m.Enqueue(u)
	sends := 0
	deadline := time.Now().Add(5 * time.Second)
	for sends < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d sends within 5 s", sends)
		}
		sends += len(w.take())
		time.Sleep(5 * time.Millisecond)
	}
	m.Ack("fw", "t", u.Status.Uuid)
	w.take()
	// Once acknowledged, nothing more is sent: the next retry would have
	// been due within 40 ms, so 10 backoffs' worth is a generous check.
	quiet := time.Now().Add(400 * time.Millisecond)
	for time.Now().Before(quiet) {
		if got := w.take(); len(got) != 0 {
			t.Fatalf("sent %v after ack", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
