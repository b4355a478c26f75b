package allocatortest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// DefaultRevokeGrace is the master's default grace between a revocation and
// the kill (30 s), in logical ms.
const DefaultRevokeGrace allocator.LogicalTime = 30_000

// Sim plays the master's side of the allocator contract against one
// plugin, in logical time. It keeps the master's books (agents, frameworks,
// roles, outstanding offers, tasks, filters, demands), turns every change
// into a numbered delta, and sends them with one Allocate call per cycle.
// Proposals are validated as the master validates them before they become
// offers; revocations are applied as the master applies them.
//
// The plugin only ever sees what a real master would send it, so a policy
// that passes its tests against the Sim behaves the same behind the core.
// A Sim is not safe for concurrent use.
type Sim struct {
	// MaxOffers is sent with every Allocate request (0: no limit). The Sim
	// rejects proposals beyond it.
	MaxOffers int
	// RevokeAfter is the operator's revoke_after, sent with every request
	// (0: long-task revocation is off).
	RevokeAfter allocator.LogicalTime
	// RevokeGrace is how long, in logical ms, a revoked task keeps running
	// before the Sim kills it. NewSim sets DefaultRevokeGrace.
	RevokeGrace allocator.LogicalTime

	plugin  allocator.Allocator
	inited  bool   // the plugin holds version
	version uint64 // last version the plugin acknowledged
	pending []allocator.Delta
	now     allocator.LogicalTime
	metrics map[string]float64
	reinits int

	agents     map[string]*agentEntry
	frameworks map[string]*allocator.Framework
	roles      map[string]allocator.Role // configured roles only
	offers     []allocator.Proposal      // outstanding, oldest first
	tasks      map[taskKey]*taskEntry
	filters    []allocator.Filter
	demands    map[demandKey][]allocator.TaskShape
	nextTask   int    // for generated task IDs
	launches   uint64 // tasks launched so far; orders launches within a cycle
}

type agentEntry struct {
	allocator.Agent
	used resources.Resources // outstanding offers plus tasks
}

type taskKey struct{ framework, task string }

type demandKey struct{ framework, role string }

type taskEntry struct {
	allocator.Task
	seq uint64 // launch order
	// revoked is set once the Sim accepted a revocation of the task; it is
	// killed at killAt.
	revoked bool
	killAt  allocator.LogicalTime
	reason  string
}

// NewSim returns a Sim with an empty cluster at logical time 0 driving p.
// The plugin is Init'ed from a snapshot of the Sim's books at the first
// Allocate, so that Configure and the cluster set-up come first, as on a
// master that starts a plugin.
func NewSim(p allocator.Allocator) *Sim {
	return &Sim{
		RevokeGrace: DefaultRevokeGrace,
		plugin:      p,
		agents:      map[string]*agentEntry{},
		frameworks:  map[string]*allocator.Framework{},
		roles:       map[string]allocator.Role{},
		tasks:       map[taskKey]*taskEntry{},
		demands:     map[demandKey][]allocator.TaskShape{},
	}
}

// Plugin returns the plugin under test.
func (s *Sim) Plugin() allocator.Allocator { return s.plugin }

// Configure sends the plugin a config JSON object, as the master does when
// the operator (re)configures it.
func (s *Sim) Configure(configJSON string) error {
	if strings.TrimSpace(configJSON) == "" {
		configJSON = "{}"
	}
	if err := s.plugin.SetConfig(context.Background(), []byte(configJSON), allocator.APIVersions[0]); err != nil {
		return fmt.Errorf("SetConfig(%s): %w", configJSON, err)
	}
	return nil
}

// Now is the Sim's logical clock.
func (s *Sim) Now() allocator.LogicalTime { return s.now }

// Reinits counts the Init calls the Sim made after the first: explicit
// Reinit calls and recoveries from version gaps or failed calls.
func (s *Sim) Reinits() int { return max(s.reinits-1, 0) }

// delta numbers d and queues it for the next Allocate.
func (s *Sim) delta(d allocator.Delta) {
	d.Version = s.version + uint64(len(s.pending)) + 1
	d.At = s.now
	s.pending = append(s.pending, d)
}

