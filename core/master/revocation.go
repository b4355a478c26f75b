package master

import (
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// Revocations: the allocator proposes taking a running task's resources
// back; the master checks the proposal against its books, sends the
// framework an inverse offer, and kills the task when the grace period
// ends unless the task ended first. Like offers, revocations are proposals
// the core disposes of (principle 2).

// revocation is one accepted revocation of a live task.
type revocation struct {
	id          string // the inverse offer's ID
	frameworkID string
	agentID     string
	taskID      string
	reason      string
	grace       time.Duration
	deadline    time.Time
	// killSent: the grace ended and the agent was told to kill the task.
	killSent bool
	// drain: the operator drains the agent; the kill happens whatever
	// the task's guarantee.
	drain bool
}

// handleRevocationsLocked validates the cycle's revocation proposals and
// starts the grace period of the valid ones.
func (m *Master) handleRevocationsLocked(revs []allocator.Revocation) {
	if len(revs) == 0 {
		return
	}
	now := m.now()
	byFramework := map[string][]*corralpb.InverseOffer{}
	for _, r := range revs {
		t, why := m.validateRevocationLocked(r)
		if why != "" {
			m.metrics.revocationsInvalid.Inc()
			m.log.Debug("dropping invalid allocator revocation", "framework_id", r.FrameworkID, "agent_id", r.AgentID,
				"task_id", r.TaskID, "reason", r.Reason, "invalid", why)
			continue
		}
		rv := &revocation{id: newID("inverse-offer"), frameworkID: r.FrameworkID, agentID: r.AgentID, taskID: r.TaskID,
			reason: r.Reason, grace: m.cfg.RevokeGrace, deadline: now.Add(m.cfg.RevokeGrace)}
		t.revocation = rv
		m.revocations[rv.id] = rv
		m.metrics.revocations.WithLabelValues(reasonLabel(r.Reason)).Inc()
		m.log.Info("task revoked by the allocator; killing it after the grace period", "framework_id", r.FrameworkID,
			"agent_id", r.AgentID, "task_id", r.TaskID, "reason", r.Reason, "grace", m.cfg.RevokeGrace)
		byFramework[r.FrameworkID] = append(byFramework[r.FrameworkID], inverseOffer(rv, t))
	}
	for _, fid := range sortedMapKeys(byFramework) {
		if f := m.frameworks[fid]; f != nil && f.sub != nil {
			f.sub.send(&corralpb.Event{Event: &corralpb.Event_InverseOffers_{InverseOffers: &corralpb.Event_InverseOffers{
				InverseOffers: byFramework[fid]}}})
		}
	}
}

// validateRevocationLocked says why a revocation cannot be carried out,
// or returns the task.
func (m *Master) validateRevocationLocked(r allocator.Revocation) (*taskEntry, string) {
	f := m.frameworks[r.FrameworkID]
	if f == nil {
		return nil, "unknown framework"
	}
	t := f.tasks[r.TaskID]
	switch {
	case t == nil:
		return nil, "not a live task of the framework"
	case terminal(t.state):
		return nil, "task is terminal"
	case t.agentID != r.AgentID:
		return nil, fmt.Sprintf("task runs on agent %s", t.agentID)
	case t.withinGuarantee:
		return nil, "task is within its role's guarantee"
	case t.revocation != nil:
		return nil, "task is already being revoked"
	}
	if why := m.revocationBreaksGuaranteeLocked(t); why != "" {
		return nil, why
	}
	return t, ""
}

// revocationBreaksGuaranteeLocked checks that taking t away leaves every
// guaranteed role on its path (its own, its ancestors) at or above its
// guarantee on each scalar the guarantee names and t uses. Tasks already
// being revoked no longer count: they are as good as gone.
func (m *Master) revocationBreaksGuaranteeLocked(t *taskEntry) string {
	for _, g := range resources.RoleAncestors(t.role) {
		guarantee := m.roles[g].Guarantee
		if guarantee.IsEmpty() {
			continue
		}
		var used resources.Resources
		for _, f := range m.frameworks {
			for _, o := range f.tasks {
				if o.revocation == nil && roleInSubtree(o.role, g) {
					used = used.Add(o.resources.Scalars())
				}
			}
		}
		for _, n := range guarantee.ScalarNames() {
			need := t.resources.Scalar(n)
			if need <= 0 {
				continue
			}
			if left := used.Scalar(n) - need; left < guarantee.Scalar(n) {
				return fmt.Sprintf("revoking it would leave role %s below its guarantee on %s (%s of %s)",
					g, n, fmtQty(max(left, 0)), fmtQty(guarantee.Scalar(n)))
			}
		}
	}
	return ""
}

// expireRevocationsLocked kills the tasks whose grace period has ended.
func (m *Master) expireRevocationsLocked(now time.Time) {
	ids := make([]string, 0, len(m.revocations))
	for id, rv := range m.revocations {
		if !rv.killSent && !now.Before(rv.deadline) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		m.killRevokedLocked(m.revocations[id])
	}
}

// killRevokedLocked sends the kill for a revoked task whose grace ended.
// If the agent is disconnected the kill is retried on later ticks, and
// resent when the agent re-registers.
func (m *Master) killRevokedLocked(rv *revocation) {
	var t *taskEntry
	if f := m.frameworks[rv.frameworkID]; f != nil {
		t = f.tasks[rv.taskID]
	}
	if t == nil || t.revocation != rv {
		delete(m.revocations, rv.id) // the task ended; nothing to kill
		return
	}
	if t.withinGuarantee && !rv.drain {
		// The task moved inside its role's guarantee during the grace
		// period (older tasks ended, or the operator raised the
		// guarantee): killing it now would break the guarantee rule.
		m.log.Info("revoked task is now within its role's guarantee; not killing it", "framework_id", rv.frameworkID,
			"agent_id", t.agentID, "task_id", rv.taskID, "reason", rv.reason)
		delete(m.revocations, rv.id)
		t.revocation = nil
		return
	}
	a := m.agents[t.agentID]
	if a == nil || a.conn == nil {
		return
	}
	rv.killSent = true
	m.log.Info("revocation grace period ended; killing the task", "framework_id", rv.frameworkID, "agent_id", t.agentID,
		"task_id", rv.taskID, "reason", rv.reason)
	sendKillLocked(a, t, 0)
}

// resendRevocationKillsLocked repeats the kills of revoked tasks on an
// agent that re-registered: a kill sent on its previous connection may have
// been lost.
func (m *Master) resendRevocationKillsLocked(a *agentEntry) {
	for _, rv := range m.revocations {
		if rv.killSent && rv.agentID == a.info.Id {
			rv.killSent = false
			m.killRevokedLocked(rv)
		}
	}
}

// revocationEndedLocked forgets t's pending revocation when t ends. A task
// that ended before its grace period was simply not preempted.
func (m *Master) revocationEndedLocked(t *taskEntry) {
	rv := t.revocation
	if rv == nil {
		return
	}
	delete(m.revocations, rv.id)
	if !rv.killSent {
		t.revocation = nil
	}
}

// preemptedStatus rewrites the terminal update of a task the master killed
// for a revocation: the agent reports an ordinary TASK_KILLED, but the
// framework must learn that it was preempted (and may relaunch elsewhere).
func preemptedStatus(t *taskEntry, st *corralpb.TaskStatus) {
	rv := t.revocation
	if rv == nil || !rv.killSent || !terminal(st.State) || st.State == corralpb.TaskState_TASK_FINISHED {
		return
	}
	st.Reason = corralpb.TaskStatus_REASON_PREEMPTED
	msg := fmt.Sprintf("revoked by the allocator for %s after the grace period of %s", reasonText(rv.reason), rv.grace)
	if rv.drain {
		msg = fmt.Sprintf("killed: agent %s is drained for maintenance and the deadline of %s passed", rv.agentID, rv.grace)
	}
	if st.Message != "" && st.Message != msg {
		msg += " (agent: " + st.Message + ")"
	}
	st.Message = msg
}

// inverseOffersFor returns the pending revocations of a framework as
// inverse offers, for a scheduler that (re)subscribed during a grace period.
func (m *Master) inverseOffersForLocked(f *frameworkEntry) []*corralpb.InverseOffer {
	var out []*corralpb.InverseOffer
	for _, id := range sortedMapKeys(m.revocations) {
		rv := m.revocations[id]
		if rv.frameworkID != f.info.Id || rv.killSent {
			continue
		}
		if t := f.tasks[rv.taskID]; t != nil && t.revocation == rv {
			out = append(out, inverseOffer(rv, t))
		}
	}
	return out
}

func inverseOffer(rv *revocation, t *taskEntry) *corralpb.InverseOffer {
	return &corralpb.InverseOffer{Id: rv.id, FrameworkId: rv.frameworkID, AgentId: rv.agentID, TaskId: rv.taskID,
		Resources: t.resources.ToProto(), GraceSeconds: rv.grace.Seconds(), DeadlineUnixMs: rv.deadline.UnixMilli(),
		Reason: rv.reason}
}

var reasonLabelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// reasonLabel bounds the label values a plugin can create in the
// revocations counter.
func reasonLabel(reason string) string {
	switch {
	case reason == "":
		return "unspecified"
	case reasonLabelRE.MatchString(reason):
		return reason
	}
	return "other"
}

func reasonText(reason string) string {
	if reason == "" {
		return "an unspecified reason"
	}
	return reason
}
