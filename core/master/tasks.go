package master

import (
	"sort"
	"strings"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Task facts for the allocator, and the guarantee rule.
//
// A task counts against the guarantee of its own role or, if that role has
// none, of its nearest ancestor that has one (its "guarantee group"). In
// each group the live tasks are taken oldest first (StartedAt, then
// framework and task ID for a total order) and a task is WithinGuarantee
// when it still fits, together with the protected tasks before it, inside
// the guarantee on every scalar the guarantee names. Those tasks are what
// the Mesos paper promises MPI-like frameworks: the master refuses to
// revoke them whatever a policy proposes.

// taskFacts is the allocator's view of a task.
func taskFacts(t *taskEntry) *allocator.Task {
	return &allocator.Task{
		ID:              t.info.TaskId,
		FrameworkID:     t.frameworkID,
		Role:            t.role,
		AgentID:         t.agentID,
		Resources:       t.resources,
		StartedAt:       t.startedAt,
		WithinGuarantee: t.withinGuarantee,
	}
}

// addTaskLocked records a new live task of f and tells the allocator,
// with its WithinGuarantee flag already decided.
func (m *Master) addTaskLocked(f *frameworkEntry, t *taskEntry) {
	t.startedAt = m.logicalNow()
	f.tasks[t.info.TaskId] = t
	byAgent := m.agentTasks[t.agentID]
	if byAgent == nil {
		byAgent = map[*taskEntry]struct{}{}
		m.agentTasks[t.agentID] = byAgent
	}
	if _, dup := byAgent[t]; !dup {
		m.tally.states[t.state]++
		m.tally.addRole(t.role, t.resources, 1)
	}
	byAgent[t] = struct{}{}
	if g := m.guaranteeGroupLocked(t.role, nil); g != "" {
		// The new task's own flag travels in TaskAdded; others whose flag
		// moved get TaskUpdated.
		m.recomputeGuaranteesLocked(map[string]bool{g: true}, t)
	}
	if m.deltas.dropping() {
		// Suspended for a failover's burst (suspendDeltasLocked): a
		// hundred thousand adopted tasks need no facts the log would drop.
		m.deltas.skip()
		return
	}
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.TaskAdded, Task: taskFacts(t)})
}

// unindexTaskLocked drops an ended task from the per-agent index.
func (m *Master) unindexTaskLocked(t *taskEntry) {
	if byAgent := m.agentTasks[t.agentID]; byAgent != nil {
		delete(byAgent, t)
		if len(byAgent) == 0 {
			delete(m.agentTasks, t.agentID)
		}
	}
}

// agentTasksLocked returns the live tasks on an agent, ordered by
// framework and task ID so that what follows from them (updates, deltas)
// comes in a stable order.
func (m *Master) agentTasksLocked(agentID string) []*taskEntry {
	byAgent := m.agentTasks[agentID]
	out := make([]*taskEntry, 0, len(byAgent))
	for t := range byAgent {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].frameworkID != out[j].frameworkID {
			return out[i].frameworkID < out[j].frameworkID
		}
		return out[i].info.TaskId < out[j].info.TaskId
	})
	return out
}

// taskGoneLocked tells the allocator that a task ended (its entry is
// already out of the framework's live tasks) and re-decides the
// protection of the tasks that counted against the same guarantee.
func (m *Master) taskGoneLocked(t *taskEntry) {
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.TaskRemoved, FrameworkID: t.frameworkID, TaskID: t.info.TaskId})
	if g := m.guaranteeGroupLocked(t.role, nil); g != "" {
		if m.guaranteeBatch != nil {
			m.guaranteeBatch[g] = true
			return
		}
		m.recomputeGuaranteesLocked(map[string]bool{g: true}, nil)
	}
}

// batchGuaranteesLocked runs fn, deferring the recomputation of the
// guarantee groups whose tasks fn ends to one pass per group: removing an
// agent or a framework with many tasks then costs one sort, not one each.
func (m *Master) batchGuaranteesLocked(fn func()) {
	if m.guaranteeBatch != nil {
		fn() // already batching: the outer call recomputes
		return
	}
	m.guaranteeBatch = map[string]bool{}
	fn()
	groups := m.guaranteeBatch
	m.guaranteeBatch = nil
	if len(groups) > 0 {
		m.recomputeGuaranteesLocked(groups, nil)
	}
}

// guaranteeGroupLocked returns the role whose guarantee a task of role
// counts against, or "" when no role on its path has one. cache, when not
// nil, memoizes the answer per role.
func (m *Master) guaranteeGroupLocked(role string, cache map[string]string) string {
	if cache != nil {
		if g, ok := cache[role]; ok {
			return g
		}
	}
	g := ""
	// The ancestors walked in place (resources.RoleAncestors allocates),
	// nearest first: this runs for every task added.
	for r := role; r != ""; r = resources.RoleParent(r) {
		if rc, ok := m.roles[r]; ok && !rc.Guarantee.IsEmpty() {
			g = r
			break
		}
	}
	if cache != nil {
		cache[role] = g
	}
	return g
}

// recomputeGuaranteesLocked re-decides WithinGuarantee for the live tasks
// of the given guarantee groups (nil: every task, as after a guarantee
// changed) and sends TaskUpdated for each task whose flag moved, except
// quiet (a task about to be announced with TaskAdded).
func (m *Master) recomputeGuaranteesLocked(groups map[string]bool, quiet *taskEntry) {
	cache := map[string]string{}
	byGroup := map[string][]*taskEntry{}
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			g := m.guaranteeGroupLocked(t.role, cache)
			if groups == nil || groups[g] {
				byGroup[g] = append(byGroup[g], t)
			}
		}
	}
	for _, g := range sortedMapKeys(byGroup) {
		tasks := byGroup[g]
		sortTasksByAge(tasks)
		guarantee := m.roles[g].Guarantee
		names := guarantee.ScalarNames()
		var used resources.Resources
		for _, t := range tasks {
			within := false
			if g != "" {
				next := used.Add(t.resources.Scalars())
				within = true
				for _, n := range names {
					if next.Scalar(n) > guarantee.Scalar(n) {
						within = false
						break
					}
				}
				if within {
					used = next
				}
			}
			if within == t.withinGuarantee {
				continue
			}
			t.withinGuarantee = within
			if t != quiet {
				m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.TaskUpdated, Task: taskFacts(t)})
			}
		}
	}
}

// sortTasksByAge orders tasks by (StartedAt, framework ID, task ID).
func sortTasksByAge(tasks []*taskEntry) {
	sort.Slice(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if a.startedAt != b.startedAt {
			return a.startedAt < b.startedAt
		}
		if a.frameworkID != b.frameworkID {
			return a.frameworkID < b.frameworkID
		}
		return a.info.TaskId < b.info.TaskId
	})
}

// liveTasksLocked returns every live task in (framework ID, task ID)
// order, for snapshots.
func (m *Master) liveTasksLocked() []*taskEntry {
	n := 0
	for _, c := range m.tally.states {
		n += c
	}
	out := make([]*taskEntry, 0, n)
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].frameworkID != out[j].frameworkID {
			return out[i].frameworkID < out[j].frameworkID
		}
		return out[i].info.TaskId < out[j].info.TaskId
	})
	return out
}

// roleInSubtree reports whether role is root or below it.
func roleInSubtree(role, root string) bool {
	return role == root || strings.HasPrefix(role, root+"/")
}
