package allocatortest

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// The master marks Task.WithinGuarantee so that policies know which tasks
// it will refuse to revoke; the rule is in the package documentation.

// guaranteeRole is the role whose guarantee a task of role counts
// against, or "".
func (s *Sim) guaranteeRole(role string) string {
	for _, r := range resources.RoleAncestors(role) {
		if !s.roles[r].Guarantee.Scalars().IsEmpty() {
			return r
		}
	}
	return ""
}

// fitsGuarantee reports whether used fits in g on the scalars g names.
func fitsGuarantee(used, g resources.Resources) bool {
	for _, n := range g.ScalarNames() {
		if used.Scalar(n) > g.Scalar(n) {
			return false
		}
	}
	return true
}

// guaranteeUpdates re-marks every task and returns those whose flag
// changed, in guarantee order, leaving out the tasks in fresh (just
// launched: their TaskAdded carries the flag).
func (s *Sim) guaranteeUpdates(fresh []*taskEntry) []*taskEntry {
	cum := map[string]resources.Resources{}
	full := map[string]bool{}
	var changed []*taskEntry
	for _, t := range s.sortedTasks() {
		within := false
		if g := s.guaranteeRole(t.Role); g != "" && !full[g] {
			next := cum[g].Add(t.Resources.Scalars())
			if fitsGuarantee(next, s.roles[g].Guarantee) {
				cum[g], within = next, true
			} else {
				full[g] = true
			}
		}
		if t.WithinGuarantee == within {
			continue
		}
		t.WithinGuarantee = within
		isFresh := false
		for _, f := range fresh {
			isFresh = isFresh || f == t
		}
		if !isFresh {
			changed = append(changed, t)
		}
	}
	return changed
}

// emitUpdates sends TaskUpdated for tasks whose flag changed.
func (s *Sim) emitUpdates(ts []*taskEntry) {
	for _, t := range ts {
		task := t.Task
		s.delta(allocator.Delta{Kind: allocator.TaskUpdated, Task: &task})
	}
}

// markGuarantees re-marks every task and sends the changes.
func (s *Sim) markGuarantees() { s.emitUpdates(s.guaranteeUpdates(nil)) }
