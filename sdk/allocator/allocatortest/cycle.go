package allocatortest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Cycle is what one Allocate call did.
type Cycle struct {
	Now allocator.LogicalTime
	// Killed lists the revoked tasks killed when the clock reached Now,
	// before the call.
	Killed []allocator.Revocation
	// Offers are the proposals that became offers, in the plugin's order.
	Offers []allocator.Proposal
	// Invalid are proposals the master would drop, with the reason.
	Invalid []Rejected
	// IgnoredFilters are offers made although a decline filter of the
	// same framework and role covers them. The master does not enforce
	// filters (they are the policy's job), so these did become offers.
	IgnoredFilters []FilterHit
	// Revocations are the plugin's revocation proposals in its order, each
	// accepted or refused.
	Revocations []RevocationResult
	// Metrics are the response's metrics.
	Metrics map[string]float64
}

// Rejected is a proposal the Sim refused to turn into an offer.
type Rejected struct {
	Proposal allocator.Proposal
	Reason   string
}

// FilterHit is an offer made in spite of an active decline filter.
type FilterHit struct {
	Proposal allocator.Proposal
	Filter   allocator.Filter
}

// RevocationResult is one proposed revocation and what the Sim did with
// it: Refused is empty when it was accepted (the task is killed after the
// grace period, unless it finishes first).
type RevocationResult struct {
	allocator.Revocation
	Refused string
}

// Allocate runs one allocation cycle at now: it advances the clock (killing
// revoked tasks whose grace ran out), sends the pending deltas, validates
// each proposal as the master does and books the valid ones as outstanding
// offers (Allocated deltas for the next cycle), and applies the proposed
// revocations.
//
// The error is non-nil when the call failed (the Cycle is then nil) or when
// the plugin broke the contract: invalid proposals and refused revocations
// are listed in the Cycle and joined in the error, so that they can never
// pass unnoticed; the valid proposals were still booked, as on the master.
// A plugin that reports a version gap is re-Init'ed and asked again.
func (s *Sim) Allocate(now allocator.LogicalTime) (*Cycle, error) {
	killed, err := s.Advance(now)
	if err != nil {
		return nil, err
	}
	resp, err := s.call()
	if err != nil {
		return nil, err
	}
	c := &Cycle{Now: now, Killed: killed, Metrics: resp.Metrics}
	s.metrics = resp.Metrics
	var errs []error
	for i, p := range resp.Offers {
		reason := s.validate(p)
		if reason == "" && s.MaxOffers > 0 && len(c.Offers) >= s.MaxOffers {
			reason = fmt.Sprintf("proposal %d is beyond max_offers %d", i+1, s.MaxOffers)
		}
		if reason != "" {
			c.Invalid = append(c.Invalid, Rejected{Proposal: p, Reason: reason})
			errs = append(errs, fmt.Errorf("invalid offer %s: %s", DescribeProposal(p), reason))
			continue
		}
		if f, ok := s.filterFor(p); ok {
			c.IgnoredFilters = append(c.IgnoredFilters, FilterHit{Proposal: p, Filter: f})
		}
		s.offers = append(s.offers, p)
		s.agents[p.AgentID].used = s.agents[p.AgentID].used.Add(p.Resources)
		s.delta(allocator.Delta{Kind: allocator.Allocated, Allocation: &allocator.Allocation{
			FrameworkID: p.FrameworkID, Role: p.Role, AgentID: p.AgentID, Resources: p.Resources}})
		c.Offers = append(c.Offers, p)
	}
	for _, r := range resp.Revocations {
		res := RevocationResult{Revocation: r, Refused: s.revoke(r)}
		if res.Refused != "" {
			errs = append(errs, fmt.Errorf("refused revocation %s: %s", DescribeRevocation(r), res.Refused))
		}
		c.Revocations = append(c.Revocations, res)
	}
	return c, errors.Join(errs...)
}

// MustAllocate is Allocate for Go tests: any error fails the test.
func (s *Sim) MustAllocate(t testing.TB, now allocator.LogicalTime) *Cycle {
	t.Helper()
	c, err := s.Allocate(now)
	if err != nil {
		t.Fatalf("allocate at %d: %v", now, err)
	}
	return c
}

