package master

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// AllocatorChoice selects the allocation policy: a plugin, by the name the
// plugin catalog resolves (a binary in plugin_dir or a plugin block), and
// its config.
type AllocatorChoice struct {
	Name string `json:"name"`
	// Config is the plugin's config in HCL, what a plugin block's config {}
	// body holds ("weights = { ... }"); "" means the plugin block's own.
	Config string `json:"config,omitempty"`
}

func (c AllocatorChoice) String() string {
	if c.Config == "" {
		return c.Name
	}
	return c.Name + " (with config)"
}

// AllocatorLauncher starts allocator plugins for the allocator slot.
type AllocatorLauncher interface {
	// Launch starts the plugin of choice and returns once it is checked
	// (checksum, handshake, kind, API version) and configured; the handle
	// keeps it running until Stop. Every failure names the plugin and the
	// problem.
	Launch(ctx context.Context, choice AllocatorChoice) (AllocatorHandle, error)
}

// AllocatorHandle is one supervised allocator plugin.
type AllocatorHandle interface {
	AllocatorSource
	// ReportCall tells the plugin's watchdog how a call ended: repeated
	// deadline misses get the process killed and restarted.
	ReportCall(err error)
	// Restarts counts restarts after crashes or watchdog kills; Faults
	// counts watchdog kills.
	Restarts() int
	Faults() int
	// SHA256 is the checksum of the binary, "" when unknown.
	SHA256() string
	// Stop ends the plugin process.
	Stop()
}

// SwapRequest asks for another allocator.
type SwapRequest struct {
	Choice AllocatorChoice
	// Shadow is how many cycles the candidate runs beside the active
	// plugin, its proposals compared but not sent, before it takes over.
	Shadow int
	// Manual leaves the cut-over (after the shadow cycles) to Promote or
	// Abort.
	Manual bool
	// Source says who asked ("api", "sighup"), for the history.
	Source string
}

// Rollback and history reasons.
const (
	reasonStart   = "start"
	reasonInit    = "init"
	reasonTimeout = "deadline"
	reasonInvalid = "invalid_proposals"
)

// SwapRecord is one entry of the swap history.
type SwapRecord struct {
	At    time.Time `json:"at"`
	Event string    `json:"event"` // swap, rollback, abort, failed
	From  string    `json:"from,omitempty"`
	To    string    `json:"to"`
	// Reason says why a swap failed or was rolled back.
	Reason     string `json:"reason,omitempty"`
	Detail     string `json:"detail,omitempty"`
	Source     string `json:"source,omitempty"`
	Shadow     int    `json:"shadow_cycles,omitempty"`
	Generation uint64 `json:"generation"`
	// LatencyMS is the time from the request to the end of the first
	// cycle run by the new plugin; StartMS the part of it spent starting
	// the plugin process (exec, handshake, checks, SetConfig).
	LatencyMS float64 `json:"latency_ms,omitempty"`
	StartMS   float64 `json:"start_ms,omitempty"`
}

// maxHistory bounds the swap history kept in memory.
const maxHistory = 100

// slotPlugin is one plugin process the slot drives, with what the
// allocation loop knows about it.
type slotPlugin struct {
	choice AllocatorChoice
	handle AllocatorHandle
	st     allocState
	since  time.Time

	cycles      uint64
	lastCycle   time.Duration
	lastCycleAt time.Time
	// misses counts consecutive deadline misses.
	misses int
	// window holds the last RollbackCycles cycles' proposal counts, for
	// the invalid-proposal rule.
	window []proposalCount
	// metrics the plugin reported last.
	metrics map[string]float64
}

type proposalCount struct{ proposed, invalid int }

// label names the plugin for logs and the history.
func (p *slotPlugin) label() string {
	_, info, _ := p.handle.Current()
	if info.Version != "" {
		return p.choice.Name + " " + info.Version
	}
	return p.choice.Name
}

// candidate is a plugin on its way in.
type candidate struct {
	*slotPlugin
	req        SwapRequest
	requested  time.Time
	started    time.Duration // Launch took this long
	shadowLeft int
	// promote and abort are the operator's decision (manual promotion).
	promote, abort bool
	diff           shadowDiff
	// done is closed when the swap is decided: the new plugin ran its
	// first cycle, or the swap failed, was rolled back or aborted.
	done chan struct{}
	// result is the history record that decided it, set before done is
	// closed.
	result SwapRecord
}