// PendingDeltas returns the deltas queued for the next Allocate.
func (s *Sim) PendingDeltas() []allocator.Delta { return slices.Clone(s.pending) }

// Advance moves the clock to now, forgets expired filters and kills the
// revoked tasks whose grace has run out by then (TaskRemoved and Recovered,
// as the master does after killing a task with reason PREEMPTED). It
// returns the revocations carried out.
func (s *Sim) Advance(now allocator.LogicalTime) ([]allocator.Revocation, error) {
	if now < s.now {
		return nil, fmt.Errorf("time goes backwards: %d after %d", now, s.now)
	}
	s.now = now
	s.filters = slices.DeleteFunc(s.filters, func(f allocator.Filter) bool { return f.ExpiresAt <= now })
	var due []*taskEntry
	for _, t := range s.tasks {
		if t.revoked && t.killAt <= now {
			due = append(due, t)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].killAt != due[j].killAt {
			return due[i].killAt < due[j].killAt
		}
		return taskLess(&due[i].Task, &due[j].Task)
	})
	var killed []allocator.Revocation
	for _, t := range due {
		killed = append(killed, allocator.Revocation{FrameworkID: t.FrameworkID, TaskID: t.ID, AgentID: t.AgentID, Reason: t.reason})
		s.endTask(t)
	}
	if len(due) > 0 {
		s.markGuarantees()
	}
	return killed, nil
}

// AddAgent registers an agent. An empty Hostname defaults to the ID.
func (s *Sim) AddAgent(a allocator.Agent) error {
	if a.ID == "" {
		return fmt.Errorf("agent with empty ID")
	}
	if _, ok := s.agents[a.ID]; ok {
		return fmt.Errorf("agent %s is already registered", a.ID)
	}
	if a.Hostname == "" {
		a.Hostname = a.ID
	}
	s.agents[a.ID] = &agentEntry{Agent: cloneAgent(a)}
	d := cloneAgent(a)
	s.delta(allocator.Delta{Kind: allocator.AgentAdded, Agent: &d})
	return nil
}

// UpdateAgent replaces an agent's facts. An agent that becomes inactive
// (disconnected), or that shrinks below what is offered, has its
// outstanding offers rescinded first, as the master does; its tasks keep
// running. The new total must still hold what the agent's tasks use.
func (s *Sim) UpdateAgent(a allocator.Agent) error {
	old, ok := s.agents[a.ID]
	if !ok {
		return fmt.Errorf("unknown agent %s", a.ID)
	}
	if a.Hostname == "" {
		a.Hostname = old.Hostname
	}
	var taskUse resources.Resources
	for _, t := range s.tasks {
		if t.AgentID == a.ID {
			taskUse = taskUse.Add(t.Resources)
		}
	}
	if !a.Total.Contains(taskUse) {
		return fmt.Errorf("agent %s: new total %s does not hold the %s its tasks use", a.ID, a.Total, taskUse)
	}
	if !a.Active || !a.Total.Contains(old.used) {
		s.rescind(func(o allocator.Proposal) bool { return o.AgentID == a.ID })
	}
	old.Agent = cloneAgent(a)
	d := cloneAgent(a)
	s.delta(allocator.Delta{Kind: allocator.AgentUpdated, Agent: &d})
	return nil
}

// RemoveAgent forgets an agent: its offers are rescinded, its tasks are
// lost (TaskRemoved and Recovered each), then AgentRemoved.
func (s *Sim) RemoveAgent(id string) error {
	if _, ok := s.agents[id]; !ok {
		return fmt.Errorf("unknown agent %s", id)
	}
	s.rescind(func(o allocator.Proposal) bool { return o.AgentID == id })
	for _, t := range s.sortedTasks() {
		if t.AgentID == id {
			s.endTask(t)
		}
	}
	s.filters = slices.DeleteFunc(s.filters, func(f allocator.Filter) bool { return f.AgentID == id })
	delete(s.agents, id)
	s.delta(allocator.Delta{Kind: allocator.AgentRemoved, AgentID: id})
	s.markGuarantees()
	return nil
}

