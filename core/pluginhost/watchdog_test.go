package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/procfs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestWatchdogDefaults(t *testing.T) {
	got := Options{}.withDefaults().Watchdog
	if want := (Watchdog{Interval: 500 * time.Millisecond, Timeout: 5 * time.Second, Misses: 3}); got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if w := (Watchdog{Misses: -1}).withDefaults(); w.enabled() {
		t.Errorf("Misses -1 gave %+v, enabled", w)
	}
	if w := (Watchdog{Interval: time.Minute, Timeout: time.Hour, Misses: 7}).withDefaults(); w.Interval != time.Minute || w.Timeout != time.Hour || w.Misses != 7 {
		t.Errorf("explicit settings changed to %+v", w)
	}
}

// gone reports whether the process that was pid at startTicks has exited
// and been reaped (no /proc entry, or one for a later process).
func gone(pid int, startTicks uint64) bool {
	_, ticks, err := procfs.Stat(pid)
	return errors.Is(err, procfs.ErrNoProcess) || err == nil && ticks != startTicks
}

// supervise starts a supervisor and returns its first instance and that
// instance's start time. Processes are SIGKILLed at cleanup before Stop,
// so that a test that stopped a plugin does not make Stop wait.
func supervise(t *testing.T, spec Spec, opts Options) (*Supervisor, *Instance, uint64) {
	t.Helper()
	s := NewSupervisor(spec, opts, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	inst, err := s.Current()
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, inst.Pid())
	_, ticks, err := procfs.Stat(inst.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return s, inst, ticks
}

// waitReplaced waits for the supervisor to serve an instance other than old.
func waitReplaced(t *testing.T, s *Supervisor, old *Instance) *Instance {
	t.Helper()
	var next *Instance
	waitFor(t, fmt.Sprintf("a new instance to replace pid %d", old.Pid()), 60*time.Second, func() bool {
		next, _ = s.Current()
		return next != nil && next != old
	})
	killOnCleanup(t, next.Pid())
	return next
}

func stop(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A watchdog polling faster than a loaded test may see the stop, kill
	// the plugin and reap it before this loop looks: gone counts as
	// stopped here, and callers assert what the watchdog did (or did not).
	waitFor(t, fmt.Sprintf("pid %d to stop", pid), 10*time.Second, func() bool {
		state, _, err := procfs.Stat(pid)
		return (err == nil && (state == 'T' || state == 'Z')) || errors.Is(err, procfs.ErrNoProcess)
	})
}

// A SIGSTOPped plugin is alive to the restart loop; only the watchdog sees
// it hang. It must be killed and replaced, for every kind supervised.
func TestWatchdogKillsStoppedPlugin(t *testing.T) {
	for _, kind := range []string{base.KindAllocator, base.KindIsolator} {
		t.Run(kind, func(t *testing.T) {
			logger, sink := testLogger(t)
			spec := Spec{Kind: kind, Name: "hung", Path: testPlugin, Args: []string{"-kind=" + kind}}
			// Fast checks: a stopped process is caught by its /proc
			// state, seen stopped twice, without waiting out ping
			// timeouts.
			s, first, ticks := supervise(t, spec, Options{Logger: logger, Watchdog: Watchdog{Interval: 50 * time.Millisecond}})

			stop(t, first.Pid())
			next := waitReplaced(t, s, first)

			if !gone(first.Pid(), ticks) {
				t.Errorf("stopped pid %d still exists (not killed, or not reaped)", first.Pid())
			}
			if s.Faults() != 1 || s.Restarts() != 1 {
				t.Errorf("Faults = %d, Restarts = %d; want 1 and 1", s.Faults(), s.Restarts())
			}
			if !procfs.Alive(next.Pid(), 0) || next.Pid() == first.Pid() {
				t.Errorf("new pid %d (old %d) is not a live new process", next.Pid(), first.Pid())
			}
			for _, w := range []string{"[WARN]  host: killing plugin:", "plugin=hung", fmt.Sprintf("pid=%d", first.Pid()), "watchdog: process stopped (state T)"} {
				if !sink.contains(w) {
					t.Errorf("log does not contain %q:\n%s", w, sink.String())
				}
			}
			// The new instance answers.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := next.Raw().(base.Plugin).PluginInfo(ctx); err != nil {
				t.Fatalf("PluginInfo on the restarted plugin: %v", err)
			}
		})
	}
}