// Swap is a requested allocator swap.
type Swap struct{ c *candidate }

// Done is closed once the swap is decided: the new plugin ran its first
// cycle, or the swap failed, was rolled back or aborted.
func (s *Swap) Done() <-chan struct{} { return s.c.done }

// Outcome is the history record that decided the swap; call it after Done.
func (s *Swap) Outcome() SwapRecord { return s.c.result }

// decide records the outcome and releases the waiters.
func (c *candidate) decide(r SwapRecord) {
	c.result = r
	close(c.done)
}

func (c *candidate) shadowing() bool { return c.st.inited && (c.shadowLeft > 0 || c.req.Manual) }

// allocatorSlot owns the active allocator plugin and at most one candidate
// (DESIGN.md, "Hot swap"). The allocation loop is the only caller of the
// plugins; operators change the slot through SetAllocator, Promote and
// Abort, which leave decisions for the loop to carry out at a cycle
// boundary. mu guards the fields for those readers and writers.
type allocatorSlot struct {
	mu     sync.Mutex
	active *slotPlugin
	// previous is the plugin the active one replaced, kept running through
	// the active's probation so that a rollback is immediate.
	previous *slotPlugin
	// prevStored is the durable choice before the cut-over, restored on
	// rollback.
	prevStored *AllocatorChoice
	// probation counts the cycles the active plugin must still run well
	// before previous is stopped.
	probation int
	cand      *candidate
	// launching is set while SetAllocator starts a candidate.
	launching bool
	// pending is the swap whose first cycle has not run yet.
	pending *candidate
	// generation counts the plugins that became active.
	generation uint64
	history    []SwapRecord
	// stored is the choice kept in the registry, hcl the one the
	// configuration file gave (SIGHUP swaps when it changes).
	stored *AllocatorChoice
	hcl    AllocatorChoice

	// stops tracks plugins being stopped in the background; persist
	// wakes persistLoop.
	stops   sync.WaitGroup
	persist chan struct{}
}

func (s *allocatorSlot) record(r SwapRecord) *SwapRecord {
	s.history = append(s.history, r)
	if len(s.history) > maxHistory {
		s.history = append(s.history[:0:0], s.history[len(s.history)-maxHistory:]...)
	}
	return &s.history[len(s.history)-1]
}

// durableChoice is what the registry keeps: the active choice when an
// operator swapped it in, else nothing (the configuration file decides).
func (s *allocatorSlot) durableChoice() *AllocatorChoice {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored == nil {
		return nil
	}
	c := *s.stored
	return &c
}

// staticHandle adapts a plain AllocatorSource (tests, in-process
// allocators) to the slot: it cannot be restarted or swapped out.
type staticHandle struct{ AllocatorSource }

func (staticHandle) ReportCall(error) {}
func (staticHandle) Restarts() int    { return 0 }
func (staticHandle) Faults() int      { return 0 }
func (staticHandle) SHA256() string   { return "" }
func (staticHandle) Stop()            {}

