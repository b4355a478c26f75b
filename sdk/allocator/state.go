// Package allocator is the SDK for writing corral allocator plugins. It keeps
// a mirror of the master's allocator-relevant state (State), fed from the
// snapshot and deltas the master sends, and turns a Policy (a pure function
// from that state to offer proposals) into a complete allocator plugin
// (NewPlugin, Serve).
package allocator

import (
	"fmt"
	"slices"
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// allocKey names one allocation: what a framework holds under a role on an
// agent. Filters use the same key.
type allocKey struct {
	framework, role, agent string
}

// taskKey names a task: IDs are unique within a framework.
type taskKey struct{ framework, task string }

// demandKey names a framework's demand under a role.
type demandKey struct{ framework, role string }

// State mirrors the master's allocator ledger at one version. It is not safe
// for concurrent use; NewPlugin serializes access.
//
// Aggregates (per agent, role and framework allocations, the cluster total)
// are maintained incrementally so that a policy can query shares and
// availability in constant time per call.
type State struct {
	version uint64
	now     allocator.LogicalTime

	// agents holds each agent with what is free on it, behind one
	// lookup: a policy visiting an agent reads both.
	agents   map[string]*agentEntry
	agentIDs []string // sorted; nil when it must be rebuilt
	// agentSlots holds every agent entry at its slot (nil: free, listed in
	// freeSlots for reuse).
	agentSlots []*agentEntry
	freeSlots  []int32
	frameworks map[string]*allocator.Framework
	roles      map[string]allocator.Role // explicit role entries
	tasks      map[taskKey]*allocator.Task
	demands    map[demandKey][]allocator.TaskShape

	allocs map[allocKey]resources.Resources
	// Scalars only, in fixed point: shares and quota look at nothing else.
	scalars     scalarIndex
	byRole      map[string]qty
	byRoleTree  map[string]qty // role plus all its descendants
	byFramework map[string]qty
	byClient    map[demandKey]qty // framework under one role
	tasksOf     map[demandKey]qty // running tasks of a framework under one role

	clusterTotal resources.Resources

	clients     clientInterner // (framework, role) pairs as ClientRefs
	filterQueue expiryQueue    // every filter's expiry, soonest first

	roleAncestors map[string][]string
	// revoking: tasks the plugin proposed to revoke, and when.
	revoking map[taskKey]allocator.LogicalTime

	// Change tracking for policies that work incrementally (see Changes).
	changed    map[string]struct{}
	allChanged bool
	// clientsGen changes whenever the set of (framework, role) pairs that
	// may receive offers, or their configuration, may have changed.
	clientsGen uint64
	// Sorted framework IDs and role names as of clientsGen listsGen:
	// policies read them every cycle, and they change far less often.
	listsGen     uint64
	frameworkIDs []string
	roleNames    []string
	// openPairs is cancellingPairs' scratch map.
	openPairs map[allocKey]int
}

// NewState returns an empty state at version 0.
func NewState() *State {
	s := &State{}
	s.reset()
	return s
}

func (s *State) reset() {
	*s = State{
		agents:        map[string]*agentEntry{},
		frameworks:    map[string]*allocator.Framework{},
		roles:         map[string]allocator.Role{},
		tasks:         map[taskKey]*allocator.Task{},
		demands:       map[demandKey][]allocator.TaskShape{},
		allocs:        map[allocKey]resources.Resources{},
		byRole:        map[string]qty{},
		byRoleTree:    map[string]qty{},
		byFramework:   map[string]qty{},
		byClient:      map[demandKey]qty{},
		tasksOf:       map[demandKey]qty{},
		changed:       map[string]struct{}{},
		revoking:      map[taskKey]allocator.LogicalTime{},
		roleAncestors: map[string][]string{},
		allChanged:    true,
		clientsGen:    s.clientsGen + 1,
	}
}

// Init replaces the state with snap. On error the state is empty at
// version 0.
func (s *State) Init(snap *allocator.Snapshot) error {
	s.reset()
	if snap == nil {
		return fmt.Errorf("init: nil snapshot")
	}
	for i := range snap.Agents {
		a := snap.Agents[i]
		if err := s.addAgent(&a); err != nil {
			s.reset()
			return fmt.Errorf("init: %w", err)
		}
	}
	for i := range snap.Frameworks {
		f := snap.Frameworks[i]
		if err := s.addFramework(&f); err != nil {
			s.reset()
			return fmt.Errorf("init: %w", err)
		}
	}
	for _, r := range snap.Roles {
		if err := s.setRole(r); err != nil {
			s.reset()
			return fmt.Errorf("init: %w", err)
		}
	}
	for i := range snap.Allocations {
		if err := s.allocate(&snap.Allocations[i]); err != nil {
			s.reset()
			return fmt.Errorf("init: %w", err)
		}
	}
	for _, f := range snap.Filters {
		if e := s.agents[f.AgentID]; e != nil && !f.Resources.IsEmpty() {
			s.addFilter(e, f.FrameworkID, f.Role, f.Resources, f.ExpiresAt)
		}
	}
	for i := range snap.Tasks {
		if err := s.addTask(&snap.Tasks[i]); err != nil {
			s.reset()
			return fmt.Errorf("init: %w", err)
		}
	}
	for i := range snap.Demands {
		if err := s.setDemand(&snap.Demands[i]); err != nil {
			s.reset()
			return fmt.Errorf("init: %w", err)
		}
	}
	s.version = snap.Version
	s.now = snap.Now
	return nil
}

// Apply applies one delta. Its Version must be exactly Version()+1. A delta
// that contradicts the state (an unknown agent, recovering more than is
// allocated) is rejected and leaves the state unchanged: it means the mirror
// diverged from the master and must be re-initialized.
func (s *State) Apply(d allocator.Delta) error {
	if d.Version != s.version+1 {
		return fmt.Errorf("delta %s has version %d, state expects %d", d.Kind, d.Version, s.version+1)
	}
	if err := s.apply(&d); err != nil {
		return fmt.Errorf("delta %d (%s): %w", d.Version, d.Kind, err)
	}
	s.version = d.Version
	if d.At > s.now {
		s.now = d.At
	}
	return nil
}

// ApplyAll applies a cycle's deltas in order, as Apply does one by one,
// with one shortcut: an allocation that is recovered whole later in the
// same batch (an offer committed and declined between two cycles) changes
// nothing but the agent's change mark and a decline filter, so the pair is
// not booked and unbooked. That keeps the cost of a cycle with the net
// change, not with the offer churn. On error the state is left part-way
// and must be re-initialized, as with Apply.
func (s *State) ApplyAll(deltas []allocator.Delta) error {
	paired := s.cancellingPairs(deltas)
	for i := range deltas {
		d := &deltas[i]
		if paired != nil && paired[i] && d.Version == s.version+1 {
			e := s.agents[d.Allocation.AgentID]
			if e == nil {
				if err := s.Apply(*d); err != nil {
					return err
				}
				continue
			}
			if d.Kind == allocator.Recovered {
				s.markChanged(d.Allocation.AgentID)
				if d.RefuseSeconds > 0 && !d.Allocation.Resources.IsEmpty() {
					s.addFilter(e, d.Allocation.FrameworkID, d.Allocation.Role, d.Allocation.Resources,
						d.At+allocator.LogicalTime(d.RefuseSeconds*1000))
				}
			}
			s.version = d.Version
			s.now = max(s.now, d.At)
			continue
		}
		if err := s.Apply(*d); err != nil {
			return err
		}
	}
	return nil
}

// cancellingPairs marks Allocated deltas that a later Recovered delta of
// the same batch takes back exactly, and those Recovered deltas. Anything
// that could make the pair mean more (an agent or framework changing or
// going away) ends the search for pairs across it.
func (s *State) cancellingPairs(deltas []allocator.Delta) []bool {
	var paired []bool
	// The map is the state's, cleared: a busy cycle pairs thousands.
	if s.openPairs == nil {
		s.openPairs = make(map[allocKey]int, len(deltas)/2)
	}
	open := s.openPairs
	defer clear(open)
	for i := range deltas {
		d := &deltas[i]
		switch d.Kind {
		case allocator.Allocated:
			if d.Allocation != nil {
				open[allocKey{d.Allocation.FrameworkID, d.Allocation.Role, d.Allocation.AgentID}] = i
			}
		case allocator.Recovered:
			if d.Allocation == nil {
				continue
			}
			k := allocKey{d.Allocation.FrameworkID, d.Allocation.Role, d.Allocation.AgentID}
			// The plugin glue points both deltas at the offer they repeat
			// (see pluginapi/allocator/offerref.go): the same allocation
			// needs no comparison.
			if j, ok := open[k]; ok && (deltas[j].Allocation == d.Allocation || deltas[j].Allocation.Resources.Equal(d.Allocation.Resources)) {
				if paired == nil {
					paired = make([]bool, len(deltas))
				}
				paired[i], paired[j] = true, true
			}
			delete(open, k)
		case allocator.AgentUpdated, allocator.AgentRemoved, allocator.FrameworkRemoved:
			clear(open)
		}
	}
	return paired
}

func (s *State) apply(d *allocator.Delta) error {
	switch d.Kind {
	case allocator.FrameworkAdded, allocator.FrameworkUpdated, allocator.FrameworkRemoved,
		allocator.RoleUpdated, allocator.Suppressed, allocator.Revived, allocator.DemandUpdated:
		// Who may receive offers changed: every agent with free resources
		// is worth another look.
		s.allChanged = true
		s.clientsGen++
	}
	switch d.Kind {
	case allocator.AgentAdded:
		if d.Agent == nil {
			return fmt.Errorf("missing agent")
		}
		return s.addAgent(d.Agent)
	case allocator.AgentUpdated:
		if d.Agent == nil {
			return fmt.Errorf("missing agent")
		}
		e, ok := s.agents[d.Agent.ID]
		if !ok {
			return fmt.Errorf("unknown agent %q", d.Agent.ID)
		}
		s.clusterTotal = s.clusterTotal.Subtract(e.agent.Total).Add(d.Agent.Total)
		e.agent = cloneAgent(d.Agent)
		e.avail = d.Agent.Total.Subtract(s.AgentAllocated(d.Agent.ID))
		s.markChanged(d.Agent.ID)
	case allocator.AgentRemoved:
		if _, ok := s.agents[d.AgentID]; !ok {
			return fmt.Errorf("unknown agent %q", d.AgentID)
		}
		s.removeAgent(d.AgentID)
	case allocator.FrameworkAdded:
		if d.Framework == nil {
			return fmt.Errorf("missing framework")
		}
		return s.addFramework(d.Framework)
	case allocator.FrameworkUpdated:
		if d.Framework == nil {
			return fmt.Errorf("missing framework")
		}
		if _, ok := s.frameworks[d.Framework.ID]; !ok {
			return fmt.Errorf("unknown framework %q", d.Framework.ID)
		}
		s.frameworks[d.Framework.ID] = cloneFramework(d.Framework)
	case allocator.FrameworkRemoved:
		if _, ok := s.frameworks[d.FrameworkID]; !ok {
			return fmt.Errorf("unknown framework %q", d.FrameworkID)
		}
		s.removeFramework(d.FrameworkID)
	case allocator.RoleUpdated:
		if d.Role == nil {
			return fmt.Errorf("missing role")
		}
		return s.setRole(*d.Role)
	case allocator.Allocated:
		if d.Allocation == nil {
			return fmt.Errorf("missing allocation")
		}
		return s.allocate(d.Allocation)
	case allocator.Recovered:
		if d.Allocation == nil {
			return fmt.Errorf("missing allocation")
		}
		return s.recover(d.Allocation, d.At, d.RefuseSeconds)
	case allocator.Suppressed:
		f, ok := s.frameworks[d.FrameworkID]
		if !ok {
			return fmt.Errorf("unknown framework %q", d.FrameworkID)
		}
		roles := rolesOrAll(f, d.Roles)
		f.SuppressedRoles = normalizeRoles(append(f.SuppressedRoles, roles...))
		// A suppressed role wants nothing: its declared demand is dropped.
		for _, r := range roles {
			delete(s.demands, demandKey{f.ID, r})
		}
	case allocator.Revived:
		f, ok := s.frameworks[d.FrameworkID]
		if !ok {
			return fmt.Errorf("unknown framework %q", d.FrameworkID)
		}
		roles := rolesOrAll(f, d.Roles)
		f.SuppressedRoles = slices.DeleteFunc(f.SuppressedRoles, func(r string) bool { return slices.Contains(roles, r) })
		// Reviving clears filters on every agent, as Mesos' reviveOffers
		// does. Their entries in the expiry queue go stale and are skipped.
		var refs []ClientRef
		for _, r := range roles {
			if ref, ok := s.clients.lookup(f.ID, r); ok {
				refs = append(refs, ref)
			}
		}
		if len(refs) > 0 {
			s.removeFilters(func(e filterEntry) bool { return slices.Contains(refs, e.client) })
		}
	case allocator.TaskAdded:
		if d.Task == nil {
			return fmt.Errorf("missing task")
		}
		return s.addTask(d.Task)
	case allocator.TaskUpdated:
		if d.Task == nil {
			return fmt.Errorf("missing task")
		}
		k := taskKey{d.Task.FrameworkID, d.Task.ID}
		if _, ok := s.tasks[k]; !ok {
			return fmt.Errorf("unknown task %q of framework %q", d.Task.ID, d.Task.FrameworkID)
		}
		s.removeTask(k)
		return s.addTask(d.Task)
	case allocator.TaskRemoved:
		k := taskKey{d.FrameworkID, d.TaskID}
		if _, ok := s.tasks[k]; !ok {
			return fmt.Errorf("unknown task %q of framework %q", d.TaskID, d.FrameworkID)
		}
		s.removeTask(k)
	case allocator.DemandUpdated:
		if d.Demand == nil {
			return fmt.Errorf("missing demand")
		}
		return s.setDemand(d.Demand)
	default:
		return fmt.Errorf("unknown delta kind %d", int(d.Kind))
	}
	return nil
}

func (s *State) setRole(r allocator.Role) error {
	if r.Name == "" {
		return fmt.Errorf("role with empty name")
	}
	if r.Weight < 0 {
		return fmt.Errorf("role %q: negative weight %v", r.Name, r.Weight)
	}
	// A limit bounds only the resources it names.
	for _, n := range r.Limit.ScalarNames() {
		if r.Guarantee.Scalar(n) > r.Limit.Scalar(n) {
			return fmt.Errorf("role %q: guarantee %s exceeds limit %s", r.Name, r.Guarantee, r.Limit)
		}
	}
	s.roles[r.Name] = r
	return nil
}

func (s *State) addTask(t *allocator.Task) error {
	if t.ID == "" || t.FrameworkID == "" {
		return fmt.Errorf("task with empty ID or framework")
	}
	k := taskKey{t.FrameworkID, t.ID}
	if _, ok := s.tasks[k]; ok {
		return fmt.Errorf("task %q of framework %q already present", t.ID, t.FrameworkID)
	}
	c := *t
	s.tasks[k] = &c
	dk := demandKey{t.FrameworkID, t.Role}
	s.tasksOf[dk] = s.scalars.add(s.tasksOf[dk], t.Resources, 1)
	return nil
}

func (s *State) removeTask(k taskKey) {
	t, ok := s.tasks[k]
	if !ok {
		return
	}
	delete(s.tasks, k)
	delete(s.revoking, k)
	dk := demandKey{t.FrameworkID, t.Role}
	if left := s.scalars.add(s.tasksOf[dk], t.Resources, -1); left.empty() {
		delete(s.tasksOf, dk)
	} else {
		s.tasksOf[dk] = left
	}
}

// markChanged records that an agent's free resources or filters changed.
func (s *State) markChanged(agentID string) {
	if !s.allChanged {
		s.changed[agentID] = struct{}{}
	}
}

// Changes reports the agents whose free resources, filters or activity
// changed since the last ResetChanges, or all=true when something that
// concerns every agent changed (a framework, role, demand, suppress or
// revive, or a fresh Init). A policy that found no taker for an agent's
// free resources can skip it until it shows up here again. NewPlugin
// resets changes after every cycle.
func (s *State) Changes() (agentIDs []string, all bool) {
	if s.allChanged {
		return nil, true
	}
	out := make([]string, 0, len(s.changed))
	for id := range s.changed {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, false
}

// AgentChanged reports whether Changes would list the agent.
func (s *State) AgentChanged(agentID string) bool {
	if s.allChanged {
		return true
	}
	_, ok := s.changed[agentID]
	return ok
}

// ResetChanges forgets the changes reported so far.
func (s *State) ResetChanges() {
	s.allChanged = false
	clear(s.changed)
}

// ClientsGeneration changes whenever frameworks, their roles, suppression,
// demand or role configuration may have changed; policies can cache what
// they derive from those until it does.
func (s *State) ClientsGeneration() uint64 { return s.clientsGen }

func (s *State) setDemand(d *allocator.Demand) error {
	if d.FrameworkID == "" || d.Role == "" {
		return fmt.Errorf("demand with empty framework or role")
	}
	k := demandKey{d.FrameworkID, d.Role}
	if len(d.Shapes) == 0 {
		delete(s.demands, k)
		return nil
	}
	s.demands[k] = slices.Clone(d.Shapes)
	return nil
}

// rolesOrAll returns roles, or all of the framework's roles when empty.
func rolesOrAll(f *allocator.Framework, roles []string) []string {
	if len(roles) == 0 {
		return slices.Clone(f.Roles)
	}
	return roles
}

func normalizeRoles(roles []string) []string {
	roles = slices.Clone(roles)
	slices.Sort(roles)
	return slices.Compact(roles)
}

func (s *State) addAgent(a *allocator.Agent) error {
	if a.ID == "" {
		return fmt.Errorf("agent with empty ID")
	}
	if _, ok := s.agents[a.ID]; ok {
		return fmt.Errorf("agent %q already present", a.ID)
	}
	e := &agentEntry{agent: cloneAgent(a), avail: a.Total}
	if n := len(s.freeSlots); n > 0 {
		e.slot = s.freeSlots[n-1]
		s.freeSlots = s.freeSlots[:n-1]
		s.agentSlots[e.slot] = e
	} else {
		e.slot = int32(len(s.agentSlots))
		s.agentSlots = append(s.agentSlots, e)
	}
	s.agents[a.ID] = e
	s.agentIDs = nil
	s.clusterTotal = s.clusterTotal.Add(a.Total)
	s.markChanged(a.ID)
	return nil
}

func (s *State) removeAgent(id string) {
	e := s.agents[id]
	s.clusterTotal = s.clusterTotal.Subtract(e.agent.Total)
	delete(s.agents, id)
	delete(s.changed, id)
	s.agentIDs = nil
	// The agent's filters go with its entry; its slot is free for reuse.
	s.agentSlots[e.slot] = nil
	s.freeSlots = append(s.freeSlots, e.slot)
	for k, r := range s.allocs {
		if k.agent == id {
			s.unaccount(k, r)
		}
	}
	for k, t := range s.tasks {
		if t.AgentID == id {
			s.removeTask(k)
		}
	}
}

func (s *State) addFramework(f *allocator.Framework) error {
	if f.ID == "" {
		return fmt.Errorf("framework with empty ID")
	}
	if _, ok := s.frameworks[f.ID]; ok {
		return fmt.Errorf("framework %q already present", f.ID)
	}
	s.frameworks[f.ID] = cloneFramework(f)
	return nil
}

// removeFramework drops the framework and whatever the mirror still books to
// it, so that a master that removes a framework without recovering each
// allocation first cannot leave phantom usage behind.
func (s *State) removeFramework(id string) {
	delete(s.frameworks, id)
	for k, r := range s.allocs {
		if k.framework == id {
			s.unaccount(k, r)
		}
	}
	if refs := s.clients.refsOf(id); len(refs) > 0 {
		s.removeFilters(func(e filterEntry) bool { return slices.Contains(refs, e.client) })
	}
	for k := range s.tasks {
		if k.framework == id {
			s.removeTask(k)
		}
	}
	for k := range s.demands {
		if k.framework == id {
			delete(s.demands, k)
		}
	}
	// The framework's filters are gone, the only holders of its
	// ClientRefs; removing it moved the clients generation, which ends
	// the refs policies were given.
	s.clients.release(id)
}

// allocate books a.Resources. Allocations of frameworks the mirror does not
// know are kept: they still occupy the agent.
func (s *State) allocate(a *allocator.Allocation) error {
	e, ok := s.agents[a.AgentID]
	if !ok {
		return fmt.Errorf("allocation on unknown agent %q", a.AgentID)
	}
	if a.Resources.IsEmpty() {
		return nil
	}
	k := allocKey{a.FrameworkID, a.Role, a.AgentID}
	if held, ok := s.allocs[k]; ok {
		s.allocs[k] = held.Add(a.Resources)
	} else {
		// Resources are immutable values: a first allocation is kept as
		// given instead of copied (most of a cycle's are first ones).
		s.allocs[k] = a.Resources
	}
	e.avail = e.avail.Subtract(a.Resources)
	s.account(k, a.Resources, 1)
	return nil
}

func (s *State) recover(a *allocator.Allocation, at allocator.LogicalTime, refuseSeconds float64) error {
	k := allocKey{a.FrameworkID, a.Role, a.AgentID}
	held := s.allocs[k]
	if !held.Contains(a.Resources) {
		return fmt.Errorf("recovering %s from framework %q role %q on agent %q, which holds only %s",
			a.Resources, k.framework, k.role, k.agent, held)
	}
	s.unaccount(k, a.Resources)
	s.markChanged(k.agent)
	if e := s.agents[k.agent]; e != nil && refuseSeconds > 0 && !a.Resources.IsEmpty() {
		s.addFilter(e, k.framework, k.role, a.Resources, at+allocator.LogicalTime(refuseSeconds*1000))
	}
	return nil
}

// unaccount removes r from allocation k and from the aggregates.
func (s *State) unaccount(k allocKey, r resources.Resources) {
	if left := s.allocs[k].Subtract(r); left.IsEmpty() {
		delete(s.allocs, k)
	} else {
		s.allocs[k] = left
	}
	if e, ok := s.agents[k.agent]; ok {
		av := e.avail.Add(r)
		if !e.agent.Total.Contains(av) {
			// Never more than the total, even if a snapshot over-booked it.
			av = av.Intersect(e.agent.Total)
		}
		e.avail = av
	}
	s.account(k, r, -1)
}

// account adds sign × r to the scalar aggregates of allocation k.
func (s *State) account(k allocKey, r resources.Resources, sign int64) {
	// The amounts are looked up once and added to every aggregate.
	d := s.scalars.delta(r, sign)
	s.byRole[k.role] = d.addTo(s.byRole[k.role])
	for _, role := range s.ancestors(k.role) {
		s.byRoleTree[role] = d.addTo(s.byRoleTree[role])
	}
	s.byFramework[k.framework] = d.addTo(s.byFramework[k.framework])
	ck := demandKey{k.framework, k.role}
	if q := d.addTo(s.byClient[ck]); q.empty() {
		delete(s.byClient, ck)
	} else {
		s.byClient[ck] = q
	}
}

// ancestors is resources.RoleAncestors, remembered per role.
func (s *State) ancestors(role string) []string {
	a, ok := s.roleAncestors[role]
	if !ok {
		a = resources.RoleAncestors(role)
		s.roleAncestors[role] = a
	}
	return a
}

// Advance moves the state's clock to now (never backwards) and forgets
// filters that have expired by then.
func (s *State) Advance(now allocator.LogicalTime) {
	if now > s.now {
		s.now = now
	}
	// Only filters whose expiry has come are visited: the cost follows
	// what expires, not how many filters exist.
	for _, x := range s.filterQueue.popDue(s.now) {
		if int(x.slot) >= len(s.agentSlots) {
			continue
		}
		e := s.agentSlots[x.slot]
		if e == nil || len(e.filters.of(x.client)) == 0 {
			continue // the agent is gone, or the filters revived or forgotten
		}
		now := s.now
		if e.filters.removeWhere(func(f filterEntry) bool { return f.client == x.client && f.expires <= now }) {
			s.markChanged(e.agent.ID)
		}
	}
}

// Version is the version of the last applied delta or snapshot.
func (s *State) Version() uint64 { return s.version }

// Now is the latest logical time the state has seen.
func (s *State) Now() allocator.LogicalTime { return s.now }

// AgentIDs returns the IDs of all agents, active or not, sorted.
func (s *State) AgentIDs() []string { return slices.Clone(s.AgentIDsView()) }

// AgentIDsView is AgentIDs without the copy, for policies that visit every
// agent every cycle (at 50k agents the copy was 800 KB of garbage a cycle).
// The slice is shared until agents are next added or removed: callers must
// not modify it, nor keep it past the cycle.
func (s *State) AgentIDsView() []string {
	if s.agentIDs == nil {
		s.agentIDs = make([]string, 0, len(s.agents))
		for id := range s.agents {
			s.agentIDs = append(s.agentIDs, id)
		}
		sort.Strings(s.agentIDs)
	}
	return s.agentIDs
}

// Agents returns copies of all agents sorted by ID.
func (s *State) Agents() []allocator.Agent {
	out := make([]allocator.Agent, 0, len(s.agents))
	for _, id := range s.AgentIDsView() {
		out = append(out, *cloneAgent(s.agents[id].agent))
	}
	return out
}

// Agent returns a copy of one agent.
func (s *State) Agent(id string) (allocator.Agent, bool) {
	e, ok := s.agents[id]
	if !ok {
		return allocator.Agent{}, false
	}
	return *cloneAgent(e.agent), true
}

// AgentActive reports whether the agent is known and active.
func (s *State) AgentActive(id string) bool {
	e, ok := s.agents[id]
	return ok && e.agent.Active
}

// Available is what is left on an agent: its total minus every allocation
// (tasks and outstanding offers) the master has booked there.
func (s *State) Available(agentID string) resources.Resources {
	if e, ok := s.agents[agentID]; ok {
		return e.avail
	}
	return resources.Resources{}
}

// ClusterTotal is the sum of all agents' totals, active or not (as in
// Mesos' sorters, a deactivated agent still counts toward the pool).
func (s *State) ClusterTotal() resources.Resources { return s.clusterTotal }

// Frameworks returns copies of all frameworks sorted by ID.
func (s *State) Frameworks() []allocator.Framework {
	ids := make([]string, 0, len(s.frameworks))
	for id := range s.frameworks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]allocator.Framework, 0, len(ids))
	for _, id := range ids {
		out = append(out, *cloneFramework(s.frameworks[id]))
	}
	return out
}