// AddFramework subscribes a framework.
func (s *Sim) AddFramework(f allocator.Framework) error {
	if f.ID == "" {
		return fmt.Errorf("framework with empty ID")
	}
	if _, ok := s.frameworks[f.ID]; ok {
		return fmt.Errorf("framework %s is already subscribed", f.ID)
	}
	if err := checkFrameworkRoles(f); err != nil {
		return err
	}
	c := cloneFramework(f)
	s.frameworks[f.ID] = &c
	d := cloneFramework(f)
	s.delta(allocator.Delta{Kind: allocator.FrameworkAdded, Framework: &d})
	return nil
}

// UpdateFramework replaces a framework's facts (re-subscription, or
// activation when Active changes). As on the master, a framework that
// becomes inactive loses its outstanding offers, and offers and demand
// under roles it no longer subscribes to are withdrawn; tasks keep running.
func (s *Sim) UpdateFramework(f allocator.Framework) error {
	old, ok := s.frameworks[f.ID]
	if !ok {
		return fmt.Errorf("unknown framework %s", f.ID)
	}
	if err := checkFrameworkRoles(f); err != nil {
		return err
	}
	s.rescind(func(o allocator.Proposal) bool {
		return o.FrameworkID == f.ID && (!f.Active || !slices.Contains(f.Roles, o.Role))
	})
	for _, r := range old.Roles {
		if !slices.Contains(f.Roles, r) {
			s.dropDemand(f.ID, r)
		}
	}
	c := cloneFramework(f)
	s.frameworks[f.ID] = &c
	d := cloneFramework(f)
	s.delta(allocator.Delta{Kind: allocator.FrameworkUpdated, Framework: &d})
	return nil
}

// SetFrameworkActive activates or deactivates a framework, keeping its
// other facts (see UpdateFramework).
func (s *Sim) SetFrameworkActive(id string, active bool) error {
	f, ok := s.frameworks[id]
	if !ok {
		return fmt.Errorf("unknown framework %s", id)
	}
	c := cloneFramework(*f)
	c.Active = active
	return s.UpdateFramework(c)
}

// RemoveFramework tears a framework down: its offers are withdrawn, its
// tasks killed (TaskRemoved and Recovered each), then FrameworkRemoved.
func (s *Sim) RemoveFramework(id string) error {
	if _, ok := s.frameworks[id]; !ok {
		return fmt.Errorf("unknown framework %s", id)
	}
	s.rescind(func(o allocator.Proposal) bool { return o.FrameworkID == id })
	for _, t := range s.sortedTasks() {
		if t.FrameworkID == id {
			s.endTask(t)
		}
	}
	s.filters = slices.DeleteFunc(s.filters, func(f allocator.Filter) bool { return f.FrameworkID == id })
	for k := range s.demands {
		if k.framework == id {
			delete(s.demands, k)
		}
	}
	delete(s.frameworks, id)
	s.delta(allocator.Delta{Kind: allocator.FrameworkRemoved, FrameworkID: id})
	s.markGuarantees()
	return nil
}

func checkFrameworkRoles(f allocator.Framework) error {
	if len(f.Roles) == 0 {
		return fmt.Errorf("framework %s subscribes to no role", f.ID)
	}
	for _, r := range f.Roles {
		if err := resources.ValidateRole(r); err != nil {
			return fmt.Errorf("framework %s: %w", f.ID, err)
		}
	}
	for _, r := range f.SuppressedRoles {
		if !slices.Contains(f.Roles, r) {
			return fmt.Errorf("framework %s: suppressed role %q is not one of its roles %v", f.ID, r, f.Roles)
		}
	}
	return nil
}

// Role returns a role's configuration (zero values when not configured).
func (s *Sim) Role(name string) allocator.Role {
	r := s.roles[name]
	r.Name = name
	return r
}

// SetRole configures a role (weight, priority, guarantee, limit), as the
// operator does at run time. Tasks whose WithinGuarantee changes as a
// result get a TaskUpdated delta.
func (s *Sim) SetRole(r allocator.Role) error {
	if err := resources.ValidateRole(r.Name); err != nil {
		return err
	}
	if r.Weight < 0 {
		return fmt.Errorf("role %s: negative weight %v", r.Name, r.Weight)
	}
	// A limit bounds only the resources it names.
	for _, n := range r.Limit.ScalarNames() {
		if r.Guarantee.Scalar(n) > r.Limit.Scalar(n) {
			return fmt.Errorf("role %s: guarantee %s exceeds limit %s", r.Name, r.Guarantee, r.Limit)
		}
	}
	s.roles[r.Name] = r
	d := r
	s.delta(allocator.Delta{Kind: allocator.RoleUpdated, Role: &d})
	s.markGuarantees()
	return nil
}