func TestSupervisorReportCall(t *testing.T) {
	// Pings every hour: only reports count here.
	s, first, ticks := supervise(t, allocSpec(), Options{Watchdog: Watchdog{Interval: time.Hour, Misses: 3}})
	deadline := fmt.Errorf("Allocate: %w", context.DeadlineExceeded)
	grpcDeadline := status.Error(codes.DeadlineExceeded, "context deadline exceeded")
	alive := func(step string) {
		t.Helper()
		if cur, err := s.Current(); cur != first || s.Faults() != 0 {
			t.Fatalf("%s: Current = %v, %v; Faults = %d; want the first instance, no faults", step, cur, err, s.Faults())
		}
	}

	s.ReportCall(first, deadline)
	s.ReportCall(first, grpcDeadline)
	alive("two misses")
	s.ReportCall(first, nil) // a success resets the count
	s.ReportCall(first, deadline)
	s.ReportCall(first, deadline)
	alive("a success, then two misses")
	// Errors other than deadlines neither count nor reset.
	s.ReportCall(first, errors.New("invalid proposal"))
	s.ReportCall(first, fmt.Errorf("call: %w", base.ErrPluginUnavailable))
	alive("two other errors")

	s.ReportCall(first, grpcDeadline) // the third miss in a row
	if s.Faults() != 1 {
		t.Fatalf("Faults = %d after 3 consecutive misses, want 1", s.Faults())
	}
	if _, err := s.Current(); !errors.Is(err, base.ErrPluginUnavailable) || !strings.Contains(err.Error(), "3 consecutive misses") {
		t.Errorf("Current right after the kill = %v, want unavailable, saying why", err)
	}
	next := waitReplaced(t, s, first)
	if !gone(first.Pid(), ticks) {
		t.Errorf("killed pid %d still exists", first.Pid())
	}

	// Reports about the old instance are ignored.
	for range 5 {
		s.ReportCall(first, deadline)
	}
	if cur, _ := s.Current(); cur != next || s.Faults() != 1 || s.Restarts() != 1 {
		t.Errorf("after reports on the old instance: Current %v (want %v), Faults %d, Restarts %d", cur, next, s.Faults(), s.Restarts())
	}
}

// A real call past its deadline, reported as the allocator slot does.
func TestSupervisorReportCallRealDeadline(t *testing.T) {
	s, first, ticks := supervise(t, allocSpec(), Options{Watchdog: Watchdog{Interval: time.Hour, Misses: 2}})
	stop(t, first.Pid())
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := first.Raw().(base.Plugin).PluginInfo(ctx)
		cancel()
		if !IsDeadline(err) {
			t.Fatalf("call %d to a stopped plugin: %v, want a deadline error", i, err)
		}
		s.ReportCall(first, err)
	}
	waitReplaced(t, s, first)
	if !gone(first.Pid(), ticks) || s.Faults() != 1 {
		t.Errorf("stopped pid %d gone: %v; Faults = %d, want 1", first.Pid(), gone(first.Pid(), ticks), s.Faults())
	}
}

func TestWatchdogDisabled(t *testing.T) {
	logger, sink := testLogger(t)
	// The enabled watchdog must catch its plugin by the stopped state
	// alone: with one missed ping enough, a healthy plugin answering a
	// ping late on a loaded machine was killed before the test could stop
	// it (make test-stress, CI: SIGSTOP found no such process).
	fast := Watchdog{Interval: 20 * time.Millisecond, Timeout: time.Second, Misses: 1000}
	off := fast
	off.Misses = -1
	on, onFirst, _ := supervise(t, allocSpec(), Options{Watchdog: fast})
	s, first, ticks := supervise(t, allocSpec(), Options{Logger: logger, Watchdog: off})
	stop(t, first.Pid())
	stop(t, onFirst.Pid())
	for range 5 {
		s.ReportCall(first, context.DeadlineExceeded)
	}
	// The same watchdog, enabled, kills its stopped plugin; by then the
	// disabled one has had every chance to.
	waitReplaced(t, on, onFirst)
	if cur, _ := s.Current(); cur != first || s.Faults() != 0 {
		t.Fatalf("disabled watchdog: Current %v, Faults %d; want the stopped instance, no faults", cur, s.Faults())
	}
	if state, _, err := procfs.Stat(first.Pid()); err != nil || state != 'T' {
		t.Fatalf("stopped plugin: state %c, %v; want still stopped", state, err)
	}

	// Kill works without the watchdog.
	s.Kill("operator asked")
	if s.Faults() != 1 {
		t.Errorf("Faults = %d after Kill, want 1", s.Faults())
	}
	waitReplaced(t, s, first)
	if !gone(first.Pid(), ticks) {
		t.Errorf("killed pid %d still exists", first.Pid())
	}
	if !sink.contains("killing plugin:") || !sink.contains(`reason="operator asked"`) {
		t.Errorf("log does not name the reason:\n%s", sink.String())
	}
}

// Stop must not wait forever on a plugin that cannot answer go-plugin's
// shutdown request.
func TestStopStoppedPlugin(t *testing.T) {
	s, first, ticks := supervise(t, allocSpec(), Options{Watchdog: Watchdog{Misses: -1}})
	stop(t, first.Pid())
	done := make(chan struct{})
	go func() { defer close(done); s.Stop() }()
	waitFor(t, "Stop to return", 60*time.Second, func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	if !gone(first.Pid(), ticks) {
		t.Errorf("pid %d still exists after Stop", first.Pid())
	}
}
