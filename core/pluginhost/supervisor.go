package pluginhost

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-hclog"
)

// Restart backoff: a crashing plugin is restarted after minBackoff, doubling
// up to maxBackoff; once an instance has run for stableAfter, the next
// crash starts again from minBackoff.
const (
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 30 * time.Second
	stableAfter = time.Minute
)

// Supervisor keeps one plugin running: it restarts the plugin when its
// process exits, with exponential backoff, and calls onStart on every new
// instance before handing it out (the master re-Inits the allocator there).
// All methods are safe for concurrent use.
type Supervisor struct {
	spec    Spec
	opts    Options
	onStart func(ctx context.Context, inst *Instance) error

	minBackoff, maxBackoff, stableAfter time.Duration

	mu       sync.Mutex
	cur      *Instance
	lastErr  error // why cur is nil
	restarts int
	started  bool
	stopped  bool
	cancel   context.CancelFunc
	loopDone chan struct{}
	// Watchdog state: consecutive misses of cur, by source (see pingOK),
	// kills counted, and the instance last killed (its exit is expected).
	pingMisses, callMisses int
	faults                 int
	killed                 *Instance
	watchers               sync.WaitGroup // one watch goroutine per instance
}

// NewSupervisor returns a supervisor for spec; nothing runs until Start.
// onStart may be nil. opts.Watchdog configures hang detection (on by
// default).
func NewSupervisor(spec Spec, opts Options, onStart func(ctx context.Context, inst *Instance) error) *Supervisor {
	return &Supervisor{
		spec: spec, opts: opts.withDefaults(), onStart: onStart,
		minBackoff: minBackoff, maxBackoff: maxBackoff, stableAfter: stableAfter,
	}
}

// Start starts the plugin and calls onStart, synchronously: a missing or
// wrong binary, or a failing onStart, is returned here and nothing keeps
// running. After that the plugin is supervised until Stop; ctx only bounds
// this first start.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return fmt.Errorf("%s plugin %q: supervisor already started", s.spec.Kind, s.spec.Name)
	}
	s.started = true
	s.mu.Unlock()

	inst, err := s.startOnce(ctx)
	if err != nil {
		s.mu.Lock()
		s.stopped = true
		s.lastErr = err
		s.mu.Unlock()
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	if s.stopped { // Stop raced with the first start
		s.mu.Unlock()
		cancel()
		inst.Kill()
		return fmt.Errorf("%s plugin %q: supervisor stopped during start", s.spec.Kind, s.spec.Name)
	}
	s.cur, s.cancel, s.loopDone = inst, cancel, make(chan struct{})
	s.startWatch(runCtx, inst)
	s.mu.Unlock()
	go s.loop(runCtx, inst)
	return nil
}

// startWatch starts the watchdog on inst; s.mu must be held, so that Stop
// cannot begin waiting for watchers in between.
func (s *Supervisor) startWatch(ctx context.Context, inst *Instance) {
	if !s.opts.Watchdog.enabled() {
		return
	}
	s.watchers.Add(1)
	go s.watch(ctx, inst)
}

func (s *Supervisor) log() hclog.Logger {
	return s.opts.Logger.With("plugin", s.spec.Name, "kind", s.spec.Kind)
}

// startOnce starts an instance and runs onStart on it.
func (s *Supervisor) startOnce(ctx context.Context) (*Instance, error) {
	inst, err := Start(ctx, s.spec, s.opts)
	if err != nil {
		return nil, err
	}
	if s.onStart != nil {
		if err := s.onStart(ctx, inst); err != nil {
			inst.Kill()
			return nil, fmt.Errorf("%s plugin %q (%s): on start: %w", s.spec.Kind, s.spec.Name, s.spec.Path, err)
		}
	}
	return inst, nil
}

func (s *Supervisor) loop(ctx context.Context, inst *Instance) {
	defer close(s.loopDone)
	log := s.log()
	backoff := s.minBackoff
	for {
		began := time.Now()
		select {
		case <-inst.Done():
		case <-ctx.Done():
			return
		}
		if time.Since(began) >= s.stableAfter {
			backoff = s.minBackoff
		}
		s.mu.Lock()
		s.cur = nil
		if s.killed != inst { // else lastErr already says why
			s.lastErr = fmt.Errorf("process %d exited", inst.Pid())
		}
		s.mu.Unlock()
		inst.Kill() // reap go-plugin's goroutines
		log.Warn("plugin exited; restarting", "pid", inst.Pid(), "backoff", backoff)

		for {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, s.maxBackoff)
			next, err := s.startOnce(ctx)
			if err != nil {
				log.Error("plugin restart failed", "error", err, "next_backoff", backoff)
				s.mu.Lock()
				s.lastErr = err
				s.mu.Unlock()
				continue
			}
			inst = next
			break
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			inst.Kill()
			return
		}
		s.cur, s.lastErr = inst, nil
		s.pingMisses, s.callMisses = 0, 0
		s.restarts++
		n := s.restarts
		s.startWatch(ctx, inst)
		s.mu.Unlock()
		log.Info("plugin restarted", "pid", inst.Pid(), "restarts", n)
	}
}

// Current returns the running instance, or an error wrapping
// base.ErrPluginUnavailable while the plugin is being restarted (or after
// Stop).
func (s *Supervisor) Current() (*Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.cur != nil:
		return s.cur, nil
	case s.stopped && s.lastErr == nil:
		return nil, fmt.Errorf("%s plugin %q: stopped: %w", s.spec.Kind, s.spec.Name, base.ErrPluginUnavailable)
	case s.stopped:
		return nil, fmt.Errorf("%s plugin %q: not running (%v): %w", s.spec.Kind, s.spec.Name, s.lastErr, base.ErrPluginUnavailable)
	case s.lastErr != nil:
		return nil, fmt.Errorf("%s plugin %q: restarting (%v): %w", s.spec.Kind, s.spec.Name, s.lastErr, base.ErrPluginUnavailable)
	}
	return nil, fmt.Errorf("%s plugin %q: not started: %w", s.spec.Kind, s.spec.Name, base.ErrPluginUnavailable)
}

// Restarts counts successful restarts after exits, crashes and kills.
func (s *Supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Stop ends supervision and kills the plugin. Safe to call more than once.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.lastErr = nil
	cancel, loopDone := s.cancel, s.loopDone
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-loopDone
		s.watchers.Wait()
	}
	s.mu.Lock()
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	if cur != nil {
		cur.Kill()
	}
}