// Suppress stops offers to the framework under roles (none: all its
// roles) and drops its demand there. Outstanding offers stay valid, as in
// Mesos.
func (s *Sim) Suppress(frameworkID string, roles ...string) error {
	f, roles, err := s.frameworkRoles(frameworkID, roles)
	if err != nil {
		return err
	}
	f.SuppressedRoles = normalizeRoles(append(f.SuppressedRoles, roles...))
	for _, r := range roles {
		delete(s.demands, demandKey{frameworkID, r}) // the Suppressed delta drops it in the plugin
	}
	s.delta(allocator.Delta{Kind: allocator.Suppressed, FrameworkID: frameworkID, Roles: slices.Clone(roles)})
	return nil
}

// Revive resumes offers to the framework under roles (none: all its roles)
// and clears its filters there on every agent.
func (s *Sim) Revive(frameworkID string, roles ...string) error {
	f, roles, err := s.frameworkRoles(frameworkID, roles)
	if err != nil {
		return err
	}
	f.SuppressedRoles = slices.DeleteFunc(f.SuppressedRoles, func(r string) bool { return slices.Contains(roles, r) })
	s.filters = slices.DeleteFunc(s.filters, func(fl allocator.Filter) bool {
		return fl.FrameworkID == frameworkID && slices.Contains(roles, fl.Role)
	})
	s.delta(allocator.Delta{Kind: allocator.Revived, FrameworkID: frameworkID, Roles: slices.Clone(roles)})
	return nil
}

// frameworkRoles resolves a suppress or revive target: roles must be the
// framework's; none means all of them.
func (s *Sim) frameworkRoles(id string, roles []string) (*allocator.Framework, []string, error) {
	f, ok := s.frameworks[id]
	if !ok {
		return nil, nil, fmt.Errorf("unknown framework %s", id)
	}
	for _, r := range roles {
		if !slices.Contains(f.Roles, r) {
			return nil, nil, fmt.Errorf("role %q is not one of framework %s's roles %v", r, id, f.Roles)
		}
	}
	if len(roles) == 0 {
		roles = slices.Clone(f.Roles)
	}
	return f, roles, nil
}

// Demand replaces what the framework declared it still wants to launch
// under role; no shapes withdraws the declaration. As on the master, a
// suppressed role cannot declare demand.
func (s *Sim) Demand(frameworkID, role string, shapes ...allocator.TaskShape) error {
	f, ok := s.frameworks[frameworkID]
	if !ok {
		return fmt.Errorf("unknown framework %s", frameworkID)
	}
	if !slices.Contains(f.Roles, role) {
		return fmt.Errorf("role %q is not one of framework %s's roles %v", role, frameworkID, f.Roles)
	}
	for _, sh := range shapes {
		if sh.Count <= 0 || sh.Resources.IsEmpty() {
			return fmt.Errorf("demand of framework %s: task shape %s is empty", frameworkID, formatShape(sh))
		}
	}
	if len(shapes) == 0 {
		s.dropDemand(frameworkID, role)
		return nil
	}
	if slices.Contains(f.SuppressedRoles, role) {
		return fmt.Errorf("framework %s suppressed role %s; revive it before declaring demand", frameworkID, role)
	}
	s.demands[demandKey{frameworkID, role}] = slices.Clone(shapes)
	s.delta(allocator.Delta{Kind: allocator.DemandUpdated, Demand: &allocator.Demand{
		FrameworkID: frameworkID, Role: role, Shapes: slices.Clone(shapes)}})
	return nil
}

