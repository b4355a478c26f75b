package fairshare

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Tier is a role's effective priority: its own when set, else its nearest
// ancestor's, else 0.
func Tier(s *sdk.State, role string) int64 {
	for _, r := range resources.RoleAncestors(role) {
		if p := s.Role(r).Priority; p != 0 {
			return p
		}
	}
	return 0
}

// Revocations returns the preemptions the last Allocate chose: for demand
// of a tier that the cycle could not place, tasks of lower tiers are
// revoked (lowest tier first, then the most recently started, which loses
// the least work) on the agent where the fewest revocations make room.
// Tasks within their guarantee are never chosen. While they are being
// revoked, lower tiers are offered nothing on that agent.
func (e *Engine) Revocations(*sdk.State, allocator.LogicalTime, []allocator.Proposal) []allocator.Revocation {
	out := e.planned
	e.planned = nil
	return out
}

// preempt plans revocations for the demand of tier that this cycle's pass
// could not place, and reserves the agents they free.
func (c *cycle) preempt(tier int64) {
	s := c.s
	var reqs []sdk.ReclaimRequest
	for _, u := range sdk.UnmetDemand(s, c.props) {
		if c.tierOf(u.Role) != tier {
			continue
		}
		reqs = append(reqs, sdk.ReclaimRequest{
			Unmet:  u,
			Reason: allocator.RevokePreemption,
			Victim: func(t *allocator.Task) bool { return c.tierOf(t.Role) < tier },
			Order: func(a, b *allocator.Task) bool {
				if ta, tb := c.tierOf(a.Role), c.tierOf(b.Role); ta != tb {
					return ta < tb
				}
				return a.StartedAt > b.StartedAt
			},
		})
	}
	if len(reqs) == 0 {
		return
	}
	revs := sdk.Reclaim(s, c.freeOn, reqs, maxPreemptionsPerCycle-len(c.e.planned))
	for _, r := range revs {
		res := c.e.reserved[r.AgentID]
		if res == nil {
			res = &reservation{tier: tier, since: c.now}
			c.e.reserved[r.AgentID] = res
		}
		res.tasks = append(res.tasks, [2]string{r.FrameworkID, r.TaskID})
	}
	c.e.planned = append(c.e.planned, revs...)
}

// tierOf is a role's tier (see Tier), cached for the cycle.
func (c *cycle) tierOf(role string) int64 {
	if n, ok := c.t.nodes[role]; ok {
		return n.tier
	}
	return Tier(c.s, role)
}

// expireReservations drops reservations whose revoked tasks have all
// ended, or that waited longer than the SDK waits for a revocation.
func (e *Engine) expireReservations(s *sdk.State, now allocator.LogicalTime) {
	for id, r := range e.reserved {
		live := false
		for _, t := range r.tasks {
			if _, ok := s.Task(t[0], t[1]); ok {
				live = true
			}
		}
		if !live || now-r.since >= sdk.RevocationRetry {
			delete(e.reserved, id)
		}
	}
}

// maxPreemptionsPerCycle bounds one cycle's preemptions.
const maxPreemptionsPerCycle = 100

// Metric name prefixes the engine reports.
const (
	MetricRoleShare      = "share/role/"      // + role: weighted dominant share of its subtree
	MetricFrameworkShare = "share/framework/" // + framework ID: dominant share
	MetricHolds          = "holds"            // agents held back for starving shapes
	MetricUnmet          = "demand/unmet"     // declared task units that fit nowhere
)

// Metrics reports every role's weighted dominant share (of its subtree, as
// hierarchical DRF sorts it) and every framework's dominant share in the
// state the cycle started from (the master's ledger, in which outstanding
// offers count), plus holds and unmet demand when there are any.
func (e *Engine) Metrics(s *sdk.State, _ []allocator.Proposal) map[string]float64 {
	b := sdk.NewShareBasis(s.ClusterTotal(), e.opts.FairnessExclude...)
	roles, fws := s.RoleNames(), s.FrameworkIDs()
	m := make(map[string]float64, len(roles)+len(fws)+2)
	for _, r := range roles {
		m[MetricRoleShare+r] = s.RoleTreeShare(r, b) / s.Weight(r)
	}
	for _, id := range fws {
		m[MetricFrameworkShare+id] = s.FrameworkShareIn(id, b)
	}
	// Reported only when non-zero, to keep transcripts and the operator
	// view quiet in the common case.
	if len(e.holds) > 0 {
		m[MetricHolds] = float64(len(e.holds))
	}
	units := 0
	for _, u := range e.unmet {
		units += u.Units
	}
	if units > 0 {
		m[MetricUnmet] = float64(units)
	}
	return m
}

// FairnessExclude names the resources that do not count toward shares.
func (e *Engine) FairnessExclude() []string { return e.opts.FairnessExclude }