// FrameworkIDs returns the IDs of all frameworks, sorted. The slice is
// shared until frameworks or roles next change: callers must not modify it.
func (s *State) FrameworkIDs() []string {
	s.refreshLists()
	return s.frameworkIDs
}

// RoleNames returns the names Roles would return, sorted, without copying
// each role's configuration. The slice is shared until frameworks or roles
// next change: callers must not modify it.
func (s *State) RoleNames() []string {
	s.refreshLists()
	return s.roleNames
}

// FrameworkView returns the framework itself rather than a copy (nil when
// unknown), for policies that read every framework every cycle. Callers
// must not modify it, nor keep it past the cycle.
func (s *State) FrameworkView(id string) *allocator.Framework { return s.frameworks[id] }

// refreshLists rebuilds the sorted framework IDs and role names when the
// clients generation moved (every framework, role and Init change moves it).
func (s *State) refreshLists() {
	if s.listsGen == s.clientsGen && s.frameworkIDs != nil {
		return
	}
	s.listsGen = s.clientsGen
	s.frameworkIDs = make([]string, 0, len(s.frameworks))
	names := make(map[string]bool, len(s.roles))
	for id, f := range s.frameworks {
		s.frameworkIDs = append(s.frameworkIDs, id)
		for _, r := range f.Roles {
			names[r] = true
		}
	}
	for n := range s.roles {
		names[n] = true
	}
	slices.Sort(s.frameworkIDs)
	s.roleNames = make([]string, 0, len(names))
	for n := range names {
		s.roleNames = append(s.roleNames, n)
	}
	slices.Sort(s.roleNames)
}

