package master

import (
	"fmt"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Draining an agent for maintenance, with Mesos' semantics: the agent gets
// no new offers (its outstanding ones are rescinded), every framework with
// tasks on it gets an inverse offer saying when they will be killed, the
// tasks still running at the deadline are killed (REASON_PREEMPTED, with a
// message naming the drain), and the agent is drained once nothing runs on
// it. Undrain makes it available again and withdraws kills not yet sent.

// drainReason is the reason inverse offers of a drain carry.
const drainReason = "agent_draining"

// DrainAgent starts draining agentID; tasks have deadline to end by
// themselves. Draining a draining agent changes its deadline only for
// tasks not yet notified.
func (m *Master) DrainAgent(agentID string, deadline time.Duration) error {
	if deadline < 0 {
		return invalidField("deadline", "must not be negative, got %s", deadline)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[agentID]
	if a == nil {
		return &NotFoundError{Msg: fmt.Sprintf("agent %s is not registered", agentID)}
	}
	now := m.now()
	if a.drain == nil {
		a.drain = &drainState{since: now, deadline: now.Add(deadline)}
		m.tally.draining++
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.AgentUpdated, Agent: agentView(a)})
		a.closedAt = m.deltas.version
		for _, o := range m.offers {
			if o.agentID == agentID {
				m.rescindLocked(o, 0)
			}
		}
	}
	byFramework := map[string][]*corralpb.InverseOffer{}
	tasks := 0
	for _, fid := range sortedMapKeys(m.frameworks) {
		f := m.frameworks[fid]
		for _, tid := range sortedMapKeys(f.tasks) {
			t := f.tasks[tid]
			if t.agentID != agentID || terminal(t.state) || t.revocation != nil {
				continue
			}
			rv := &revocation{id: newID("inverse-offer"), frameworkID: fid, agentID: agentID, taskID: tid,
				reason: drainReason, grace: a.drain.deadline.Sub(now), deadline: a.drain.deadline, drain: true}
			t.revocation = rv
			m.revocations[rv.id] = rv
			byFramework[fid] = append(byFramework[fid], inverseOffer(rv, t))
			tasks++
		}
	}
	for _, fid := range sortedMapKeys(byFramework) {
		if f := m.frameworks[fid]; f != nil && f.sub != nil {
			f.sub.send(&corralpb.Event{Event: &corralpb.Event_InverseOffers_{InverseOffers: &corralpb.Event_InverseOffers{
				InverseOffers: byFramework[fid]}}})
		}
	}
	m.log.Info("draining agent", "agent_id", agentID, "deadline", a.drain.deadline.Sub(now), "tasks", tasks)
	m.requestAllocation(allocator.TriggerEvent)
	return nil
}

// UndrainAgent makes a draining agent available again. Tasks whose kill
// was already sent are not brought back; the others keep running.
func (m *Master) UndrainAgent(agentID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[agentID]
	if a == nil {
		return &NotFoundError{Msg: fmt.Sprintf("agent %s is not registered", agentID)}
	}
	if a.drain == nil {
		return &ConflictError{Msg: fmt.Sprintf("agent %s is not draining", agentID)}
	}
	a.drain = nil
	m.tally.draining--
	for id, rv := range m.revocations {
		if rv.drain && rv.agentID == agentID && !rv.killSent {
			delete(m.revocations, id)
			if f := m.frameworks[rv.frameworkID]; f != nil {
				if t := f.tasks[rv.taskID]; t != nil && t.revocation == rv {
					t.revocation = nil
				}
			}
		}
	}
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.AgentUpdated, Agent: agentView(a)})
	m.log.Info("agent undrained", "agent_id", agentID)
	m.requestAllocation(allocator.TriggerEvent)
	return nil
}

// drainViewLocked says where a draining agent stands: "draining" while
// tasks run on it, "drained" once none does; "" when not draining.
func (m *Master) drainViewLocked(a *agentEntry) (string, *time.Time) {
	if a.drain == nil {
		return "", nil
	}
	deadline := a.drain.deadline
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			if t.agentID == a.info.Id && !terminal(t.state) {
				return "draining", &deadline
			}
		}
	}
	return "drained", &deadline
}