// StartAllocator starts the allocator: the one kept in the registry if an
// operator swapped one in, else the configured one. A registry choice that
// no longer starts (its binary was removed, say) is logged and the
// configured allocator is used instead. Run calls it when it has not been
// called; call it first to see the error before serving.
func (m *Master) StartAllocator(ctx context.Context) error {
	s := &m.slot
	s.mu.Lock()
	started := s.active != nil
	s.mu.Unlock()
	if started || m.launcher == nil {
		return nil
	}
	choice, source := m.cfg.Allocator, "configuration"
	if st := s.durableChoice(); st != nil {
		choice, source = *st, "registry"
	}
	h, err := m.launcher.Launch(ctx, choice)
	if err != nil && source == "registry" && m.cfg.Allocator.Name != "" {
		m.log.Error("the allocator kept in the registry does not start; using the configured one",
			"allocator", choice.Name, "registry", m.registryName(), "error", err, "configured", m.cfg.Allocator.Name)
		s.mu.Lock()
		s.record(SwapRecord{At: m.now(), Event: "failed", To: choice.String(), Reason: reasonStart, Detail: err.Error(), Source: "registry"})
		s.mu.Unlock()
		choice, source = m.cfg.Allocator, "configuration"
		h, err = m.launcher.Launch(ctx, choice)
	}
	if err != nil {
		return fmt.Errorf("allocator: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = &slotPlugin{choice: choice, handle: h, since: m.now()}
	s.generation++
	m.metrics.allocatorGeneration.Set(float64(s.generation))
	s.record(SwapRecord{At: m.now(), Event: "start", To: s.active.label(), Source: source, Generation: s.generation})
	m.log.Info("allocator started", "allocator", choice.Name, "from", source)
	return nil
}

// SetAllocator starts a candidate allocator and hands it to the allocation
// loop, which Inits it, shadows it for req.Shadow cycles and cuts over at a
// cycle boundary. It returns once the candidate runs (or failed to start,
// which is recorded as a rollback and returned); the Swap tells the rest.
func (m *Master) SetAllocator(ctx context.Context, req SwapRequest) (*Swap, error) {
	if m.launcher == nil {
		return nil, &ValidationError{Msg: "this master's allocator cannot be swapped: it was built without a plugin launcher"}
	}
	req.Choice.Name = strings.TrimSpace(req.Choice.Name)
	switch {
	case req.Choice.Name == "":
		return nil, invalidField("name", "an allocator plugin name is required")
	case req.Shadow < 0:
		return nil, invalidField("shadow", "must be 0 or more cycles, got %d", req.Shadow)
	}
	s := &m.slot
	s.mu.Lock()
	switch {
	case s.launching:
		s.mu.Unlock()
		return nil, &ConflictError{Msg: "another allocator swap is starting; wait for it or abort it"}
	case s.cand != nil:
		name := s.cand.choice.Name
		s.mu.Unlock()
		return nil, &ConflictError{Msg: fmt.Sprintf("a swap to %q is in progress; promote or abort it first", name)}
	}
	s.launching = true
	s.mu.Unlock()

	requested := m.now()
	h, err := m.launcher.Launch(ctx, req.Choice)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.launching = false
	from := ""
	if s.active != nil {
		from = s.active.label()
	}
	if err != nil {
		s.record(SwapRecord{At: m.now(), Event: "rollback", From: from, To: req.Choice.String(), Reason: reasonStart,
			Detail: err.Error(), Source: req.Source, Generation: s.generation})
		m.metrics.allocatorRollbacks.WithLabelValues(reasonStart).Inc()
		m.log.Warn("allocator swap failed: the candidate did not start; keeping the active allocator",
			"candidate", req.Choice.Name, "active", from, "error", err)
		return nil, &SwapError{Reason: reasonStart, Err: err}
	}
	c := &candidate{
		slotPlugin: &slotPlugin{choice: req.Choice, handle: h, since: m.now()},
		req:        req, requested: requested, started: m.now().Sub(requested), shadowLeft: req.Shadow, done: make(chan struct{}),
	}
	s.cand = c
	m.log.Info("allocator swap requested", "candidate", c.label(), "active", from, "shadow", req.Shadow,
		"manual", req.Manual, "source", req.Source)
	m.requestAllocation(allocator.TriggerEvent)
	return &Swap{c}, nil
}

// PromoteAllocator cuts over to the candidate at the next cycle boundary,
// ending its shadow cycles early.
func (m *Master) PromoteAllocator() error {
	return m.decide(func(c *candidate) error {
		if !c.st.inited {
			return &ConflictError{Msg: fmt.Sprintf("candidate %q is not initialised yet; promote it once it shadows", c.choice.Name)}
		}
		c.promote = true
		return nil
	})
}

// AbortAllocator drops the candidate at the next cycle boundary; the
// active plugin stays.
func (m *Master) AbortAllocator() error {
	return m.decide(func(c *candidate) error { c.abort = true; return nil })
}

func (m *Master) decide(f func(c *candidate) error) error {
	s := &m.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cand == nil {
		return &ConflictError{Msg: "no allocator swap is in progress"}
	}
	if err := f(s.cand); err != nil {
		return err
	}
	m.requestAllocation(allocator.TriggerEvent)
	return nil
}

// ConflictError is an operator request that clashes with the slot's state
// (a swap already in progress, nothing to promote).
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// SwapError is a swap that failed; Reason is the rollback reason.
type SwapError struct {
	Reason string
	Err    error
}

func (e *SwapError) Error() string { return e.Err.Error() }
func (e *SwapError) Unwrap() error { return e.Err }