// dropDemand withdraws a declared demand, if any.
func (s *Sim) dropDemand(frameworkID, role string) {
	k := demandKey{frameworkID, role}
	if _, ok := s.demands[k]; !ok {
		return
	}
	delete(s.demands, k)
	s.delta(allocator.Delta{Kind: allocator.DemandUpdated, Demand: &allocator.Demand{FrameworkID: frameworkID, Role: role}})
}

// recovered returns resources to the pool and tells the plugin, with a
// filter when refuseSeconds > 0.
func (s *Sim) recovered(frameworkID, role, agentID string, r resources.Resources, refuseSeconds float64) {
	if r.IsEmpty() {
		return
	}
	if a := s.agents[agentID]; a != nil {
		a.used = a.used.Subtract(r)
	}
	if refuseSeconds > 0 {
		s.filters = append(s.filters, allocator.Filter{
			FrameworkID: frameworkID, Role: role, AgentID: agentID, Resources: r,
			ExpiresAt: s.now + allocator.LogicalTime(refuseSeconds*1000),
		})
	}
	s.delta(allocator.Delta{Kind: allocator.Recovered, RefuseSeconds: refuseSeconds, Allocation: &allocator.Allocation{
		FrameworkID: frameworkID, Role: role, AgentID: agentID, Resources: r}})
}

// rescind withdraws the outstanding offers that match, without filters.
func (s *Sim) rescind(match func(allocator.Proposal) bool) { s.rescindWith(match, 0) }

// endTask removes a task and recovers its resources (no guarantee update:
// callers mark guarantees once they are done).
func (s *Sim) endTask(t *taskEntry) {
	delete(s.tasks, taskKey{t.FrameworkID, t.ID})
	s.delta(allocator.Delta{Kind: allocator.TaskRemoved, FrameworkID: t.FrameworkID, TaskID: t.ID})
	s.recovered(t.FrameworkID, t.Role, t.AgentID, t.Resources, 0)
}

// Agents returns the registered agents sorted by ID.
func (s *Sim) Agents() []allocator.Agent {
	out := make([]allocator.Agent, 0, len(s.agents))
	for _, id := range sortedKeys(s.agents) {
		out = append(out, cloneAgent(s.agents[id].Agent))
	}
	return out
}

// Agent returns one agent.
func (s *Sim) Agent(id string) (allocator.Agent, bool) {
	a, ok := s.agents[id]
	if !ok {
		return allocator.Agent{}, false
	}
	return cloneAgent(a.Agent), true
}

// Free is what an agent has that is neither offered nor used by tasks.
func (s *Sim) Free(agentID string) resources.Resources {
	a, ok := s.agents[agentID]
	if !ok {
		return resources.Resources{}
	}
	return a.Total.Subtract(a.used)
}

// ClusterTotal sums every agent's total, active or not (as shares count it).
func (s *Sim) ClusterTotal() resources.Resources {
	var out resources.Resources
	for _, a := range s.agents {
		out = out.Add(a.Total)
	}
	return out
}

// Frameworks returns the subscribed frameworks sorted by ID.
func (s *Sim) Frameworks() []allocator.Framework {
	out := make([]allocator.Framework, 0, len(s.frameworks))
	for _, id := range sortedKeys(s.frameworks) {
		out = append(out, cloneFramework(*s.frameworks[id]))
	}
	return out
}

// Framework returns one framework.
func (s *Sim) Framework(id string) (allocator.Framework, bool) {
	f, ok := s.frameworks[id]
	if !ok {
		return allocator.Framework{}, false
	}
	return cloneFramework(*f), true
}

// Offers returns the outstanding offers, oldest first.
func (s *Sim) Offers() []allocator.Proposal { return slices.Clone(s.offers) }

// Tasks returns the running tasks in guarantee order: start time, then
// framework and task ID.
func (s *Sim) Tasks() []allocator.Task {
	var out []allocator.Task
	for _, t := range s.sortedTasks() {
		out = append(out, t.Task)
	}
	return out
}

// Task returns one running task.
func (s *Sim) Task(frameworkID, taskID string) (allocator.Task, bool) {
	t, ok := s.tasks[taskKey{frameworkID, taskID}]
	if !ok {
		return allocator.Task{}, false
	}
	return t.Task, true
}

