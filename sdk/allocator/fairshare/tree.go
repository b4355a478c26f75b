package fairshare

import (
	"slices"
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// node is a role in the hierarchy. Shares are measured on the node's whole
// subtree and divided by its weight, so a parent's weight applies to
// everything below it (Mesos semantics). Frameworks subscribed to a role
// that also has child roles sit in a virtual leaf beside those children,
// as Mesos' sorter does with "eng/.".
type node struct {
	role     string // "" for the root
	virtual  bool   // the leaf holding the clients subscribed to role itself
	parent   *node
	children []*node   // sorted: higher tier first, then lower share, then name
	clients  []*client // leaves only; sorted by share, then framework ID
	weight   float64
	tier     int64
	alloc    vec // subtree allocation, this cycle's proposals included
	share    float64
	pos      int // index in parent.children

	// Quota, as vectors in the share basis: limit (nil: none; +Inf where
	// it names nothing), what the guarantee still needs (nil: none), and
	// how many clients below are under a guarantee (stage 1 skips the
	// subtrees that have none).
	limit      vec
	need       vec
	guaranteed []bool // the dimensions the guarantee names
	open       int
}

// client is one framework under one role: who receives offers.
type client struct {
	fw       *allocator.Framework
	role     string
	ref      sdk.ClientRef // the state's number for (fw.ID, role)
	leaf     *node
	pos      int // index in leaf.clients
	alloc    vec
	share    float64
	gpu      bool                  // may be offered agents with scarce resources
	minOffer []resources.Resources // nil: the policy's global minimum

	// limited: nodes on the client's path with a quota limit. Every
	// policy honours limits; they are rare, so the common path checks
	// nothing.
	limited []*node
	open    bool // under a guarantee (stage 1)

	demand   []unit // declared shapes with the units still to place
	declared bool   // declared a demand: offers are sized to it
}

// unit is a declared task shape and how many of it are still wanted.
type unit struct {
	shape   resources.Resources
	pending int
	placed  int // this cycle
}

func (c *client) pendingUnits() int {
	n := 0
	for _, u := range c.demand {
		n += u.pending
	}
	return n
}

// tree is the cycle's view of who wants offers, in fair-share order.
type tree struct {
	root    *node
	nodes   map[string]*node // by role; virtual leaves are not listed
	clients []*client        // every client, in a stable order
	basis   *sdk.ShareBasis
}

// vec is an amount of each scalar in the share basis's order: the
// thousands of share updates in a cycle are float additions rather than
// resource merges.
type vec []float64

// buildTree assembles the role hierarchy for the active, unsuppressed
// (framework, role) pairs in s. Cost: O(frameworks × roles + role depth).
func buildTree(s *sdk.State, opts *Options) *tree {
	t := &tree{root: &node{weight: 1}, nodes: map[string]*node{}, basis: sdk.NewShareBasis(s.ClusterTotal(), opts.FairnessExclude...)}
	// The state's own frameworks, read only: copying thousands of them
	// every cycle cost more than the rest of building the tree.
	for _, id := range s.FrameworkIDs() {
		f := s.FrameworkView(id)
		if !f.Active {
			continue
		}
		for _, role := range f.Roles {
			if s.Suppressed(f.ID, role) {
				continue
			}
			c := &client{fw: f, role: role, ref: s.ClientRef(f.ID, role), alloc: t.basis.Vector(s.ClientAllocated(f.ID, role))}
			for _, cap := range f.Capabilities {
				if cap == allocator.CapabilityGPUResources {
					c.gpu = true
				}
			}
			if alts, ok := f.MinAllocatable[role]; ok {
				c.minOffer = alts
			}
			if shapes := s.Demand(f.ID, role); len(shapes) > 0 {
				c.declared = true
				c.demand = pendingUnits(shapes, s.ClientAllocated(f.ID, role).Subtract(s.ClientTasks(f.ID, role)))
			}
			t.attach(s, c)
			t.clients = append(t.clients, c)
		}
	}
	t.settle(s, t.root)
	for _, c := range t.clients {
		for n := c.leaf; n != nil && n != t.root; n = n.parent {
			if n.virtual {
				continue
			}
			if lim := s.Role(n.role).Limit; !lim.IsEmpty() {
				if n.limit == nil {
					n.limit = t.limitVec(lim)
				}
				c.limited = append(c.limited, n)
			}
		}
	}
	return t
}

// pendingUnits turns declared shapes into units still to place: units that
// the client's outstanding offers already cover are not asked for again.
func pendingUnits(shapes []allocator.TaskShape, outstanding resources.Resources) []unit {
	out := make([]unit, 0, len(shapes))
	for _, sh := range shapes {
		u := unit{shape: sh.Resources, pending: sh.Count}
		for u.pending > 0 && !outstanding.IsEmpty() && outstanding.Contains(sh.Resources) {
			outstanding = outstanding.Subtract(sh.Resources)
			u.pending--
		}
		out = append(out, u)
	}
	return out
}

// attach puts c under the leaf of its role, creating the path to it.
func (t *tree) attach(s *sdk.State, c *client) {
	n := t.node(s, c.role)
	leaf := n
	if len(n.children) > 0 || n.role != "" {
		// Clients always live in a virtual leaf so that a role can hold
		// both frameworks and child roles.
		leaf = nil
		for _, ch := range n.children {
			if ch.virtual {
				leaf = ch
			}
		}
		if leaf == nil {
			leaf = &node{role: n.role, virtual: true, parent: n, weight: 1, tier: n.tier}
			n.children = append(n.children, leaf)
		}
	}
	c.leaf = leaf
	leaf.clients = append(leaf.clients, c)
}

// node returns the node for role, creating it and its ancestors.
func (t *tree) node(s *sdk.State, role string) *node {
	if n, ok := t.nodes[role]; ok {
		return n
	}
	parent := t.root
	if p := resources.RoleParent(role); p != "" {
		parent = t.node(s, p)
	}
	r := s.Role(role)
	n := &node{role: role, parent: parent, weight: s.Weight(role), tier: parent.tier}
	if r.Priority != 0 {
		n.tier = r.Priority
	}
	t.nodes[role] = n
	parent.children = append(parent.children, n)
	// A virtual leaf created before this child keeps its parent's tier.
	return n
}

// settle sets allocations and shares and sorts everything. A role's
// allocation is its whole subtree's from the state, including frameworks
// that are inactive or suppressed (they still hold what they hold); a
// virtual leaf's is what is allocated to the role itself.
func (t *tree) settle(s *sdk.State, n *node) {
	switch {
	case n == t.root:
		n.alloc = make(vec, len(t.basis.Names()))
	case n.virtual:
		n.alloc = t.basis.Vector(s.RoleAllocated(n.role))
	default:
		n.alloc = t.basis.Vector(s.RoleTreeAllocated(n.role))
	}
	for _, ch := range n.children {
		t.settle(s, ch)
	}
	n.share = t.basis.OfVector(n.alloc) / n.weight
	for _, c := range n.clients {
		c.share = t.basis.OfVector(c.alloc)
	}
	sort.SliceStable(n.children, func(i, j int) bool { return n.children[i].before(n.children[j]) })
	for i, ch := range n.children {
		ch.pos = i
	}
	sort.SliceStable(n.clients, func(i, j int) bool { return n.clients[i].before(n.clients[j]) })
	for i, c := range n.clients {
		c.pos = i
	}
}

func (a *node) before(b *node) bool {
	if a.tier != b.tier {
		return a.tier > b.tier
	}
	if a.share != b.share {
		return a.share < b.share
	}
	if a.virtual != b.virtual {
		return a.virtual // a role's own frameworks before its children on a tie
	}
	return a.role < b.role
}

func (a *client) before(b *client) bool {
	if a.share != b.share {
		return a.share < b.share
	}
	return a.fw.ID < b.fw.ID
}

// charge books r to c for this cycle and restores the order along the
// path to the root. Shares only grow within a cycle, so entries only move
// towards the back of their lists.
// It returns r as a vector.
func (t *tree) charge(c *client, r resources.Resources) vec {
	d := t.basis.Vector(r)
	addVec(c.alloc, d)
	c.share = t.basis.OfVector(c.alloc)
	sinkClient(c)
	for n := c.leaf; n != nil && n != t.root; n = n.parent {
		addVec(n.alloc, d)
		n.share = t.basis.OfVector(n.alloc) / n.weight
		sinkNode(n)
	}
	addVec(t.root.alloc, d)
	return d
}

func addVec(v, d vec) {
	for i := range d {
		v[i] += d[i]
	}
}

func sinkClient(c *client) {
	l := c.leaf.clients
	// Binary search for the new place among the clients behind c, then one
	// copy: leaves can hold hundreds of frameworks.
	rest := l[c.pos+1:]
	k := sort.Search(len(rest), func(i int) bool { return !rest[i].before(c) })
	if k == 0 {
		return
	}
	from := c.pos
	copy(l[from:], l[from+1:from+1+k])
	l[from+k] = c
	for i := from; i <= from+k; i++ {
		l[i].pos = i
	}
}

func sinkNode(n *node) {
	l := n.parent.children
	rest := l[n.pos+1:]
	k := sort.Search(len(rest), func(i int) bool { return !rest[i].before(n) })
	if k == 0 {
		return
	}
	from := n.pos
	copy(l[from:], l[from+1:from+1+k])
	l[from+k] = n
	for i := from; i <= from+k; i++ {
		l[i].pos = i
	}
}

// first returns the first client in fair-share order for which ok holds,
// or nil: the role of lowest weighted share at each level, then the
// framework of lowest share inside the leaf.
// With onlyOpen, subtrees without a client under a guarantee are skipped.
func (t *tree) first(onlyOpen bool, ok func(*client) bool) *client {
	return firstIn(t.root, onlyOpen, ok)
}

func firstIn(n *node, onlyOpen bool, ok func(*client) bool) *client {
	for _, ch := range n.children {
		if onlyOpen && ch.open == 0 {
			continue
		}
		if c := firstIn(ch, onlyOpen, ok); c != nil {
			return c
		}
	}
	for _, c := range n.clients {
		if ok(c) {
			return c
		}
	}
	return nil
}

// tiers lists the distinct tiers of the clients, highest first.
func (t *tree) tiers() []int64 {
	var out []int64
	for _, c := range t.clients {
		if !slices.Contains(out, c.leaf.tier) {
			out = append(out, c.leaf.tier)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}
