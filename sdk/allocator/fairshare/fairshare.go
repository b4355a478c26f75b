// Package fairshare is the allocation engine behind corral's shipped
// policies (drf, quota, priority); in-house policies may use it too.
//
// It is hierarchical weighted DRF in the shape of Mesos' allocator: agents
// are visited in turn and each one's free resources go to the (role,
// framework) furthest below its fair share: the role of lowest weighted
// dominant share at each level of the role tree, then the framework of
// lowest share inside the role. On top of that:
//
//   - Demand. A framework that declared its pending task shapes is offered
//     one task at a time by progressive filling (DRF paper, Algorithm 1),
//     so one agent can be split between several frameworks in one cycle
//     and a greedy framework cannot take more than its share. Frameworks
//     without a declaration get Mesos behaviour: the whole free resources.
//   - Tiers (Options.Tiers). Roles of a higher priority are served first;
//     ties by DRF.
//   - Quota (Options.Quota). Roles under their guarantee are served first;
//     what an unmet guarantee still needs is held back from other roles
//     while that role has demand; a role's offers plus tasks never exceed
//     its limit or an ancestor's.
//   - Hold-back (Options.StarvationTimeout). A declared shape that has fit
//     no agent for that long reserves the agent closest to fitting until
//     it fits, for at most Options.MaxHold.
//   - Preemption (Options.Preemption, with Tiers). Unmet demand of a higher
//     tier proposes revocations of lower-tier tasks.
//
// An Engine is deterministic: the same state and logical times give the
// same proposals. It keeps a little memory between cycles (starvation
// clocks, holds), which Reset clears when the plugin is re-initialized.
package fairshare

