package master

import (
	"fmt"
	"sort"

	dto "github.com/prometheus/client_model/go"

	"github.com/corral-project/corral/core/master/agentproto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// AdmitAgents registers n agents straight into the books, as if each had
// connected, for scale tests: fifty thousand gRPC streams in one test
// process would measure gRPC, not the master.
func (m *Master) AdmitAgents(n int, total resources.Resources) error {
	for i := range n {
		reg := &agentproto.Register{Agent: &corralpb.AgentInfo{Hostname: fmt.Sprintf("host-%06d", i), Url: "http://127.0.0.1:1"}}
		conn := &agentConn{out: newQueue[*agentproto.MasterMessage]()}
		if _, err := m.registerAgent(reg, total, conn, ""); err != nil {
			return err
		}
	}
	return nil
}

// OutstandingOffers counts the offers in the ledger.
func (m *Master) OutstandingOffers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.offers)
}

// OfferIDs lists a framework's outstanding offers, for fuzzing accepts.
func (m *Master) OfferIDs(frameworkID string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	if f := m.frameworks[frameworkID]; f != nil {
		for id := range f.offers {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// HandleStatusUpdate feeds an agent's status update to the books, as the
// agent gateway does for each message on the agent's stream.
func (m *Master) HandleStatusUpdate(agentID string, su *agentproto.StatusUpdate) {
	m.handleStatusUpdate(agentID, su)
}

// Reregister feeds registrations to the books as the agent gateway does
// after the agent's stream opened (for the failover benchmark).
func (m *Master) Reregister(reg *agentproto.Register) error {
	total, err := resources.FromProto(reg.Agent.Resources)
	if err != nil {
		return err
	}
	_, err = m.registerAgent(reg, total, &agentConn{out: newQueue[*agentproto.MasterMessage]()}, "")
	return err
}

// ExpectedAgents is how many registry agents this leader still waits for,
// and whether it has read the registry records yet.
func (m *Master) ExpectedAgents() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.expectedAgents), m.recordsLoaded
}

// LiveTasks counts the tasks in the books (every framework's task table).
func (m *Master) LiveTasks() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, f := range m.frameworks {
		n += len(f.tasks)
	}
	return n
}

// StatusUpdatesReceived is how many status updates agents have sent.
func (m *Master) StatusUpdatesReceived() int {
	var d dto.Metric
	if err := m.metrics.statusUpdates.Write(&d); err != nil {
		return -1
	}
	return int(d.GetCounter().GetValue())
}

// TallyMismatch compares the tally the metrics report with a walk of the
// books (live tasks by state; scalars of live tasks and outstanding
// offers by role; connected agents' capacity and use; agents draining):
// "" when they agree, else what differs.
func (m *Master) TallyMismatch() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	states := map[corralpb.TaskState]int{}
	roles := newTally()
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			states[t.state]++
			roles.addRole(t.role, t.resources, 1)
		}
		for _, o := range f.offers {
			roles.addRole(o.role, o.resources, 1)
		}
	}
	for s, n := range m.tally.states {
		if n != states[s] {
			return fmt.Sprintf("%s: tally %d, books %d", s, n, states[s])
		}
	}
	for s, n := range states {
		if n != m.tally.states[s] {
			return fmt.Sprintf("%s: tally %d, books %d", s, m.tally.states[s], n)
		}
	}
	if got, want := fmt.Sprint(m.tally.roles), fmt.Sprint(roles.roles); got != want {
		return fmt.Sprintf("roles: tally %s, books %s", got, want)
	}
	draining := 0
	for _, a := range m.agents {
		roles.addAgent(a, 1)
		if a.drain != nil {
			draining++
		}
	}
	if got, want := fmt.Sprint(m.tally.capacity, m.tally.used), fmt.Sprint(roles.capacity, roles.used); got != want {
		return fmt.Sprintf("connected agents' capacity and use: tally %s, books %s", got, want)
	}
	if m.tally.draining != draining {
		return fmt.Sprintf("draining agents: tally %d, books %d", m.tally.draining, draining)
	}
	return ""
}

// BatchUpdates is batchUpdates, for the gRPC adapter's tests.
func BatchUpdates(first *corralpb.Event, poll func() (*corralpb.Event, bool)) (send, held *corralpb.Event) {
	return batchUpdates(first, poll)
}