// call sends the pending deltas, re-Init'ing the plugin first when it does
// not hold the Sim's version (first call, version gap, failed call).
func (s *Sim) call() (*allocator.AllocateResponse, error) {
	for attempt := 0; ; attempt++ {
		if !s.inited {
			if err := s.Reinit(); err != nil {
				return nil, err
			}
		}
		target := s.version + uint64(len(s.pending))
		req := &allocator.AllocateRequest{
			BaseVersion: s.version, Deltas: slices.Clone(s.pending), TargetVersion: target,
			Now: s.now, Trigger: allocator.TriggerTimer, MaxOffers: s.MaxOffers, RevokeAfter: s.RevokeAfter,
		}
		resp, err := s.plugin.Allocate(context.Background(), req)
		var gap *allocator.VersionGapError
		if errors.As(err, &gap) && attempt == 0 {
			s.inited = false
			continue
		}
		if err != nil {
			// The plugin may have applied some deltas: only a fresh Init
			// makes its state certain again, as on the master.
			s.inited = false
			return nil, fmt.Errorf("Allocate(base %d, %d deltas, target %d, now %d): %w", s.version, len(req.Deltas), target, s.now, err)
		}
		if resp.AppliedVersion != target {
			s.inited = false
			return nil, fmt.Errorf("Allocate acknowledged version %d, want %d", resp.AppliedVersion, target)
		}
		s.version, s.pending = target, nil
		return resp, nil
	}
}

// Reinit sends the plugin a snapshot of the Sim's books, as the master does
// for a new plugin, after a version gap or on a hot swap. Outstanding
// offers count as allocated; pending deltas are folded into the snapshot.
func (s *Sim) Reinit() error {
	snap := s.Snapshot()
	v, err := s.plugin.Init(context.Background(), snap)
	if err != nil {
		s.inited = false
		return fmt.Errorf("Init at version %d: %w", snap.Version, err)
	}
	if v != snap.Version {
		s.inited = false
		return fmt.Errorf("Init acknowledged version %d, sent %d", v, snap.Version)
	}
	s.reinits++
	s.inited, s.version, s.pending = true, snap.Version, nil
	return nil
}

