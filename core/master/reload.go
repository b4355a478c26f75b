package master

import (
	"context"
	"fmt"
	"maps"
	"math"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Reload is a re-read configuration file (SIGHUP): what of it the master
// applies without a restart.
type Reload struct {
	Allocator AllocatorChoice
	Roles     map[string]RoleConfig
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	// Swap is set when the reload started an allocator swap.
	Swap *Swap
	// Roles changed, added or reset to defaults.
	Roles []string
	// Kept are roles the file changed whose run-time setting (kept in the
	// registry) wins.
	Kept []string
}

// fingerprinter is implemented by launchers and handles that can tell
// whether a plugin's binary or config changed.
type fingerprinter interface {
	Fingerprint(choice AllocatorChoice) (string, error)
}

type handlePrint interface{ Fingerprint() string }

// Reload applies a re-read configuration: roles the file changes (except
// those set at run time, which win until changed at run time again), and
// the allocator when the file names another one, or when the plugin's
// binary, arguments or config block changed. The allocator is swapped
// exactly as an operator's SetAllocator would. Nothing is applied when the
// roles are invalid.
func (m *Master) Reload(ctx context.Context, r Reload) (ReloadResult, error) {
	var res ReloadResult
	changed, kept, err := m.reloadRoles(r.Roles)
	if err != nil {
		return res, err
	}
	res.Roles, res.Kept = changed, kept

	s := &m.slot
	s.mu.Lock()
	prevHCL := s.hcl
	active := s.active
	s.mu.Unlock()
	if r.Allocator.Name == "" || m.launcher == nil {
		return res, nil
	}
	target := AllocatorChoice{}
	switch {
	case r.Allocator != prevHCL:
		target = r.Allocator
	case active != nil:
		// The file names the same allocator; swap anyway when what would
		// be started for the running choice differs from what runs.
		lf, ok1 := m.launcher.(fingerprinter)
		hp, ok2 := active.handle.(handlePrint)
		if ok1 && ok2 {
			now, err := lf.Fingerprint(active.choice)
			if err != nil {
				return res, fmt.Errorf("allocator %q: %w", active.choice.Name, err)
			}
			if now != hp.Fingerprint() {
				target = active.choice
			}
		}
	}
	if target.Name == "" {
		return res, nil
	}
	swap, err := m.SetAllocator(ctx, SwapRequest{Choice: target, Source: "sighup"})
	if err != nil {
		return res, fmt.Errorf("allocator %q: %w", target.Name, err)
	}
	s.mu.Lock()
	s.hcl = r.Allocator
	s.mu.Unlock()
	res.Swap = swap
	return res, nil
}

// reloadRoles applies the file's roles: new and changed ones, and roles
// the file no longer has go back to defaults. Roles set at run time keep
// their setting.
func (m *Master) reloadRoles(next map[string]RoleConfig) (changed, kept []string, err error) {
	for _, name := range sortedMapKeys(next) {
		rc := next[name]
		if err := resources.ValidateRole(name); err != nil {
			return nil, nil, fmt.Errorf("role %q: %w", name, err)
		}
		if math.IsNaN(rc.Weight) || math.IsInf(rc.Weight, 0) || rc.Weight < 0 {
			return nil, nil, fmt.Errorf("role %q: weight must be a positive number, got %v", name, rc.Weight)
		}
		if err := validateRoleConfig(name, rc); err != nil {
			return nil, nil, fmt.Errorf("role %q: %w", name, err)
		}
	}
	m.regMu.Lock()
	defer m.regMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	candidate := maps.Clone(m.roles)
	prev := m.cfg.Roles
	apply := map[string]RoleConfig{}
	for name, rc := range next {
		if old, ok := prev[name]; ok && sameRole(old, rc) {
			continue
		}
		if m.durableRoles[name] {
			kept = append(kept, name)
			continue
		}
		apply[name] = rc
	}
	for name := range prev {
		if _, still := next[name]; !still && !m.durableRoles[name] {
			apply[name] = RoleConfig{}
		}
	}
	maps.Copy(candidate, apply)
	if err := checkHierarchy(candidate, ""); err != nil {
		return nil, nil, fmt.Errorf("roles of the reloaded configuration: %w", err)
	}
	guarantees := false
	for _, name := range sortedMapKeys(apply) {
		rc := apply[name]
		if !m.roles[name].Guarantee.Equal(rc.Guarantee) {
			guarantees = true
		}
		m.roles[name] = rc
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.RoleUpdated, Role: roleFacts(name, rc)})
		changed = append(changed, name)
	}
	if guarantees {
		m.recomputeGuaranteesLocked(nil, nil)
	}
	m.cfg.Roles = next
	if len(changed) > 0 {
		m.requestAllocation(allocator.TriggerEvent)
		m.log.Info("roles reloaded from the configuration", "roles", changed, "kept_runtime_settings", kept)
	}
	return changed, kept, nil
}

func sameRole(a, b RoleConfig) bool {
	return a.Weight == b.Weight && a.Priority == b.Priority && a.Guarantee.Equal(b.Guarantee) && a.Limit.Equal(b.Limit)
}