// Framework returns a copy of one framework.
func (s *State) Framework(id string) (allocator.Framework, bool) {
	f, ok := s.frameworks[id]
	if !ok {
		return allocator.Framework{}, false
	}
	return *cloneFramework(f), true
}

// Suppressed reports whether the framework suppressed offers for role.
func (s *State) Suppressed(frameworkID, role string) bool {
	f, ok := s.frameworks[frameworkID]
	return ok && slices.Contains(f.SuppressedRoles, role)
}

// Roles returns every role that has a configuration entry or a subscribed
// framework, sorted by name, with its configuration as given (weight 0
// means 1).
func (s *State) Roles() []allocator.Role {
	names := map[string]bool{}
	for n := range s.roles {
		names[n] = true
	}
	for _, f := range s.frameworks {
		for _, r := range f.Roles {
			names[r] = true
		}
	}
	out := make([]allocator.Role, 0, len(names))
	for n := range names {
		r := s.roles[n]
		r.Name = n
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Weight returns the role's effective weight: 1 when unset or 0.
func (s *State) Weight(role string) float64 {
	if w := s.roles[role].Weight; w > 0 {
		return w
	}
	return 1
}

// Role returns the role's configuration; a role without an entry has
// weight 0 (meaning 1), priority 0 and no quota.
func (s *State) Role(name string) allocator.Role {
	r := s.roles[name]
	r.Name = name
	return r
}

// Tasks returns copies of all running tasks sorted by start time, then
// framework and task ID.
func (s *State) Tasks() []allocator.Task {
	out := make([]allocator.Task, 0, len(s.tasks))
	for _, t := range s.tasks {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.StartedAt != b.StartedAt {
			return a.StartedAt < b.StartedAt
		}
		if a.FrameworkID != b.FrameworkID {
			return a.FrameworkID < b.FrameworkID
		}
		return a.ID < b.ID
	})
	return out
}

// Task returns a copy of one task.
func (s *State) Task(frameworkID, taskID string) (allocator.Task, bool) {
	t, ok := s.tasks[taskKey{frameworkID, taskID}]
	if !ok {
		return allocator.Task{}, false
	}
	return *t, true
}

// Demand returns the task shapes the framework declared under role (nil
// when it declared none).
func (s *State) Demand(frameworkID, role string) []allocator.TaskShape {
	return slices.Clone(s.demands[demandKey{frameworkID, role}])
}

// Demands returns every declared demand sorted by framework and role.
func (s *State) Demands() []allocator.Demand {
	out := make([]allocator.Demand, 0, len(s.demands))
	for k, shapes := range s.demands {
		out = append(out, allocator.Demand{FrameworkID: k.framework, Role: k.role, Shapes: slices.Clone(shapes)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FrameworkID != out[j].FrameworkID {
			return out[i].FrameworkID < out[j].FrameworkID
		}
		return out[i].Role < out[j].Role
	})
	return out
}

// Allocation returns what a framework holds under role on an agent.
func (s *State) Allocation(frameworkID, role, agentID string) resources.Resources {
	return s.allocs[allocKey{frameworkID, role, agentID}]
}

// Allocations returns all non-empty allocations sorted by framework, role
// and agent.
func (s *State) Allocations() []allocator.Allocation {
	out := make([]allocator.Allocation, 0, len(s.allocs))
	for k, r := range s.allocs {
		out = append(out, allocator.Allocation{FrameworkID: k.framework, Role: k.role, AgentID: k.agent, Resources: r})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.FrameworkID != b.FrameworkID {
			return a.FrameworkID < b.FrameworkID
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.AgentID < b.AgentID
	})
	return out
}

// AgentAllocated is the sum of all allocations on an agent.
func (s *State) AgentAllocated(agentID string) resources.Resources {
	var sum resources.Resources
	for k, r := range s.allocs {
		if k.agent == agentID {
			sum = sum.Add(r)
		}
	}
	return sum
}

// RoleAllocated is the sum of a role's allocations across the cluster.
// Like every per-role, per-framework and per-client aggregate it holds
// scalars only (ranges and sets do not count toward shares or quota).
func (s *State) RoleAllocated(role string) resources.Resources {
	return s.scalars.resources(s.byRole[role])
}

// RoleTreeAllocated is the sum of the allocations of a role and all its
// descendants ("eng" counts "eng/ml"): what hierarchical shares and quota
// are measured on.
func (s *State) RoleTreeAllocated(role string) resources.Resources {
	return s.scalars.resources(s.byRoleTree[role])
}

// ClientAllocated is what a framework holds under one role.
func (s *State) ClientAllocated(frameworkID, role string) resources.Resources {
	return s.scalars.resources(s.byClient[demandKey{frameworkID, role}])
}

// ClientTasks is the sum of the running tasks of a framework under one role.
// ClientAllocated minus this is what its outstanding offers hold.
func (s *State) ClientTasks(frameworkID, role string) resources.Resources {
	return s.scalars.resources(s.tasksOf[demandKey{frameworkID, role}])
}

// FrameworkAllocated is the sum of a framework's allocations across roles
// and agents.
func (s *State) FrameworkAllocated(frameworkID string) resources.Resources {
	return s.scalars.resources(s.byFramework[frameworkID])
}

// Filters returns the filters active at now (now < ExpiresAt), sorted by
// framework, role, agent and expiry. Redundant filters are not kept (see
// CompactFilters): a decline of resources that an existing filter already
// refuses for at least as long adds nothing, and a filter that refuses
// more for longer replaces those it covers.
func (s *State) Filters(now allocator.LogicalTime) []allocator.Filter {
	var out []allocator.Filter
	for id, e := range s.agents {
		for _, f := range e.filters.entries {
			if now < f.expires {
				c := s.clients.keys[f.client]
				out = append(out, allocator.Filter{FrameworkID: c.framework, Role: c.role, AgentID: id,
					Resources: e.filters.res[f.res].r, ExpiresAt: f.expires})
			}
		}
	}
	sortFilters(out)
	return out
}

func sortFilters(out []allocator.Filter) {
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.FrameworkID != b.FrameworkID {
			return a.FrameworkID < b.FrameworkID
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		if a.AgentID != b.AgentID {
			return a.AgentID < b.AgentID
		}
		if a.ExpiresAt != b.ExpiresAt {
			return a.ExpiresAt < b.ExpiresAt
		}
		return a.Resources.String() < b.Resources.String()
	})
}

// Filtered reports whether an active filter keeps offered from going to the
// framework under role on the agent at now. As in Mesos, a filter applies
// when the declined resources contain everything that would be offered, so
// an agent that gained resources since the decline is offered again.
func (s *State) Filtered(frameworkID, role, agentID string, offered resources.Resources, now allocator.LogicalTime) bool {
	return s.AgentFilters(agentID).FilteredBy(frameworkID, role, offered, now)
}

// AgentFilters is the decline filters on one agent, for a policy that
// checks many frameworks against the same agent (see FilteredBy and
// FilteredRef).
type AgentFilters struct {
	f       *agentFilters // nil: unknown agent
	clients *clientInterner
}

// AgentFilters returns the filters on an agent.
func (s *State) AgentFilters(agentID string) AgentFilters {
	var f *agentFilters
	if e := s.agents[agentID]; e != nil {
		f = &e.filters
	}
	return AgentFilters{f: f, clients: &s.clients}
}

// FilteredBy is Filtered for the agent f was taken from.
func (f AgentFilters) FilteredBy(frameworkID, role string, offered resources.Resources, now allocator.LogicalTime) bool {
	if f.f == nil || len(f.f.entries) == 0 {
		return false
	}
	ref, ok := f.clients.lookup(frameworkID, role)
	return ok && f.f.filtered(ref, offered, now)
}

// FilteredRef is FilteredBy for the client ref names (see
// State.ClientRef): an integer lookup instead of hashing two strings,
// for a policy that checks many clients on many agents each cycle.
func (f AgentFilters) FilteredRef(ref ClientRef, offered resources.Resources, now allocator.LogicalTime) bool {
	return f.f != nil && f.f.filtered(ref, offered, now)
}

// RoleShare is the role's weighted dominant share: the largest fraction of
// the cluster total of any scalar resource (other than those in exclude)
// that the role holds, divided by its weight.
func (s *State) RoleShare(role string, exclude ...string) float64 {
	return DominantShare(s.RoleAllocated(role), s.clusterTotal, exclude...) / s.Weight(role)
}

// FrameworkShare is the framework's dominant share across all its roles.
func (s *State) FrameworkShare(frameworkID string, exclude ...string) float64 {
	return DominantShare(s.FrameworkAllocated(frameworkID), s.clusterTotal, exclude...)
}

func cloneAgent(a *allocator.Agent) *allocator.Agent {
	c := *a
	if a.Attributes != nil {
		c.Attributes = make(map[string]string, len(a.Attributes))
		for k, v := range a.Attributes {
			c.Attributes[k] = v
		}
	}
	return &c
}

func cloneFramework(f *allocator.Framework) *allocator.Framework {
	c := *f
	c.Roles = slices.Clone(f.Roles)
	c.SuppressedRoles = normalizeRoles(f.SuppressedRoles)
	c.Capabilities = slices.Clone(f.Capabilities)
	if f.MinAllocatable != nil {
		c.MinAllocatable = make(map[string][]resources.Resources, len(f.MinAllocatable))
		for r, alts := range f.MinAllocatable {
			c.MinAllocatable[r] = slices.Clone(alts)
		}
	}
	return &c
}
