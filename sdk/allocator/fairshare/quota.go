package fairshare

import (
	"github.com/corral-project/corral/sdk/resources"
)

// Quota: a role's guarantee and limit apply to its whole subtree. Limits
// hold under every policy (capped, withinCaps); guarantees and headroom
// are the quota policy's. Stage 1
// of a cycle serves only clients under an unmet guarantee; stage 2 serves
// everyone, but what unmet guarantees with demand still need (headroom)
// is not given to other roles, and no role's subtree goes past its limit
// or an ancestor's.

// prepareQuota computes each guaranteed role's unmet need and the free
// resources of the cluster.
func (c *cycle) prepareQuota(order []string) {
	c.need = map[string]resources.Resources{}
	for _, r := range c.s.Roles() {
		if r.Guarantee.IsEmpty() {
			continue
		}
		if n := missing(r.Guarantee, c.s.RoleTreeAllocated(r.Name)); !n.IsEmpty() {
			c.need[r.Name] = n
		}
	}
	for _, id := range order {
		if c.s.AgentActive(id) {
			c.freeTotal = c.freeTotal.Add(c.freeOn(id).Scalars())
		}
	}
}

// missing is what has is short of want, on the scalars want names.
func missing(want, has resources.Resources) resources.Resources {
	return want.Scalars().Subtract(has.Scalars())
}

// underGuarantee reports whether role or an ancestor still needs
// resources to reach its guarantee.
func (c *cycle) underGuarantee(role string) bool {
	if len(c.need) == 0 {
		return false
	}
	for _, r := range resources.RoleAncestors(role) {
		if n, ok := c.need[r]; ok && !n.IsEmpty() {
			return true
		}
	}
	return false
}

// computeHeadroom sums what unmet guarantees still need, counting a role
// only while something in its subtree wants offers, and each need once
// (a guaranteed ancestor's need already covers its children's).
func (c *cycle) computeHeadroom() {
	c.headroom = resources.Resources{}
	wanting := map[string]bool{}
	for _, cl := range c.t.clients {
		if !cl.declared || cl.pendingUnits() > 0 {
			for _, r := range resources.RoleAncestors(cl.role) {
				wanting[r] = true
			}
		}
	}
	counted := func(role string) bool {
		n, ok := c.need[role]
		return ok && !n.IsEmpty() && wanting[role]
	}
	for role, n := range c.need {
		if !counted(role) {
			continue
		}
		covered := false
		for _, a := range resources.RoleAncestors(role)[1:] {
			if counted(a) {
				covered = true
			}
		}
		if !covered {
			c.headroom = c.headroom.Add(n)
		}
	}
}

// capped is the part of free that cl may be offered as a whole under
// quota: within every limit above it, within its unmet guarantee in
// stage 1, and leaving the headroom in stage 2.
func (c *cycle) capped(cl *client, free resources.Resources) resources.Resources {
	r := free
	for _, role := range cl.limits {
		lim := c.s.Role(role).Limit
		r = capTo(r, missing(lim, c.t.allocated(role)), lim)
	}
	if !c.e.opts.Quota {
		return r
	}
	switch {
	case c.stage == 1:
		for _, role := range resources.RoleAncestors(cl.role) {
			if n, ok := c.need[role]; ok && !n.IsEmpty() {
				r = capTo(r, n, n)
				break
			}
		}
	case !c.headroom.IsEmpty() && !c.underGuarantee(cl.role):
		r = capTo(r, missing(c.freeTotal, c.headroom), c.headroom)
	}
	return r
}

// capTo limits the scalars that bound names to at most room (absent in
// room means zero room).
func capTo(r, room, bound resources.Resources) resources.Resources {
	var over resources.Resources
	for _, n := range bound.ScalarNames() {
		if ex := r.Scalar(n) - room.Scalar(n); ex > 0 {
			over = over.Add(resources.NewScalar(n, ex))
		}
	}
	return r.Subtract(over)
}

// withinCaps reports whether cl may take one task of shape: the limits
// above it hold, and in stage 2 the headroom stays (unless the headroom is
// for cl's own guarantee).
func (c *cycle) withinCaps(cl *client, shape resources.Resources) bool {
	for _, role := range cl.limits {
		lim := c.s.Role(role).Limit
		if !missing(lim, c.t.allocated(role)).Contains(only(shape, lim)) {
			return false
		}
	}
	if !c.e.opts.Quota {
		return true
	}
	if c.stage == 2 && !c.headroom.IsEmpty() && !c.underGuarantee(cl.role) {
		left := c.freeTotal.Scalars().Subtract(shape.Scalars())
		for _, n := range c.headroom.ScalarNames() {
			if left.Scalar(n) < c.headroom.Scalar(n) {
				return false
			}
		}
	}
	return true
}

// only keeps the scalars of r that names names.
func only(r, names resources.Resources) resources.Resources {
	var out resources.Resources
	for _, n := range names.ScalarNames() {
		out = out.Add(resources.NewScalar(n, r.Scalar(n)))
	}
	return out
}
