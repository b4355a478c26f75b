package master

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// RolePatch changes some of a role's settings; nil fields stay unchanged.
// An empty (non-nil) Guarantee or Limit clears it.
type RolePatch struct {
	Weight    *float64
	Priority  *int64
	Guarantee *resources.Resources
	Limit     *resources.Resources
}

// ValidationError is an operator request the master refuses as invalid.
// Field names the offending input ("name", "weight", "priority",
// "guarantee", "limit"), so that the API can point at it.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func invalidField(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// SetRole applies patch to the role name (creating it if needed), stores
// the result in the registry and tells the allocator. A rejected patch
// returns a *ValidationError and changes nothing.
func (m *Master) SetRole(name string, patch RolePatch) (RoleView, error) {
	if err := resources.ValidateRole(name); err != nil {
		return RoleView{}, invalidField("name", "%v", err)
	}
	if w := patch.Weight; w != nil && (math.IsNaN(*w) || math.IsInf(*w, 0) || *w <= 0) {
		return RoleView{}, invalidField("weight", "must be a positive number, got %v", *w)
	}
	// regMu orders SetRole calls, so that what is written to the registry
	// and what is applied in memory cannot interleave with another change;
	// the file is written without holding mu.
	m.regMu.Lock()
	defer m.regMu.Unlock()

	m.mu.Lock()
	old, existed := m.roles[name]
	next := old
	if patch.Weight != nil {
		next.Weight = *patch.Weight
	}
	if patch.Priority != nil {
		next.Priority = *patch.Priority
	}
	if patch.Guarantee != nil {
		next.Guarantee = *patch.Guarantee
	}
	if patch.Limit != nil {
		next.Limit = *patch.Limit
	}
	err := validateRoleConfig(name, next)
	if err == nil {
		candidate := make(map[string]RoleConfig, len(m.roles)+1)
		for r, rc := range m.roles {
			candidate[r] = rc
		}
		candidate[name] = next
		err = checkHierarchy(candidate, name)
	}
	durable := make(map[string]RoleConfig, len(m.durableRoles)+1)
	for r := range m.durableRoles {
		durable[r] = m.roles[r]
	}
	durable[name] = next
	m.mu.Unlock()
	if err != nil {
		return RoleView{}, err
	}

	if m.reg != nil {
		if err := writeRegistry(context.Background(), m.reg, registry{roles: durable, allocator: m.slot.durableChoice()}); err != nil {
			return RoleView{}, fmt.Errorf("role %q: storing the change in the registry %s: %w", name, m.reg, err)
		}
	}

	m.mu.Lock()
	m.roles[name] = next
	m.durableRoles[name] = true
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.RoleUpdated, Role: roleFacts(name, next)})
	if !old.Guarantee.Equal(next.Guarantee) {
		// Which tasks are protected depends on every guarantee above them.
		m.recomputeGuaranteesLocked(nil, nil)
	}
	view := m.roleViewsLocked(name)[0]
	m.mu.Unlock()
	m.requestAllocation(allocator.TriggerEvent)
	m.log.Info("role updated", "role", name, "created", !existed, "weight", view.Weight, "priority", next.Priority,
		"guarantee", next.Guarantee.String(), "limit", next.Limit.String())
	return view, nil
}

// Role returns one role's operator view.
func (m *Master) Role(name string) (RoleView, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.roles[name]; !ok {
		return RoleView{}, false
	}
	return m.roleViewsLocked(name)[0], true
}

// Roles returns every known role, sorted by name.
func (m *Master) Roles() []RoleView {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.roleViewsLocked()
}

// roleFacts is the allocator's view of a role.
func roleFacts(name string, rc RoleConfig) *allocator.Role {
	return &allocator.Role{Name: name, Weight: effectiveWeight(rc.Weight), Priority: rc.Priority,
		Guarantee: rc.Guarantee, Limit: rc.Limit}
}

func effectiveWeight(w float64) float64 {
	if w <= 0 {
		return 1
	}
	return w
}

// initRoles merges the HCL roles with those in the registry (the registry
// wins for the roles it holds) and validates the result.
func (m *Master) initRoles() error {
	for _, name := range sortedMapKeys(m.cfg.Roles) {
		rc := m.cfg.Roles[name]
		if err := resources.ValidateRole(name); err != nil {
			return fmt.Errorf("role %q: %w", name, err)
		}
		if math.IsNaN(rc.Weight) || math.IsInf(rc.Weight, 0) || rc.Weight < 0 {
			return fmt.Errorf("role %q: weight must be a positive number, got %v", name, rc.Weight)
		}
		if err := validateRoleConfig(name, rc); err != nil {
			return fmt.Errorf("role %q: %w", name, err)
		}
		m.roles[name] = rc
	}
	if m.reg != nil {
		stored, err := loadRegistry(context.Background(), m.reg)
		if err != nil {
			return err
		}
		m.slot.stored = stored.allocator
		for _, name := range sortedMapKeys(stored.roles) {
			rc := stored.roles[name]
			err := resources.ValidateRole(name)
			if err == nil && (math.IsNaN(rc.Weight) || rc.Weight < 0) {
				err = fmt.Errorf("weight must be a positive number, got %v", rc.Weight)
			}
			if err == nil {
				err = validateRoleConfig(name, rc)
			}
			if err != nil {
				return fmt.Errorf("master registry %s: role %q: %w", m.reg, name, err)
			}
			m.roles[name] = rc
			m.durableRoles[name] = true
		}
	}
	if err := checkHierarchy(m.roles, ""); err != nil {
		if len(m.durableRoles) > 0 {
			return fmt.Errorf("roles of the configuration and the registry %s: %w", m.reg, err)
		}
		return fmt.Errorf("roles of the configuration: %w", err)
	}
	return nil
}

