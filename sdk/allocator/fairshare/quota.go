package fairshare

import (
	"math"

	"github.com/corral-project/corral/sdk/resources"
)

// Quota: a role's guarantee and limit apply to its whole subtree. Limits
// hold under every policy (capped, withinCaps); guarantees and headroom are
// the quota policy's. Stage 1 of a cycle serves only clients under an
// unmet guarantee; stage 2 serves everyone, but what unmet guarantees with
// demand still need (headroom) is not given to other roles, and no role's
// subtree goes past its limit or an ancestor's.
//
// All of it is vector arithmetic in the share basis (see vec): quota is
// checked for every candidate on every agent, thousands of times a cycle.

// eps absorbs float noise in fixed-point amounts (thousandths).
const eps = 1e-6

// limitVec is a role's limit as a vector: +Inf where it sets none.
func (t *tree) limitVec(lim resources.Resources) vec {
	v := make(vec, len(t.basis.Names()))
	for i, n := range t.basis.Names() {
		v[i] = math.Inf(1)
		if lim.Scalar(n) > 0 {
			v[i] = lim.Scalar(n)
		}
	}
	return v
}

// prepareQuota computes each guaranteed role's unmet need, the stage-1
// eligibility of every client and the free resources of the cluster.
func (c *cycle) prepareQuota(order []string) {
	t := c.t
	for _, name := range c.s.RoleNames() {
		n, ok := t.nodes[name]
		if !ok {
			continue
		}
		r := c.s.Role(name)
		if r.Guarantee.IsEmpty() {
			continue
		}
		need := t.basis.Vector(r.Guarantee)
		n.guaranteed = make([]bool, len(need))
		for i := range need {
			n.guaranteed[i] = need[i] > 0
			need[i] = max(0, need[i]-n.alloc[i])
		}
		n.need = need
	}
	c.freeTotal = make(vec, len(t.basis.Names()))
	for _, id := range order {
		if c.s.AgentActive(id) {
			t.basis.AddTo(c.freeTotal, c.freeOn(id))
		}
	}
	for _, cl := range t.clients {
		if c.underGuarantee(cl) {
			cl.open = true
			for n := cl.leaf; n != nil; n = n.parent {
				n.open++
			}
		}
	}
}

func unmet(need vec) bool {
	for _, q := range need {
		if q > eps {
			return true
		}
	}
	return false
}

// underGuarantee reports whether a role on cl's path still needs resources
// to reach its guarantee.
func (c *cycle) underGuarantee(cl *client) bool {
	for n := cl.leaf; n != nil; n = n.parent {
		if n.need != nil && unmet(n.need) {
			return true
		}
	}
	return false
}

// chargeQuota books a grant against the needs on cl's path and the free
// total; a guarantee met closes its subtree's clients for stage 1.
func (c *cycle) chargeQuota(cl *client, d vec) {
	for i := range d {
		c.freeTotal[i] -= d[i]
	}
	for n := cl.leaf; n != nil; n = n.parent {
		if n.need == nil || !unmet(n.need) {
			continue
		}
		for i := range d {
			n.need[i] = max(0, n.need[i]-d[i])
		}
		if !unmet(n.need) {
			c.closeSubtree(n)
		}
	}
}

func (c *cycle) closeSubtree(n *node) {
	for _, cl := range n.clients {
		if cl.open && !c.underGuarantee(cl) {
			cl.open = false
			for m := cl.leaf; m != nil; m = m.parent {
				m.open--
			}
		}
	}
	for _, ch := range n.children {
		c.closeSubtree(ch)
	}
}

// computeHeadroom sums what unmet guarantees still need, counting a role
// only while something in its subtree wants offers, and each need once
// (a guaranteed ancestor's need already covers its children's).
func (c *cycle) computeHeadroom() {
	t := c.t
	c.headroom = make(vec, len(t.basis.Names()))
	wanting := map[*node]bool{}
	for _, cl := range t.clients {
		if !cl.declared || cl.pendingUnits() > 0 {
			for n := cl.leaf; n != nil; n = n.parent {
				wanting[n] = true
			}
		}
	}
	counted := func(n *node) bool { return n.need != nil && unmet(n.need) && wanting[n] }
	var walk func(n *node, covered bool)
	walk = func(n *node, covered bool) {
		if !covered && counted(n) {
			addVec(c.headroom, n.need)
			covered = true
		}
		for _, ch := range n.children {
			walk(ch, covered)
		}
	}
	walk(t.root, false)
	c.hasHeadroom = unmet(c.headroom)
}

// caps fills room with how much of each scalar cl may still receive (+Inf:
// unbounded) and reports whether anything bounds it.
func (c *cycle) caps(cl *client, room vec) bool {
	bounded := false
	for i := range room {
		room[i] = math.Inf(1)
	}
	for _, n := range cl.limited {
		for i, l := range n.limit {
			if !math.IsInf(l, 1) {
				room[i] = min(room[i], l-n.alloc[i])
				bounded = true
			}
		}
	}
	if !c.e.opts.Quota {
		return bounded
	}
	switch {
	case c.stage == 1:
		for n := cl.leaf; n != nil; n = n.parent {
			if n.need != nil && unmet(n.need) {
				for i, q := range n.need {
					if n.guaranteed[i] {
						room[i] = min(room[i], q)
					}
				}
				bounded = true
				break
			}
		}
	case c.hasHeadroom && !cl.open && !c.underGuarantee(cl):
		for i, h := range c.headroom {
			if h > eps {
				room[i] = min(room[i], c.freeTotal[i]-h)
				bounded = true
			}
		}
	}
	return bounded
}

// capped is the part of free that cl may be offered as a whole.
func (c *cycle) capped(cl *client, free resources.Resources) resources.Resources {
	if len(cl.limited) == 0 && !c.e.opts.Quota {
		return free
	}
	room := make(vec, len(c.t.basis.Names()))
	if !c.caps(cl, room) {
		return free
	}
	var over resources.Resources
	for i, n := range c.t.basis.Names() {
		if ex := free.Scalar(n) - max(room[i], 0); ex > eps {
			over = over.Add(resources.NewScalar(n, ex))
		}
	}
	if over.IsEmpty() {
		return free
	}
	return free.Subtract(over)
}

// withinCaps reports whether cl may take one task of shape.
func (c *cycle) withinCaps(cl *client, shape resources.Resources) bool {
	if len(cl.limited) == 0 && !c.e.opts.Quota {
		return true
	}
	room := make(vec, len(c.t.basis.Names()))
	if !c.caps(cl, room) {
		return true
	}
	if c.stage == 1 {
		// A task is placed while the role is under its guarantee, even if
		// it overshoots it; only limits bound it.
		for i := range room {
			room[i] = math.Inf(1)
		}
		for _, n := range cl.limited {
			for i, l := range n.limit {
				room[i] = min(room[i], l-n.alloc[i])
			}
		}
	}
	for i, n := range c.t.basis.Names() {
		if shape.Scalar(n) > room[i]+eps {
			return false
		}
	}
	return true
}
