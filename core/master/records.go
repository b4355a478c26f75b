package master

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// The registry records (principle 3: the facts a master cannot rebuild),
// as Mesos's registry keeps them: every admitted agent and every
// framework with its failover timeout. A master that starts leading loads
// them, so it knows which agents to expect back: it stays silent about
// their tasks until they re-register, and marks the ones that do not come
// back within AgentReregisterTimeout unreachable (their tasks reconcile to
// TASK_LOST, and are adopted again if the agent returns). Frameworks that
// never re-subscribe are forgotten after their failover timeout.

// agentRecord is an admitted agent in the registry.
type agentRecord struct {
	Hostname string `json:"hostname,omitempty"`
	// UnreachableUnixMs is when the agent was marked unreachable (did not
	// re-register in time), 0 while it is admitted.
	UnreachableUnixMs int64 `json:"unreachable_unix_ms,omitempty"`
}

// frameworkRecord is a framework in the registry.
type frameworkRecord struct {
	Name                   string   `json:"name"`
	Roles                  []string `json:"roles,omitempty"`
	FailoverTimeoutSeconds float64  `json:"failover_timeout_seconds,omitempty"`
}

// recordWriter batches record writes of one kind: whatever accumulated
// while the previous write was in flight goes in the next one, so ten
// thousand agents registering at once cost a few hundred transactions,
// not ten thousand.
type recordWriter struct {
	rec coord.Records
	log hclog.Logger

	mu      sync.Mutex
	put     map[string][]byte
	del     map[string]bool
	waiters []chan error
	kick    chan struct{}
}

