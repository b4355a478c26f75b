package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/procfs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Watchdog configures a Supervisor's hang detection. A plugin whose process
// is alive but no longer answers (SIGSTOPped, deadlocked, spinning) is not
// noticed by the restart loop, which only sees exits; the watchdog turns
// such a hang into a kill, which the loop does see.
type Watchdog struct {
	// Interval is the time between the end of one ping and the start of
	// the next; 0 means 500ms.
	Interval time.Duration
	// Timeout bounds each ping (the base service's PluginInfo); 0 means 5s.
	// It is generous on purpose: on a loaded machine a healthy plugin may
	// take a second to answer, and killing a slow isolator fails the tasks
	// being launched through it. A stopped process (SIGSTOP) is caught
	// faster by its /proc state, not by pings.
	Timeout time.Duration
	// Misses is how many consecutive missed pings or deadline-exceeded
	// calls (Supervisor.ReportCall) get the plugin killed; 0 means 3, a
	// negative value disables the watchdog.
	Misses int
}

// Watchdog defaults.
const (
	DefaultWatchdogInterval = 500 * time.Millisecond
	DefaultWatchdogTimeout  = 5 * time.Second
	DefaultWatchdogMisses   = 3
)

func (w Watchdog) withDefaults() Watchdog {
	if w.Interval <= 0 {
		w.Interval = DefaultWatchdogInterval
	}
	if w.Timeout <= 0 {
		w.Timeout = DefaultWatchdogTimeout
	}
	if w.Misses == 0 {
		w.Misses = DefaultWatchdogMisses
	}
	return w
}

func (w Watchdog) enabled() bool { return w.Misses > 0 }

// watch pings inst until it exits or supervision ends.
func (s *Supervisor) watch(ctx context.Context, inst *Instance) {
	defer s.watchers.Done()
	w := s.opts.Watchdog
	bp, ok := inst.Raw().(base.Plugin)
	if !ok {
		return // setup already refused such a plugin; nothing to ping
	}
	t := time.NewTimer(w.Interval)
	defer t.Stop()
	stopped := 0 // consecutive checks that found the process stopped
	for {
		select {
		case <-ctx.Done():
			return
		case <-inst.Done():
			return
		case <-t.C:
		}
		// A stopped process (SIGSTOP, a stopped tracer) answers nothing
		// until continued: seen twice an interval apart, it is hung, with
		// no need to wait out the ping timeouts.
		if state, _, err := procfs.Stat(inst.Pid()); err == nil && (state == 'T' || state == 't') {
			stopped++
			if stopped >= 2 {
				s.hardKill(inst, fmt.Sprintf("watchdog: process stopped (state %c) for %s", state, w.Interval*time.Duration(stopped-1)))
				return
			}
			t.Reset(w.Interval)
			continue
		}
		stopped = 0
		pctx, cancel := context.WithTimeout(ctx, w.Timeout)
		_, err := bp.PluginInfo(pctx) // the client maps errors (base.HandleRPCError)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			s.pingOK(inst)
		case inst.Exited():
			// Died under the ping: the restart loop handles exits.
			return
		default:
			s.miss(inst, missPing, err)
		}
		t.Reset(w.Interval)
	}
}

type missSource int

const (
	missPing missSource = iota
	missCall
)

// ReportCall lets callers count their own calls to inst toward the
// watchdog (the master's allocator slot reports each Allocate): a call
// whose deadline passed (context.DeadlineExceeded, or gRPC's
// DeadlineExceeded status) is a miss, a successful call resets the count,
// any other error is the caller's business and counts for nothing. Reports
// about an instance that is no longer current are ignored.
func (s *Supervisor) ReportCall(inst *Instance, err error) {
	if inst == nil || !s.opts.Watchdog.enabled() {
		return
	}
	switch {
	case err == nil:
		s.mu.Lock()
		if s.cur == inst {
			s.pingMisses, s.callMisses = 0, 0
		}
		s.mu.Unlock()
	case IsDeadline(err):
		s.miss(inst, missCall, err)
	}
}

// IsDeadline reports whether a plugin call missed its deadline: the
// context's, or the gRPC DeadlineExceeded status the plugin's side sent.
func IsDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
}

// pingOK resets the misses pings counted. Misses reported by callers
// stand: a plugin whose PluginInfo answers while every Allocate times out
// (one wedged handler) is hung all the same, and a ping's success must not
// keep it alive forever.
func (s *Supervisor) pingOK(inst *Instance) {
	s.mu.Lock()
	if s.cur == inst {
		s.pingMisses = 0
	}
	s.mu.Unlock()
}

// miss counts one miss against inst and kills it once the misses in a row,
// pings and reported calls together, reach Watchdog.Misses.
func (s *Supervisor) miss(inst *Instance, src missSource, err error) {
	s.mu.Lock()
	if s.cur != inst || s.stopped {
		s.mu.Unlock()
		return
	}
	if src == missPing {
		s.pingMisses++
	} else {
		s.callMisses++
	}
	pings, calls := s.pingMisses, s.callMisses
	s.mu.Unlock()
	log := s.log().With("pid", inst.Pid())
	if pings+calls < s.opts.Watchdog.Misses {
		log.Debug("plugin missed a deadline", "misses", pings+calls, "kill_at", s.opts.Watchdog.Misses, "error", err)
		return
	}
	reason := fmt.Sprintf("watchdog: %d consecutive misses (%d pings without an answer within %s, %d calls past their deadline); last: %v",
		pings+calls, pings, s.opts.Watchdog.Timeout, calls, err)
	s.hardKill(inst, reason, "misses", pings+calls)
}

// Kill hard-kills the current instance now (a caller that knows the
// plugin is wedged need not wait for the watchdog); the restart loop then
// starts a new one. It counts as a fault. Nothing happens if no instance
// is current.
func (s *Supervisor) Kill(reason string) {
	s.mu.Lock()
	inst := s.cur
	s.mu.Unlock()
	if inst == nil {
		return
	}
	s.hardKill(inst, reason)
}

// hardKill kills inst if it is still current, counting a fault and making
// the reason what Current reports until the restart.
func (s *Supervisor) hardKill(inst *Instance, reason string, logArgs ...any) {
	s.mu.Lock()
	if s.cur != inst || s.stopped {
		s.mu.Unlock()
		return
	}
	s.faults++
	s.pingMisses, s.callMisses = 0, 0
	// Stop handing out an instance about to die.
	s.cur = nil
	s.lastErr = fmt.Errorf("process %d killed: %s", inst.Pid(), reason)
	s.killed = inst
	s.mu.Unlock()
	s.log().Warn("killing plugin", append([]any{"pid", inst.Pid(), "reason", reason}, logArgs...)...)
	inst.HardKill()
}

// Faults counts the instances killed for hanging: by the watchdog, or by
// Kill.
func (s *Supervisor) Faults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}
