package allocator

import (
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Unmet is declared demand a cycle could not place: Units tasks of Shape
// that fit no agent's free resources once the cycle's offers were made.
type Unmet struct {
	FrameworkID string
	Role        string
	Shape       resources.Resources
	Units       int
}

// UnmetDemand lists the declared demand that neither the client's
// outstanding offers nor the cycle's proposals cover and that fits on no
// active agent's remaining free resources (counting the resources of tasks
// already being revoked there as on their way back). Demand that fits
// somewhere but was not offered is the policy's choice, not unmet. Sorted
// by framework, role and shape.
func UnmetDemand(s *State, proposals []allocator.Proposal) []Unmet {
	if len(s.demands) == 0 {
		return nil
	}
	offered := map[demandKey]resources.Resources{}
	onAgent := map[string]resources.Resources{}
	for _, p := range proposals {
		k := demandKey{p.FrameworkID, p.Role}
		offered[k] = offered[k].Add(p.Resources)
		onAgent[p.AgentID] = onAgent[p.AgentID].Add(p.Resources)
	}
	incoming := map[string]resources.Resources{}
	for k := range s.revoking {
		if t, ok := s.tasks[k]; ok {
			incoming[t.AgentID] = incoming[t.AgentID].Add(t.Resources)
		}
	}
	var out []Unmet
	for k, shapes := range s.demands {
		if f, ok := s.frameworks[k.framework]; !ok || !f.Active || s.Suppressed(k.framework, k.role) {
			continue
		}
		covered := s.ClientAllocated(k.framework, k.role).Subtract(s.ClientTasks(k.framework, k.role)).Add(offered[k])
		for _, sh := range shapes {
			n := sh.Count
			for n > 0 && covered.Contains(sh.Resources) {
				covered = covered.Subtract(sh.Resources)
				n--
			}
			if n == 0 || fitsAnywhere(s, sh.Resources, onAgent, incoming) {
				continue
			}
			out = append(out, Unmet{FrameworkID: k.framework, Role: k.role, Shape: sh.Resources, Units: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.FrameworkID != b.FrameworkID {
			return a.FrameworkID < b.FrameworkID
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.Shape.String() < b.Shape.String()
	})
	return out
}

func fitsAnywhere(s *State, shape resources.Resources, onAgent, incoming map[string]resources.Resources) bool {
	for id, e := range s.agents {
		if !e.agent.Active || !e.agent.Total.Contains(shape) {
			continue
		}
		if e.avail.Subtract(onAgent[id]).Add(incoming[id]).Contains(shape) {
			return true
		}
	}
	return false
}

// ReclaimRequest asks Reclaim to make room for Units tasks of Shape by
// revoking tasks that Victim accepts, taken in Order (earlier first).
type ReclaimRequest struct {
	Unmet
	Reason string
	Victim func(t *allocator.Task) bool
	Order  func(a, b *allocator.Task) bool
}

// Reclaim picks tasks to revoke so that each requested unit fits on one
// agent: on every candidate agent it takes victims in order until the
// agent's free resources plus what is reclaimed hold the shape, and keeps
// the agent that needs the fewest revocations (ties by agent ID). It never
// picks a task within its guarantee, a task already being revoked, or one
// whose revocation would take a guaranteed role subtree below its
// guarantee. At most limit revocations are returned (0: no limit).
func Reclaim(s *State, free func(agentID string) resources.Resources, reqs []ReclaimRequest, limit int) []allocator.Revocation {
	byAgent := map[string][]*allocator.Task{}
	for k, t := range s.tasks {
		if _, busy := s.revoking[k]; !busy && !t.WithinGuarantee {
			byAgent[t.AgentID] = append(byAgent[t.AgentID], t)
		}
	}
	agentIDs := s.AgentIDs()
	taken := map[taskKey]bool{}
	// Each guaranteed role's allocation as revocations are chosen.
	treeLeft := map[string]resources.Resources{}
	var out []allocator.Revocation
	for _, req := range reqs {
		for unit := 0; unit < req.Units; unit++ {
			var best []*allocator.Task
			bestAgent := ""
			for _, id := range agentIDs {
				a := s.agents[id].agent
				if !a.Active || !a.Total.Contains(req.Shape) {
					continue
				}
				room := free(id)
				if room.Contains(req.Shape) {
					best, bestAgent = nil, "" // fits already: nothing to reclaim
					goto next
				}
				var victims []*allocator.Task
				cands := eligible(byAgent[id], taken, req)
				for _, t := range cands {
					if !s.keepsGuarantee(t, treeLeft) {
						continue
					}
					victims = append(victims, t)
					room = room.Add(t.Resources)
					if room.Contains(req.Shape) {
						break
					}
				}
				if !room.Contains(req.Shape) {
					continue
				}
				if bestAgent == "" || len(victims) < len(best) {
					best, bestAgent = victims, id
				}
			}
			if bestAgent == "" {
				break // no agent can make room for this shape
			}
			for _, t := range best {
				if limit > 0 && len(out) >= limit {
					return out
				}
				taken[taskKey{t.FrameworkID, t.ID}] = true
				s.chargeGuarantee(t, treeLeft)
				out = append(out, allocator.Revocation{FrameworkID: t.FrameworkID, TaskID: t.ID, AgentID: t.AgentID, Reason: req.Reason})
			}
		next:
		}
	}
	return out
}

func eligible(tasks []*allocator.Task, taken map[taskKey]bool, req ReclaimRequest) []*allocator.Task {
	var out []*allocator.Task
	for _, t := range tasks {
		if !taken[taskKey{t.FrameworkID, t.ID}] && req.Victim(t) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if req.Order(out[i], out[j]) != req.Order(out[j], out[i]) {
			return req.Order(out[i], out[j])
		}
		if out[i].FrameworkID != out[j].FrameworkID {
			return out[i].FrameworkID < out[j].FrameworkID
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// keepsGuarantee reports whether revoking t leaves every guaranteed role
// above it at or over its guarantee on the scalars the guarantee names
// and t uses.
func (s *State) keepsGuarantee(t *allocator.Task, treeLeft map[string]resources.Resources) bool {
	for _, r := range resources.RoleAncestors(t.Role) {
		g := s.roles[r].Guarantee
		if g.IsEmpty() {
			continue
		}
		left, ok := treeLeft[r]
		if !ok {
			left = s.RoleTreeAllocated(r)
		}
		after := left.Subtract(t.Resources)
		for _, n := range g.ScalarNames() {
			if t.Resources.Scalar(n) > 0 && after.Scalar(n) < g.Scalar(n) {
				return false
			}
		}
	}
	return true
}

func (s *State) chargeGuarantee(t *allocator.Task, treeLeft map[string]resources.Resources) {
	for _, r := range resources.RoleAncestors(t.Role) {
		if s.roles[r].Guarantee.IsEmpty() {
			continue
		}
		left, ok := treeLeft[r]
		if !ok {
			left = s.RoleTreeAllocated(r)
		}
		treeLeft[r] = left.Subtract(t.Resources)
	}
}

// Revoking reports whether the plugin already proposed revoking the task
// and it is still running.
func (s *State) Revoking(frameworkID, taskID string) bool {
	_, ok := s.revoking[taskKey{frameworkID, taskID}]
	return ok
}

// markRevoking records proposed revocations; they stay in flight until the
// task goes away or retry has passed (the core may have refused one).
func (s *State) markRevoking(revs []allocator.Revocation, now allocator.LogicalTime) {
	for _, r := range revs {
		s.revoking[taskKey{r.FrameworkID, r.TaskID}] = now
	}
}

func (s *State) expireRevoking(now, retry allocator.LogicalTime) {
	for k, at := range s.revoking {
		if _, ok := s.tasks[k]; !ok || now-at >= retry {
			delete(s.revoking, k)
		}
	}
}

// LongTaskRevocations implements the operator's revoke_after for any
// policy: when declared demand of a role is unmet, tasks of other roles
// that have run for at least revokeAfter, and whose role's weighted share
// is above the starving role's, are revoked, oldest first, to make room.
// Guarantees are never broken (see Reclaim).
func LongTaskRevocations(s *State, unmet []Unmet, free func(string) resources.Resources, now, revokeAfter allocator.LogicalTime, exclude []string) []allocator.Revocation {
	if revokeAfter <= 0 || len(unmet) == 0 {
		return nil
	}
	var reqs []ReclaimRequest
	for _, u := range unmet {
		starving := s.RoleShare(u.Role, exclude...)
		role := u.Role
		reqs = append(reqs, ReclaimRequest{
			Unmet:  u,
			Reason: allocator.RevokeLongTask,
			Victim: func(t *allocator.Task) bool {
				return t.Role != role && now-t.StartedAt >= revokeAfter && s.RoleShare(t.Role, exclude...) > starving
			},
			Order: func(a, b *allocator.Task) bool { return a.StartedAt < b.StartedAt },
		})
	}
	return Reclaim(s, free, reqs, maxRevocationsPerCycle)
}

// maxRevocationsPerCycle bounds how much one cycle can revoke, so that a
// policy bug or a burst of demand cannot kill a cluster's work at once.
const maxRevocationsPerCycle = 100