// Snapshot returns the Sim's books as the master would send them in Init,
// at the version of the last pending delta.
func (s *Sim) Snapshot() *allocator.Snapshot {
	snap := &allocator.Snapshot{
		Version:    s.version + uint64(len(s.pending)),
		Now:        s.now,
		Agents:     s.Agents(),
		Frameworks: s.Frameworks(),
		Filters:    s.Filters(),
		Tasks:      s.Tasks(),
		Demands:    s.Demands(),
	}
	for _, n := range sortedKeys(s.roles) {
		snap.Roles = append(snap.Roles, s.roles[n])
	}
	type key struct{ f, r, a string }
	alloc := map[key]resources.Resources{}
	for _, o := range s.offers {
		k := key{o.FrameworkID, o.Role, o.AgentID}
		alloc[k] = alloc[k].Add(o.Resources)
	}
	for _, t := range s.tasks {
		k := key{t.FrameworkID, t.Role, t.AgentID}
		alloc[k] = alloc[k].Add(t.Resources)
	}
	for k, r := range alloc {
		if !r.IsEmpty() {
			snap.Allocations = append(snap.Allocations, allocator.Allocation{FrameworkID: k.f, Role: k.r, AgentID: k.a, Resources: r})
		}
	}
	sort.Slice(snap.Allocations, func(i, j int) bool {
		a, b := snap.Allocations[i], snap.Allocations[j]
		if a.FrameworkID != b.FrameworkID {
			return a.FrameworkID < b.FrameworkID
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.AgentID < b.AgentID
	})
	return snap
}

// validate says why the master would drop a proposal, or "". Earlier
// proposals of the same response are already booked, so double-booking
// shows up as resources that are not free.
func (s *Sim) validate(p allocator.Proposal) string {
	a := s.agents[p.AgentID]
	switch {
	case a == nil:
		return "unknown agent"
	case !a.Active:
		return "agent is inactive"
	}
	f := s.frameworks[p.FrameworkID]
	switch {
	case f == nil:
		return "unknown framework"
	case !f.Active:
		return "framework is inactive"
	case !slices.Contains(f.Roles, p.Role):
		return "framework is not subscribed to role " + p.Role
	case slices.Contains(f.SuppressedRoles, p.Role):
		return "framework suppressed offers for role " + p.Role
	case p.Resources.IsEmpty():
		return "empty offer"
	}
	if free := a.Total.Subtract(a.used); !free.Contains(p.Resources) {
		return fmt.Sprintf("not free on the agent, which has %s left after its tasks, outstanding offers and this cycle's earlier proposals", describeResources(free))
	}
	return ""
}

// filterFor returns an active filter that covers p: as in Mesos, one whose
// declined resources contain everything offered.
func (s *Sim) filterFor(p allocator.Proposal) (allocator.Filter, bool) {
	for _, f := range s.filters {
		if f.FrameworkID == p.FrameworkID && f.Role == p.Role && f.AgentID == p.AgentID &&
			s.now < f.ExpiresAt && f.Resources.Contains(p.Resources) {
			return f, true
		}
	}
	return allocator.Filter{}, false
}

// revoke applies one revocation proposal as the master does and says why
// it was refused, or "".
func (s *Sim) revoke(r allocator.Revocation) string {
	t, ok := s.tasks[taskKey{r.FrameworkID, r.TaskID}]
	switch {
	case !ok:
		return "no such running task"
	case t.AgentID != r.AgentID:
		return "the task runs on agent " + t.AgentID
	case t.WithinGuarantee:
		return "the task is within its role's guarantee"
	case t.revoked:
		return "" // proposed again while its grace runs: nothing changes
	}
	t.revoked, t.killAt, t.reason = true, s.now+s.RevokeGrace, r.Reason
	return ""
}

// TaskSpec is one task to launch: an empty ID gets a generated one.
type TaskSpec struct {
	ID        string
	Resources resources.Resources
}

// Accept is a framework's answer to its outstanding offers on one agent:
// launch Tasks out of them and decline the rest with RefuseSeconds.
type Accept struct {
	Framework, Agent string
	// Role selects the offers when the framework holds offers on the
	// agent under several roles; empty means its only one.
	Role          string
	Tasks         []TaskSpec
	RefuseSeconds float64
}

// Accept takes every outstanding offer of the framework on the agent under
// one role (a Mesos ACCEPT may name several offers on one agent), launches
// the tasks (their resources stay allocated; TaskAdded with StartedAt = now)
// and recovers the unused rest, filtered for RefuseSeconds. It returns the
// launched tasks. On error nothing changes.
func (s *Sim) Accept(a Accept) ([]allocator.Task, error) {
	role, offered, err := s.offered(a.Framework, a.Agent, a.Role)
	if err != nil {
		return nil, err
	}
	// Tasks take their resources one after the other, so that two tasks
	// can never hold the same port.
	rest := offered
	taken := map[string]bool{}
	for _, spec := range a.Tasks {
		if !rest.Contains(spec.Resources) {
			return nil, fmt.Errorf("framework %s's offers on agent %s hold %s: after the tasks before it, task %q needs %s and only %s is left",
				a.Framework, a.Agent, offered, spec.ID, spec.Resources, describeResources(rest))
		}
		rest = rest.Subtract(spec.Resources)
		if spec.ID == "" {
			continue
		}
		if _, dup := s.tasks[taskKey{a.Framework, spec.ID}]; dup || taken[spec.ID] {
			return nil, fmt.Errorf("framework %s already runs a task %s", a.Framework, spec.ID)
		}
		taken[spec.ID] = true
	}
	s.offers = slices.DeleteFunc(s.offers, func(o allocator.Proposal) bool {
		return o.FrameworkID == a.Framework && o.AgentID == a.Agent && o.Role == role
	})
	var launched []*taskEntry
	for _, spec := range a.Tasks {
		if spec.Resources.IsEmpty() {
			continue
		}
		id := spec.ID
		if id == "" {
			id = s.newTaskID(a.Framework, taken)
		}
		s.launches++
		t := &taskEntry{seq: s.launches, Task: allocator.Task{
			ID: id, FrameworkID: a.Framework, Role: role, AgentID: a.Agent,
			Resources: spec.Resources, StartedAt: s.now,
		}}
		s.tasks[taskKey{a.Framework, id}] = t
		launched = append(launched, t)
	}
	// TaskAdded carries each new task's WithinGuarantee. New tasks start
	// last, so they cannot push earlier ones out of a guarantee; any other
	// change the marking finds still goes out as TaskUpdated.
	updates := s.guaranteeUpdates(launched)
	out := make([]allocator.Task, 0, len(launched))
	for _, t := range launched {
		task := t.Task
		s.delta(allocator.Delta{Kind: allocator.TaskAdded, Task: &task})
		out = append(out, task)
	}
	s.emitUpdates(updates)
	// Launched resources stay allocated; the rest goes back.
	s.recovered(a.Framework, role, a.Agent, rest, a.RefuseSeconds)
	return out, nil
}

// Launch accepts the framework's offers on the agent and launches one task
// using use (with a generated ID), declining the rest with refuseSeconds.
func (s *Sim) Launch(frameworkID, agentID string, use resources.Resources, refuseSeconds float64) (allocator.Task, error) {
	tasks, err := s.Accept(Accept{Framework: frameworkID, Agent: agentID, Tasks: []TaskSpec{{Resources: use}}, RefuseSeconds: refuseSeconds})
	if err != nil || len(tasks) == 0 {
		return allocator.Task{}, err
	}
	return tasks[0], nil
}

// Decline declines every outstanding offer of the framework on the agent
// (all roles), filtering them for refuseSeconds.
func (s *Sim) Decline(frameworkID, agentID string, refuseSeconds float64) error {
	n := 0
	s.rescindWith(func(o allocator.Proposal) bool {
		if o.FrameworkID == frameworkID && o.AgentID == agentID {
			n++
			return true
		}
		return false
	}, refuseSeconds)
	if n == 0 {
		return fmt.Errorf("framework %s has no outstanding offer on agent %s", frameworkID, agentID)
	}
	return nil
}

// rescindWith recovers the matching offers with a filter, merging offers of
// the same framework, role and agent into one Recovered delta.
func (s *Sim) rescindWith(match func(allocator.Proposal) bool, refuseSeconds float64) {
	type key struct{ f, r, a string }
	var order []key
	sums := map[key]resources.Resources{}
	var keep []allocator.Proposal
	for _, o := range s.offers {
		if !match(o) {
			keep = append(keep, o)
			continue
		}
		k := key{o.FrameworkID, o.Role, o.AgentID}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] = sums[k].Add(o.Resources)
	}
	s.offers = keep
	for _, k := range order {
		s.recovered(k.f, k.r, k.a, sums[k], refuseSeconds)
	}
}