import (
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Options configure an Engine. The zero value is flat-or-hierarchical DRF
// with no minimum offer.
type Options struct {
	// MinOffer lists alternatives: a whole-resources offer is made only
	// when it contains at least one. Frameworks may set their own per role.
	MinOffer []resources.Resources
	// FairnessExclude names resources that do not count toward shares.
	FairnessExclude []string
	// ScarceResources: agents with any of these are offered only to
	// frameworks with the GPU_RESOURCES capability (Mesos' rule for gpus).
	ScarceResources []string
	// ShuffleSeed 0 visits agents sorted by ID; otherwise in an order
	// shuffled from the seed and the cycle's logical time.
	ShuffleSeed uint64

	Tiers      bool
	Quota      bool
	Preemption bool

	// StarvationTimeout > 0 enables hold-back; MaxHold bounds each hold.
	StarvationTimeout allocator.LogicalTime
	MaxHold           allocator.LogicalTime
}

// Engine allocates under Options. Not safe for concurrent use (the SDK
// serializes cycles).
type Engine struct {
	opts Options

	// starving: since when a client's declared shape has fit no agent.
	starving map[shapeKey]allocator.LogicalTime
	// holds: agents held back for one starving shape.
	holds map[string]*hold
	// unmet is the demand the last cycle could not place, for Revocations.
	unmet []sdk.Unmet
	// full is set when the last cycle did not visit every agent, so the
	// next one must not skip unchanged agents.
	full bool
	// planned: the preemptions the last cycle chose (see Revocations).
	planned []allocator.Revocation
	// reserved: agents where tasks are being revoked for a tier; lower
	// tiers are not offered anything there meanwhile.
	reserved map[string]*reservation
	// free is the cycle's per-agent free resources, kept between cycles
	// and cleared: refilling an emptied map costs less than growing a
	// new one to the thousands of agents a busy cycle visits.
	free map[string]resources.Resources
	// lastOffers sizes the next cycle's proposal slice.
	lastOffers int
}

type reservation struct {
	tier  int64
	since allocator.LogicalTime
	tasks [][2]string // framework, task
}

type shapeKey struct {
	framework, role string
	shape           string // resources.String() of the shape
}

type hold struct {
	key   shapeKey
	shape resources.Resources
	since allocator.LogicalTime
}

// New returns an engine.
func New(opts Options) *Engine {
	e := &Engine{opts: opts}
	e.Reset()
	return e
}

// Reset forgets what the engine remembers between cycles.
func (e *Engine) Reset() {
	e.starving = map[shapeKey]allocator.LogicalTime{}
	e.holds = map[string]*hold{}
	e.unmet = nil
	e.full = true
	e.planned = nil
	e.reserved = map[string]*reservation{}
	e.free = nil
	e.lastOffers = 0
}

// Options returns the engine's options.
func (e *Engine) Options() Options { return e.opts }

// cycle is one Allocate call's working state.
type cycle struct {
	e     *Engine
	s     *sdk.State
	now   allocator.LogicalTime
	t     *tree
	props []allocator.Proposal
	free  map[string]resources.Resources // agent free resources left this cycle
	// Quota (see quota.go): resources held back for unmet guarantees with
	// demand, and the unallocated resources of active agents, this cycle's
	// proposals taken out.
	headroom    vec
	hasHeadroom bool
	freeTotal   vec
	stage       int // 1: guarantees only; 2: everyone
	tiered      bool
	tier        int64 // with tiered: the only tier served in this pass
	offers      int
	max         int
}

// Allocate proposes this cycle's offers.
func (e *Engine) Allocate(s *sdk.State, now allocator.LogicalTime, maxOffers int) []allocator.Proposal {
	c := &cycle{e: e, s: s, now: now, max: maxOffers}
	c.t = buildTree(s, &e.opts)
	e.expireHolds(s, now)
	e.expireReservations(s, now)
	e.planned = nil
	if len(c.t.clients) == 0 {
		e.unmet = nil
		e.full = false
		return nil
	}
	order := e.agentOrder(s, now)
	// Not presized to the cluster: most cycles look at the few agents
	// that changed. The map is the engine's, cleared, so a cycle that
	// visits thousands of agents does not grow a new one each time; the
	// proposals are sized from the previous cycle for the same reason.
	if e.free == nil {
		e.free = make(map[string]resources.Resources)
	}
	clear(e.free)
	c.free = e.free
	c.props = make([]allocator.Proposal, 0, max(min(len(order), 256), e.lastOffers+e.lastOffers/8))
	// Agents whose free resources found no taker last time are skipped
	// until something about them, or about who wants offers, changes; the
	// cycle's cost follows change, not cluster size. Quota and holds make
	// eligibility depend on the rest of the cluster, so they visit all.
	skipUnchanged := !e.full && !e.opts.Quota && len(e.holds) == 0
	e.full = false
	if e.opts.Quota {
		c.prepareQuota(order)
		c.stage = 1
		c.visit(order, false)
		c.computeHeadroom()
	}
	c.stage = 2
	if e.opts.Tiers {
		// Strict tiers: each tier is served on every agent before the next
		// one down, so that what a tier cannot use is known before lower
		// tiers get it, and preemption can reserve agents in between.
		for _, tier := range c.t.tiers() {
			c.tiered, c.tier = true, tier
			if !c.visit(order, skipUnchanged) {
				e.full = true
				break
			}
			if e.opts.Preemption {
				c.preempt(tier)
			}
		}
	} else if !c.visit(order, skipUnchanged) {
		e.full = true
	}
	props := c.props
	e.lastOffers = len(props)
	e.unmet = sdk.UnmetDemand(s, props)
	e.updateStarvation(c)
	return props
}

// visit walks the agents once; it returns false when maxOffers stopped it.
func (c *cycle) visit(order []string, skipUnchanged bool) bool {
	for _, agentID := range order {
		if c.max > 0 && len(c.props) >= c.max {
			return false
		}
		v := c.s.AgentView(agentID)
		if !v.Active() || (skipUnchanged && !c.s.AgentChanged(agentID)) {
			continue
		}
		c.fill(agentID, v)
	}
	return true
}

// freeOn is what is left on the agent this cycle.
func (c *cycle) freeOn(agentID string) resources.Resources {
	if r, ok := c.free[agentID]; ok {
		return r
	}
	r := c.s.Available(agentID)
	c.free[agentID] = r
	return r
}

// freeOnView is freeOn for an agent whose view the caller holds; it does
// not record the agent's free resources (fill stores them when done).
func (c *cycle) freeOnView(agentID string, v sdk.AgentView) resources.Resources {
	if r, ok := c.free[agentID]; ok {
		return r
	}
	return v.Available()
}

// grant is what one client receives on the agent being filled.
type grant struct {
	c   *client
	res resources.Resources
}

// fill hands out one agent's free resources by progressive filling.
func (c *cycle) fill(agentID string, v sdk.AgentView) {
	free := c.freeOnView(agentID, v)
	if free.IsEmpty() {
		c.free[agentID] = free
		return
	}
	scarce := c.hasScarce(v.Total())
	h := c.e.holds[agentID]
	reserved := c.e.reserved[agentID]
	filters := c.s.AgentFilters(agentID)
	var grants []grant
	give := func(cl *client, r resources.Resources, whole bool) {
		for i := range grants {
			if grants[i].c == cl {
				grants[i].res = grants[i].res.Add(r)
				goto charged
			}
		}
		grants = append(grants, grant{c: cl, res: r})
	charged:
		if whole {
			// Taking everything leaves nothing; no subtraction needed.
			free = resources.Resources{}
		} else {
			free = free.Subtract(r)
		}
		d := c.t.charge(cl, r)
		if c.e.opts.Quota {
			c.chargeQuota(cl, d)
		}
	}
	for !free.IsEmpty() {
		var pick resources.Resources
		var pickUnit *unit
		var pickWhole bool // pick is free itself
		offered := func(cl *client) resources.Resources {
			// What cl would get now: one task of a declared shape, or the
			// whole free resources within its quota caps.
			pickUnit, pickWhole = nil, false
			if cl.declared {
				for i := range cl.demand {
					u := &cl.demand[i]
					if u.pending > 0 && free.Contains(u.shape) && c.withinCaps(cl, u.shape) {
						pickUnit = u
						return u.shape
					}
				}
				return resources.Resources{}
			}
			r := c.capped(cl, free)
			if !c.allocatable(cl, r) {
				return resources.Resources{}
			}
			// capped returns free itself when nothing caps the client.
			pickWhole = len(cl.limited) == 0 && !c.e.opts.Quota
			return r
		}
		cl := c.t.first(c.stage == 1, func(cl *client) bool {
			if scarce && !cl.gpu {
				return false
			}
			if c.stage == 1 && !cl.open {
				return false
			}
			if c.tiered && cl.leaf.tier != c.tier {
				return false
			}
			if reserved != nil && cl.leaf.tier < reserved.tier {
				return false
			}
			if h != nil && (cl.fw.ID != h.key.framework || cl.role != h.key.role) {
				return false
			}
			r := offered(cl)
			if r.IsEmpty() {
				return false
			}
			if h != nil && !r.Contains(h.shape) {
				return false
			}
			// Filters compare with everything the client would hold on
			// this agent after the grant, as the master offers it.
			whole := r
			for _, g := range grants {
				if g.c == cl {
					whole = g.res.Add(r)
				}
			}
			if filters.FilteredRef(cl.ref, whole, c.now) {
				return false
			}
			pick = r
			return true
		})
		if cl == nil {
			break
		}
		// first() evaluated ok() last on the winner, so pickUnit is its.
		if pickUnit != nil {
			pickUnit.pending--
			pickUnit.placed++
			if h != nil {
				delete(c.e.holds, agentID)
				delete(c.e.starving, h.key)
				h = nil
			}
		}
		give(cl, pick, pickWhole)
	}
	// The grants came out of the agent's free resources and go to active,
	// subscribed clients; the SDK re-checks every proposal all the same.
	for _, g := range grants {
		c.props = append(c.props, allocator.Proposal{FrameworkID: g.c.fw.ID, Role: g.c.role, AgentID: agentID, Resources: g.res})
	}
	c.free[agentID] = free
}

// allocatable reports whether r is worth offering to cl.
func (c *cycle) allocatable(cl *client, r resources.Resources) bool {
	if r.IsEmpty() {
		return false
	}
	alts := c.e.opts.MinOffer
	if cl.minOffer != nil {
		alts = cl.minOffer
	}
	if len(alts) == 0 {
		return true
	}
	for _, a := range alts {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

func (c *cycle) hasScarce(total resources.Resources) bool {
	for _, n := range c.e.opts.ScarceResources {
		if total.Scalar(n) > 0 {
			return true
		}
	}
	return false
}

// agentOrder is the order agents are visited in this cycle.
// Sorted, it is the state's own list (read only).
func (e *Engine) agentOrder(s *sdk.State, now allocator.LogicalTime) []string {
	if e.opts.ShuffleSeed == 0 {
		return s.AgentIDsView()
	}
	ids := s.AgentIDs()
	rng := rand.New(rand.NewPCG(e.opts.ShuffleSeed, uint64(now)))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids
}

// Unmet returns the demand the last cycle could not place anywhere.
func (e *Engine) Unmet() []sdk.Unmet { return slices.Clone(e.unmet) }

// Holds returns the agents held back for starving shapes, sorted.
func (e *Engine) Holds() []string {
	out := make([]string, 0, len(e.holds))
	for id := range e.holds {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