func newRecordWriter(rec coord.Records, log hclog.Logger) *recordWriter {
	return &recordWriter{rec: rec, log: log, put: map[string][]byte{}, del: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// set queues a record; the channel gets the write's outcome.
func (w *recordWriter) set(key string, v any) <-chan error {
	done := make(chan error, 1)
	raw, err := json.Marshal(v)
	if err != nil {
		done <- err
		return done
	}
	w.mu.Lock()
	w.put[key] = raw
	delete(w.del, key)
	w.waiters = append(w.waiters, done)
	w.mu.Unlock()
	w.wake()
	return done
}

// remove queues a deletion.
func (w *recordWriter) remove(key string) {
	w.mu.Lock()
	w.del[key] = true
	delete(w.put, key)
	w.mu.Unlock()
	w.wake()
}

func (w *recordWriter) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run writes batches until ctx ends. A failed write is retried (Consul
// restarting) unless this master is no longer the leader; waiters hear
// the final outcome.
func (w *recordWriter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.fail(ctx.Err())
			return
		case <-w.kick:
		}
		w.mu.Lock()
		put, del, waiters := w.put, w.del, w.waiters
		w.put, w.del, w.waiters = map[string][]byte{}, map[string]bool{}, nil
		w.mu.Unlock()
		dels := make([]string, 0, len(del))
		for k := range del {
			dels = append(dels, k)
		}
		sort.Strings(dels)
		err := w.write(ctx, put, dels)
		for _, c := range waiters {
			c <- err
		}
	}
}

func (w *recordWriter) write(ctx context.Context, put map[string][]byte, del []string) error {
	backoff := 50 * time.Millisecond
	for {
		err := w.rec.Update(ctx, put, del)
		if err == nil || errors.Is(err, coord.ErrNotLeader) || ctx.Err() != nil {
			if err != nil {
				w.log.Warn("registry records not written", "records", w.rec.String(), "error", err)
			}
			return err
		}
		w.log.Warn("writing registry records failed; retrying", "records", w.rec.String(), "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// fail answers every waiter with err (the master stopped leading).
func (w *recordWriter) fail(err error) {
	w.mu.Lock()
	waiters := w.waiters
	w.waiters = nil
	w.mu.Unlock()
	for _, c := range waiters {
		c <- err
	}
}

// loadRecords reads the registry records when this master starts leading.
// An unreadable registry is logged, not fatal: the books are soft state
// and rebuild from the agents anyway; only the expectations are missing.
func (m *Master) loadRecords(ctx context.Context) {
	rs, ok := m.reg.(coord.RecordStore)
	if !ok {
		return
	}
	began := time.Now()
	agents, aerr := rs.Records("agents").List(ctx)
	frameworks, ferr := rs.Records("frameworks").List(ctx)
	read := time.Since(began)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.agentRecords = newRecordWriter(rs.Records("agents"), m.log.Named("registry"))
	m.frameworkRecords = newRecordWriter(rs.Records("frameworks"), m.log.Named("registry"))
	if err := errors.Join(aerr, ferr); err != nil {
		m.log.Error("reading the registry records failed; this master does not know which agents and frameworks to expect",
			"error", err)
		return
	}
	m.recordsLoaded = true
	for id, raw := range agents {
		var r agentRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			m.log.Warn("skipping a corrupt agent record", "agent_id", id, "error", err)
			continue
		}
		m.recordedAgents[id] = true
		switch {
		case m.agents[id] != nil && m.agents[id].connected:
		case r.UnreachableUnixMs != 0:
			m.unreachableAgents[id] = r
		default:
			m.expectedAgents[id] = r
		}
	}
	for id, raw := range frameworks {
		var r frameworkRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			m.log.Warn("skipping a corrupt framework record", "framework_id", id, "error", err)
			continue
		}
		m.recordedFrameworks[id] = true
		if f := m.frameworks[id]; f == nil || f.recovered {
			m.expectedFrameworks[id] = r
		}
	}
	// Agents that registered before the records were read (the gateway
	// opens as leadership starts) are recorded now.
	for id, a := range m.agents {
		if !m.recordedAgents[id] {
			m.recordedAgents[id] = true
			m.agentRecords.set(id, agentRecord{Hostname: a.info.Hostname})
		}
	}
	m.log.Info("registry records loaded", "agents", len(agents), "expected_agents", len(m.expectedAgents),
		"unreachable_agents", len(m.unreachableAgents), "frameworks", len(frameworks), "read", read, "took", time.Since(began))
}

// admitAgent records a newly admitted agent before it is told it is
// registered, as Mesos's registrar does: a master that takes over must
// know every agent that could come back. It returns once the record is
// durable (nil at once without a record store or for a recorded agent).
func (m *Master) admitAgent(ctx context.Context, id, hostname string) error {
	m.mu.Lock()
	w, known := m.agentRecords, m.recordedAgents[id]
	m.mu.Unlock()
	if w == nil || known {
		return nil
	}
	select {
	case err := <-w.set(id, agentRecord{Hostname: hostname}):
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	m.mu.Lock()
	m.recordedAgents[id] = true
	m.mu.Unlock()
	return nil
}

// agentBackLocked notes that an agent the registry knows re-registered.
// It reports whether this master was waiting for it (a failover), when
// one line for the whole fleet says more than one per agent.
func (m *Master) agentBackLocked(id, hostname string) (expected bool) {
	if _, expected = m.expectedAgents[id]; expected {
		delete(m.expectedAgents, id)
		if len(m.expectedAgents) == 0 {
			m.log.Info("every agent in the registry re-registered", "agents", len(m.agents)+1,
				"since_leading", m.now().Sub(m.leadingSince))
		}
	}
	if _, was := m.unreachableAgents[id]; was {
		delete(m.unreachableAgents, id)
		if m.agentRecords != nil {
			m.agentRecords.set(id, agentRecord{Hostname: hostname})
		}
		m.log.Info("unreachable agent re-registered; its tasks are adopted again", "agent_id", id)
	}
	return expected
}

// markUnreachableLocked records an agent that did not re-register in time.
func (m *Master) markUnreachableLocked(id, hostname string) {
	r := agentRecord{Hostname: hostname, UnreachableUnixMs: m.now().UnixMilli()}
	delete(m.expectedAgents, id)
	m.unreachableAgents[id] = r
	if m.agentRecords != nil {
		m.agentRecords.set(id, r)
	}
}

// expireExpectedLocked is the timer's part: registry agents that did not
// come back within AgentReregisterTimeout of this master's leadership are
// unreachable (frameworks hear of it as of a removed agent), registry
// frameworks that did not come back within their failover timeout are
// forgotten.
func (m *Master) expireExpectedLocked(now time.Time) {
	if m.leadingSince.IsZero() {
		return
	}
	if len(m.expectedAgents) > 0 && now.Sub(m.leadingSince) >= m.cfg.AgentReregisterTimeout {
		why := "agent did not re-register within " + m.cfg.AgentReregisterTimeout.String() + " of a master failover"
		for _, id := range sortedMapKeys(m.expectedAgents) {
			m.log.Warn("agent in the registry did not re-register in time; marking it unreachable", "agent_id", id,
				"timeout", m.cfg.AgentReregisterTimeout)
			m.markUnreachableLocked(id, m.expectedAgents[id].Hostname)
			for _, f := range m.frameworks {
				if f.sub != nil {
					f.sub.send(&corralpb.Event{Event: &corralpb.Event_Failure_{Failure: &corralpb.Event_Failure{AgentId: id, Message: why}}})
				}
			}
		}
	}
	for _, id := range sortedMapKeys(m.expectedFrameworks) {
		r := m.expectedFrameworks[id]
		if f := m.frameworks[id]; f != nil && !f.recovered {
			delete(m.expectedFrameworks, id)
			continue
		}
		if m.frameworks[id] != nil {
			continue // adopted from agents: its entry times out as any other
		}
		d := m.failoverTimeout(&frameworkEntry{info: &corralpb.FrameworkInfo{FailoverTimeoutSeconds: r.FailoverTimeoutSeconds}})
		if now.Sub(m.leadingSince) >= d {
			m.log.Info("framework in the registry did not re-subscribe within its failover timeout; forgetting it",
				"framework_id", id, "failover_timeout", d)
			delete(m.expectedFrameworks, id)
			delete(m.recordedFrameworks, id)
			if m.frameworkRecords != nil {
				m.frameworkRecords.remove(id)
			}
		}
	}
}

// recordFrameworkLocked writes a subscribed framework's record (in the
// background: a framework a new leader does not expect is re-admitted by
// its ID anyway).
func (m *Master) recordFrameworkLocked(f *frameworkEntry) {
	delete(m.expectedFrameworks, f.info.Id)
	if m.frameworkRecords == nil {
		return
	}
	m.recordedFrameworks[f.info.Id] = true
	m.frameworkRecords.set(f.info.Id, frameworkRecord{Name: f.info.Name, Roles: sortedKeys(f.roles),
		FailoverTimeoutSeconds: f.info.FailoverTimeoutSeconds})
}

// forgetFrameworkLocked deletes a removed framework's record.
func (m *Master) forgetFrameworkLocked(id string) {
	delete(m.expectedFrameworks, id)
	if m.frameworkRecords != nil && m.recordedFrameworks[id] {
		delete(m.recordedFrameworks, id)
		m.frameworkRecords.remove(id)
	}
}

// recoveringLocked reports whether this master took over recently and
// still expects agents from the registry: allocation waits (as Mesos's
// allocator recovery does), so that offers are made from the whole
// cluster, and the re-registering agents do not compete with allocation
// cycles. The wait ends when every expected agent is back, or after
// RecoveryAllocationPause.
func (m *Master) recoveringLocked(now time.Time) bool {
	return len(m.expectedAgents) > 0 && !m.leadingSince.IsZero() && now.Sub(m.leadingSince) < m.cfg.RecoveryAllocationPause
}

// suspendDeltasLocked stops logging allocator deltas until the next
// Init: a master that took over hears from thousands of agents at once
// (and allocation waits meanwhile, see recoveringLocked), so rather than
// keep and replay a dozen deltas per agent it re-initializes the
// allocator from one snapshot when allocation resumes (the log reads as
// overflowed, which makes every plugin Init again).
func (m *Master) suspendDeltasLocked() {
	if !m.deltas.overflow {
		m.deltas.overflow = true
		m.deltas.pending = nil
	}
}
