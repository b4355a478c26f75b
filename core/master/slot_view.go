package master

import (
	"context"
	"maps"
	"time"

	"github.com/corral-project/corral/core/pluginhost"
)

// AllocatorStatus is the operator's view of the allocator slot
// (GET /api/v1/allocator, `corral allocator show`).
type AllocatorStatus struct {
	Active *PluginStatus `json:"active,omitempty"`
	// Previous is the plugin the active one replaced, kept running until
	// the active one has passed its probation (ProbationLeft cycles).
	Previous      *PluginStatus    `json:"previous,omitempty"`
	ProbationLeft int              `json:"probation_cycles_left,omitempty"`
	Candidate     *CandidateStatus `json:"candidate,omitempty"`
	// Generation counts the plugins made active (swaps and rollbacks).
	Generation uint64       `json:"generation"`
	History    []SwapRecord `json:"history"`
}

// PluginStatus is one allocator plugin process.
type PluginStatus struct {
	Name        string             `json:"name"`
	Config      string             `json:"config,omitempty"`
	Version     string             `json:"version,omitempty"`
	Path        string             `json:"path,omitempty"`
	SHA256      string             `json:"sha256,omitempty"`
	Pid         int                `json:"pid,omitempty"`
	Restarts    int                `json:"restarts"`
	Faults      int                `json:"faults"`
	Since       time.Time          `json:"since"`
	Cycles      uint64             `json:"cycles"`
	LastCycleMS float64            `json:"last_cycle_ms"`
	LastCycleAt *time.Time         `json:"last_cycle_at,omitempty"`
	Error       string             `json:"error,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
}

// CandidateStatus is a plugin on its way in.
type CandidateStatus struct {
	PluginStatus
	// State is "starting" (waiting for its Init), "shadow" or
	// "awaiting promotion" (manual promotion, shadow cycles done).
	State       string     `json:"state"`
	ShadowLeft  int        `json:"shadow_cycles_left"`
	Manual      bool       `json:"manual"`
	RequestedAt time.Time  `json:"requested_at"`
	Diff        ShadowDiff `json:"diff"`
}

// AllocatorStatus returns the slot's state now.
func (m *Master) AllocatorStatus() AllocatorStatus {
	s := &m.slot
	s.mu.Lock()
	defer s.mu.Unlock()
	st := AllocatorStatus{Generation: s.generation, History: append([]SwapRecord{}, s.history...)}
	if s.active != nil {
		st.Active = s.active.status()
	}
	if s.previous != nil {
		st.Previous = s.previous.status()
		st.ProbationLeft = s.probation
	}
	if c := s.cand; c != nil {
		cs := &CandidateStatus{PluginStatus: *c.status(), ShadowLeft: max(c.shadowLeft, 0), Manual: c.req.Manual,
			RequestedAt: c.requested, Diff: c.diff.view()}
		switch {
		case !c.st.inited:
			cs.State = "starting"
		case c.shadowLeft > 0:
			cs.State = "shadow"
		default:
			cs.State = "awaiting promotion"
		}
		st.Candidate = cs
	}
	return st
}

// status describes p; the caller holds the slot's lock.
func (p *slotPlugin) status() *PluginStatus {
	_, info, err := p.handle.Current()
	ps := &PluginStatus{
		Name: p.choice.Name, Config: p.choice.Config, Version: info.Version, Path: info.Path, Pid: info.Pid,
		SHA256: p.handle.SHA256(), Restarts: p.handle.Restarts(), Faults: p.handle.Faults(), Since: p.since,
		Cycles: p.cycles, LastCycleMS: float64(p.lastCycle.Microseconds()) / 1000, Metrics: maps.Clone(p.metrics),
	}
	if !p.lastCycleAt.IsZero() {
		at := p.lastCycleAt
		ps.LastCycleAt = &at
	}
	if err != nil {
		ps.Error = err.Error()
	}
	return ps
}

// AllocatorPlugin is one allocator plugin binary an operator can swap to.
type AllocatorPlugin struct {
	Name        string   `json:"name"`
	Path        string   `json:"path"`
	SHA256      string   `json:"sha256"`
	Version     string   `json:"version,omitempty"`
	APIVersions []string `json:"api_versions,omitempty"`
	// Pinned is the sha256 a plugin block requires, if any.
	Pinned string `json:"pinned_sha256,omitempty"`
	Active bool   `json:"active"`
	Error  string `json:"error,omitempty"`
}

// AllocatorPlugins lists the allocator plugins the launcher can start.
func (m *Master) AllocatorPlugins(ctx context.Context) ([]AllocatorPlugin, error) {
	l, ok := m.launcher.(interface {
		List(ctx context.Context) []pluginhost.Found
	})
	if !ok {
		return nil, &ValidationError{Msg: "this master has no plugin directory to list"}
	}
	m.slot.mu.Lock()
	active := ""
	if m.slot.active != nil {
		active = m.slot.active.choice.Name
	}
	m.slot.mu.Unlock()
	var out []AllocatorPlugin
	for _, f := range l.List(ctx) {
		out = append(out, AllocatorPlugin{Name: f.Name, Path: f.Path, SHA256: f.SHA256, Version: f.Version,
			APIVersions: f.APIVersions, Pinned: f.Configured, Active: f.Name == active, Error: f.Error})
	}
	return out, nil
}