// Revoked returns the revocations the Sim accepted whose task is still
// running, with the logical time of the kill.
func (s *Sim) Revoked() []Revoked {
	var out []Revoked
	for _, t := range s.sortedTasks() {
		if t.revoked {
			out = append(out, Revoked{
				Revocation: allocator.Revocation{FrameworkID: t.FrameworkID, TaskID: t.ID, AgentID: t.AgentID, Reason: t.reason},
				KillAt:     t.killAt,
			})
		}
	}
	return out
}

// Revoked is an accepted revocation waiting for its grace to run out.
type Revoked struct {
	allocator.Revocation
	KillAt allocator.LogicalTime
}

// FrameworkTasks sums what the framework's running tasks hold.
func (s *Sim) FrameworkTasks(frameworkID string) resources.Resources {
	var out resources.Resources
	for _, t := range s.tasks {
		if t.FrameworkID == frameworkID {
			out = out.Add(t.Resources)
		}
	}
	return out
}

// RoleTreeUsage sums the outstanding offers and tasks of a role and of
// every role below it: what a quota limit on the role bounds.
func (s *Sim) RoleTreeUsage(role string) resources.Resources {
	var out resources.Resources
	for _, o := range s.offers {
		if inSubtree(o.Role, role) {
			out = out.Add(o.Resources)
		}
	}
	for _, t := range s.tasks {
		if inSubtree(t.Role, role) {
			out = out.Add(t.Resources)
		}
	}
	return out
}

// inSubtree reports whether role is root or below it.
func inSubtree(role, root string) bool {
	return role == root || strings.HasPrefix(role, root+"/")
}

// Filters returns the decline filters active now, oldest first.
func (s *Sim) Filters() []allocator.Filter {
	var out []allocator.Filter
	for _, f := range s.filters {
		if s.now < f.ExpiresAt {
			out = append(out, f)
		}
	}
	return out
}

// Demands returns the declared demands sorted by framework and role.
func (s *Sim) Demands() []allocator.Demand {
	keys := make([]demandKey, 0, len(s.demands))
	for k := range s.demands {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].framework != keys[j].framework {
			return keys[i].framework < keys[j].framework
		}
		return keys[i].role < keys[j].role
	})
	out := make([]allocator.Demand, 0, len(keys))
	for _, k := range keys {
		out = append(out, allocator.Demand{FrameworkID: k.framework, Role: k.role, Shapes: slices.Clone(s.demands[k])})
	}
	return out
}

// Metrics returns the metrics of the last successful Allocate response.
func (s *Sim) Metrics() map[string]float64 {
	out := make(map[string]float64, len(s.metrics))
	for k, v := range s.metrics {
		out[k] = v
	}
	return out
}

func (s *Sim) sortedTasks() []*taskEntry {
	out := make([]*taskEntry, 0, len(s.tasks))
	for _, t := range s.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return taskLess(&out[i].Task, &out[j].Task) })
	return out
}

// taskLess is guarantee order: start time, then framework and task ID.
func taskLess(a, b *allocator.Task) bool {
	if a.StartedAt != b.StartedAt {
		return a.StartedAt < b.StartedAt
	}
	if a.FrameworkID != b.FrameworkID {
		return a.FrameworkID < b.FrameworkID
	}
	return a.ID < b.ID
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func normalizeRoles(roles []string) []string {
	roles = slices.Clone(roles)
	slices.Sort(roles)
	return slices.Compact(roles)
}

func cloneAgent(a allocator.Agent) allocator.Agent {
	if a.Attributes != nil {
		attrs := make(map[string]string, len(a.Attributes))
		for k, v := range a.Attributes {
			attrs[k] = v
		}
		a.Attributes = attrs
	}
	return a
}

func cloneFramework(f allocator.Framework) allocator.Framework {
	f.Roles = slices.Clone(f.Roles)
	f.SuppressedRoles = normalizeRoles(f.SuppressedRoles)
	f.Capabilities = slices.Clone(f.Capabilities)
	if f.MinAllocatable != nil {
		m := make(map[string][]resources.Resources, len(f.MinAllocatable))
		for r, alts := range f.MinAllocatable {
			m[r] = slices.Clone(alts)
		}
		f.MinAllocatable = m
	}
	return f
}