// offered sums the framework's outstanding offers on the agent under role
// (or under its only role there).
func (s *Sim) offered(frameworkID, agentID, role string) (string, resources.Resources, error) {
	var roles []string
	for _, o := range s.offers {
		if o.FrameworkID == frameworkID && o.AgentID == agentID && !slices.Contains(roles, o.Role) {
			roles = append(roles, o.Role)
		}
	}
	switch {
	case len(roles) == 0:
		return "", resources.Resources{}, fmt.Errorf("framework %s has no outstanding offer on agent %s", frameworkID, agentID)
	case role == "" && len(roles) > 1:
		sort.Strings(roles)
		return "", resources.Resources{}, fmt.Errorf("framework %s holds offers on agent %s under roles %v: say which", frameworkID, agentID, roles)
	case role == "":
		role = roles[0]
	case !slices.Contains(roles, role):
		return "", resources.Resources{}, fmt.Errorf("framework %s has no outstanding offer on agent %s under role %s", frameworkID, agentID, role)
	}
	var sum resources.Resources
	for _, o := range s.offers {
		if o.FrameworkID == frameworkID && o.AgentID == agentID && o.Role == role {
			sum = sum.Add(o.Resources)
		}
	}
	return role, sum, nil
}

func (s *Sim) newTaskID(frameworkID string, taken map[string]bool) string {
	for {
		s.nextTask++
		id := fmt.Sprintf("t%d", s.nextTask)
		if _, dup := s.tasks[taskKey{frameworkID, id}]; !dup && !taken[id] {
			return id
		}
	}
}

// Finish ends a running task (it finished, failed or was killed by its
// framework): TaskRemoved, and its resources are recovered without a
// filter. A pending revocation of the task is dropped with it.
func (s *Sim) Finish(frameworkID, taskID string) error {
	t, ok := s.tasks[taskKey{frameworkID, taskID}]
	if !ok {
		return fmt.Errorf("framework %s runs no task %s", frameworkID, taskID)
	}
	s.endTask(t)
	s.markGuarantees()
	return nil
}
