package fairshare

import (
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Hold-back against starvation (the fragmentation limit of the Mesos
// paper's discussion): small tasks that churn through a cluster can keep a
// large declared task from ever fitting, because every freed slice is
// re-offered at once. When a declared shape has fit no agent's free
// resources for StarvationTimeout, the agent closest to fitting it is held:
// its freed resources go to nobody else until the shape fits (then it is
// offered to the starving framework) or MaxHold passes.

// expireHolds drops holds that ran out, whose demand went away, or whose
// agent is gone.
func (e *Engine) expireHolds(s *sdk.State, now allocator.LogicalTime) {
	for id, h := range e.holds {
		expired := e.opts.MaxHold > 0 && now-h.since >= e.opts.MaxHold
		if expired || !s.AgentActive(id) || !declares(s, h.key, h.shape) {
			delete(e.holds, id)
			if expired {
				// Starve a whole timeout again before the next hold, so a
				// shape that cannot be served does not pin agents forever.
				e.starving[h.key] = now
			}
		}
	}
}

func declares(s *sdk.State, k shapeKey, shape resources.Resources) bool {
	for _, sh := range s.Demand(k.framework, k.role) {
		if sh.Resources.Equal(shape) {
			return true
		}
	}
	return false
}

// updateStarvation starts, clears and acts on starvation clocks after a
// cycle.
func (e *Engine) updateStarvation(c *cycle) {
	if e.opts.StarvationTimeout <= 0 {
		return
	}
	seen := map[shapeKey]bool{}
	var ripe []shapeKey
	shapes := map[shapeKey]resources.Resources{}
	for _, cl := range c.t.clients {
		for _, u := range cl.demand {
			k := shapeKey{cl.fw.ID, cl.role, u.shape.String()}
			seen[k] = true
			// Starving means none of the shape could be placed this cycle
			// and it fits nowhere; a framework that got some is not.
			if u.pending == 0 || u.placed > 0 || c.fitsSomewhere(cl, u.shape) {
				delete(e.starving, k)
				continue
			}
			since, ok := e.starving[k]
			if !ok {
				e.starving[k] = c.now
				continue
			}
			if c.now-since >= e.opts.StarvationTimeout && !e.holding(k) {
				ripe = append(ripe, k)
				shapes[k] = u.shape
			}
		}
	}
	for k := range e.starving {
		if !seen[k] {
			delete(e.starving, k)
		}
	}
	sort.Slice(ripe, func(i, j int) bool {
		a, b := ripe[i], ripe[j]
		if a.framework != b.framework {
			return a.framework < b.framework
		}
		if a.role != b.role {
			return a.role < b.role
		}
		return a.shape < b.shape
	})
	for _, k := range ripe {
		if id := c.closestAgent(k, shapes[k]); id != "" {
			e.holds[id] = &hold{key: k, shape: shapes[k], since: c.now}
		}
	}
}

func (e *Engine) holding(k shapeKey) bool {
	for _, h := range e.holds {
		if h.key == k {
			return true
		}
	}
	return false
}

// fitsSomewhere reports whether shape fits the free resources left on any
// active agent cl may be offered.
func (c *cycle) fitsSomewhere(cl *client, shape resources.Resources) bool {
	for _, id := range c.s.AgentIDsView() {
		if !c.s.AgentActive(id) {
			continue
		}
		if a, _ := c.s.Agent(id); c.hasScarce(a.Total) && !cl.gpu {
			continue
		}
		if c.freeOn(id).Contains(shape) {
			return true
		}
	}
	return false
}

// closestAgent picks the agent to hold for a starving shape: one whose
// total could ever hold it, not already held, missing the least of it
// (each resource's shortfall as a fraction of the shape), ties by ID.
func (c *cycle) closestAgent(k shapeKey, shape resources.Resources) string {
	gpu := false
	if f, ok := c.s.Framework(k.framework); ok {
		for _, cap := range f.Capabilities {
			gpu = gpu || cap == allocator.CapabilityGPUResources
		}
	}
	best, bestDeficit := "", 0.0
	for _, id := range c.s.AgentIDsView() {
		a, ok := c.s.Agent(id)
		if !ok || !a.Active || c.e.holds[id] != nil || !a.Total.Contains(shape) || (c.hasScarce(a.Total) && !gpu) {
			continue
		}
		free := c.freeOn(id)
		deficit := 0.0
		for _, n := range shape.ScalarNames() {
			if short := shape.Scalar(n) - free.Scalar(n); short > 0 {
				deficit += short / shape.Scalar(n)
			}
		}
		if best == "" || deficit < bestDeficit {
			best, bestDeficit = id, deficit
		}
	}
	return best
}