// validateRoleConfig checks one role's own settings.
func validateRoleConfig(name string, rc RoleConfig) error {
	for _, q := range []struct {
		field string
		r     resources.Resources
	}{{"guarantee", rc.Guarantee}, {"limit", rc.Limit}} {
		if q.r.IsEmpty() {
			continue
		}
		if name == "*" {
			return invalidField(q.field, "the default role \"*\" cannot have quota (a guarantee or a limit)")
		}
		if !q.r.Scalars().Equal(q.r) {
			return invalidField(q.field, "quota takes scalar resources only, got %s", q.r)
		}
	}
	for _, n := range rc.Limit.ScalarNames() {
		if g, l := rc.Guarantee.Scalar(n), rc.Limit.Scalar(n); g > l {
			return invalidField("guarantee", "guarantee %s is above the limit %s on %s (%s > %s)",
				rc.Guarantee, rc.Limit, n, fmtQty(g), fmtQty(l))
		}
	}
	return nil
}

// checkHierarchy verifies that below every role with a limit, the
// guarantees of its children fit in that limit (on the scalars the limit
// names): otherwise the guarantees could never all be met. A child's
// guarantee counts as the larger of its own and its children's sum, since
// a guarantee covers the role's whole subtree. With changed set, only
// changed and its ancestors are checked (nothing else moved) and the error
// speaks of changed; with "" every role is checked.
func checkHierarchy(roles map[string]RoleConfig, changed string) error {
	// Build the implied tree: a role's ancestors exist even unconfigured.
	nodes := map[string]bool{}
	for r := range roles {
		for _, a := range resources.RoleAncestors(r) {
			nodes[a] = true
		}
	}
	order := make([]string, 0, len(nodes))
	for n := range nodes {
		order = append(order, n)
	}
	// Deepest first, so every child is done before its parent.
	sort.Slice(order, func(i, j int) bool {
		di, dj := strings.Count(order[i], "/"), strings.Count(order[j], "/")
		if di != dj {
			return di > dj
		}
		return order[i] < order[j]
	})
	childSum := map[string]resources.Resources{}
	eff := map[string]resources.Resources{}
	children := map[string][]string{}
	for _, n := range order {
		own := roles[n].Guarantee.Scalars()
		// max(own, sum of children) per scalar.
		e := own.Add(childSum[n].Subtract(own))
		eff[n] = e
		if p := resources.RoleParent(n); p != "" {
			childSum[p] = childSum[p].Add(e)
			children[p] = append(children[p], n)
		}
	}
	check := order
	if changed != "" {
		check = resources.RoleAncestors(changed)
	}
	for _, p := range check {
		limit := roles[p].Limit
		if limit.IsEmpty() {
			continue
		}
		sum := childSum[p]
		for _, n := range limit.ScalarNames() {
			if sum.Scalar(n) <= limit.Scalar(n) {
				continue
			}
			// Name the children that contribute, the changed one apart:
			// that is where the new guarantee entered the sum.
			branch := ""
			if changed != "" && p != changed {
				branch = changed
				for resources.RoleParent(branch) != p {
					branch = resources.RoleParent(branch)
				}
			}
			kids := children[p]
			sort.Strings(kids)
			var parts []string
			for _, k := range kids {
				if q := eff[k].Scalar(n); q > 0 && k != branch {
					parts = append(parts, fmt.Sprintf("%s %s:%s", k, n, fmtQty(q)))
				}
			}
			total := fmt.Sprintf("%s:%s", n, fmtQty(sum.Scalar(n)))
			lim := fmt.Sprintf("%s:%s", n, fmtQty(limit.Scalar(n)))
			switch {
			case changed != "" && p == changed:
				return invalidField("limit", "limit %s of role %q is below the guarantees of its children (%s), which add up to %s",
					lim, p, strings.Join(parts, ", "), total)
			case branch != "" && len(parts) == 0:
				return invalidField("guarantee", "guarantee %s:%s of role %q is above the limit %s of parent role %q",
					n, fmtQty(eff[branch].Scalar(n)), branch, lim, p)
			case branch != "":
				return invalidField("guarantee", "guarantee %s:%s of role %q and its siblings' (%s) add up to %s, above the limit %s of parent role %q",
					n, fmtQty(eff[branch].Scalar(n)), branch, strings.Join(parts, ", "), total, lim, p)
			}
			return invalidField("guarantee", "the guarantees of the children of role %q (%s) add up to %s, above its limit %s",
				p, strings.Join(parts, ", "), total, lim)
		}
	}
	return nil
}

func fmtQty(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
