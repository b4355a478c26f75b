// Package master is corral's master: it keeps the books (agents,
// frameworks, offers, tasks), runs the allocation loop against the allocator
// plugin, validates every request and relays status updates. It holds no
// allocation policy: the plugin proposes, the master disposes.
package master

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// Master is one master process's state. All books are guarded by mu; the
// allocator plugin is called without holding it.
type Master struct {
	cfg Config
	// offerScanAt and agentScanAt are when timerTick next needs to look
	// at the offers (for expiry) and the agents (for re-registration
	// timeouts): the earliest deadline the last scan saw, brought forward
	// when an offer is made or an agent disconnects. Zero: scan at the
	// next tick. At 50,000 agents a scan of both every 100 ms under the
	// master's lock took a large part of a core.
	offerScanAt, agentScanAt time.Time
	// acls are Config.ACLs, replaced by SetACLs (see authz.go).
	acls     atomic.Pointer[acl.ACLs]
	log      hclog.Logger
	launcher AllocatorLauncher
	// slot holds the allocator plugins (see slot.go).
	slot    allocatorSlot
	now     func() time.Time
	start   time.Time
	id      string
	metrics *metrics
	// reg is the durable registry, nil to keep run-time changes in memory.
	reg coord.Store
	// leadership is what the operator API reports (SetLeadership).
	leadership atomic.Pointer[func() (bool, string)]

	// regMu serializes run-time role changes and their registry writes;
	// taken before mu, never while holding it.
	regMu sync.Mutex

	mu         sync.Mutex
	agents     map[string]*agentEntry
	frameworks map[string]*frameworkEntry
	// agentTasks indexes the live tasks by agent ID (kept by
	// addTaskLocked and setTaskStateLocked): a re-registration or an
	// agent's removal touches its own tasks, not every task of the
	// cluster (10k agents re-registering after a failover would otherwise
	// cost agents x tasks).
	agentTasks map[string]map[*taskEntry]struct{}
	// tally counts the live tasks by state and sums the scalars held by
	// role (kept with agentTasks, and as offers come and go): what a
	// metrics scrape reports, read instead of walking a hundred thousand
	// tasks under the books' lock on every scrape.
	tally *tally
	// The registry records (records.go): writers, nil without a record
	// store; what the registry holds; what this leader still expects back.
	agentRecords, frameworkRecords     *recordWriter
	recordsLoaded                      bool
	recordedAgents, recordedFrameworks map[string]bool
	expectedAgents, unreachableAgents  map[string]agentRecord
	expectedFrameworks                 map[string]frameworkRecord
	// leadingSince is when Run started: this master's leadership.
	leadingSince time.Time
	offers       map[string]*offerEntry
	roles        map[string]RoleConfig
	// durableRoles are the roles set at run time, kept in the registry.
	durableRoles map[string]bool
	deltas       deltaLog
	// metrics the allocator reported in its latest AllocateResponse: the
	// shares the operator sees come from the policy, not from the core.
	pluginMetrics map[string]float64
	// revocations pending or killed, by inverse offer ID, until the task
	// ends.
	revocations map[string]*revocation
	// completedFrameworks are the views of removed frameworks, newest
	// last, for the operator.
	completedFrameworks []FrameworkView
	// samples are the cluster's recent history (see history.go).
	samples sampleRing
	// guaranteeBatch, when not nil, collects guarantee groups to
	// recompute once (see batchGuaranteesLocked).
	guaranteeBatch map[string]bool

	trigger chan allocator.Trigger
}

// New returns a master; call Run to start its loops. It fails when the
// configured roles are invalid or the registry cannot be read.
func New(cfg Config, deps Deps) (*Master, error) {
	cfg.setDefaults()
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	log := deps.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := &Master{
		cfg:        cfg,
		log:        log,
		launcher:   deps.Launcher,
		now:        now,
		start:      now(),
		id:         newID("master"),
		metrics:    newMetrics(),
		agents:     map[string]*agentEntry{},
		frameworks: map[string]*frameworkEntry{},
		agentTasks: map[string]map[*taskEntry]struct{}{},
		tally:      newTally(),

		recordedAgents:     map[string]bool{},
		recordedFrameworks: map[string]bool{},
		expectedAgents:     map[string]agentRecord{},
		unreachableAgents:  map[string]agentRecord{},
		expectedFrameworks: map[string]frameworkRecord{},
		offers:             map[string]*offerEntry{},
		roles:              map[string]RoleConfig{},
		durableRoles:       map[string]bool{},
		revocations:        map[string]*revocation{},
		trigger:            make(chan allocator.Trigger, 1),
	}
	m.acls.Store(cfg.ACLs)
	switch {
	case cfg.Registry != nil:
		m.reg = cfg.Registry
	case cfg.RegistryPath != "":
		m.reg = coord.FileStore{Path: cfg.RegistryPath}
	}
	if err := m.initRoles(); err != nil {
		return nil, err
	}
	m.slot.hcl = cfg.Allocator
	m.slot.persist = make(chan struct{}, 1)
	if deps.Allocator != nil && deps.Launcher == nil {
		_, info, _ := deps.Allocator.Current()
		m.slot.active = &slotPlugin{choice: AllocatorChoice{Name: info.Name}, handle: staticHandle{deps.Allocator}, since: m.start}
		m.slot.generation = 1
	}
	m.metrics.registry.MustRegister(liveTasks{m: m, desc: prometheus.NewDesc("corral_master_tasks",
		"Live tasks by state.", []string{"state"}, nil)}, newClusterResources(m))
	m.metrics.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "corral_master_leader",
		Help: "1 while this master leads, 0 while it stands by."}, func() float64 {
		if leader, _ := m.Leadership(); leader {
			return 1
		}
		return 0
	}))
	return m, nil
}

// SetLeadership tells the master how to answer "do you lead, and who
// does?" for the operator API. A master leads until told otherwise
// (standalone mode); in HA mode cmd/corral sets it on every change, with a
// function that asks the coordinator while standing by.
func (m *Master) SetLeadership(f func() (leader bool, leaderAddress string)) {
	m.leadership.Store(&f)
}

// Leadership reports what the function given to SetLeadership says.
func (m *Master) Leadership() (leader bool, leaderAddress string) {
	f := m.leadership.Load()
	if f == nil {
		return true, ""
	}
	return (*f)()
}

// registryName names the registry for logs, "" when there is none.
func (m *Master) registryName() string {
	if m.reg == nil {
		return ""
	}
	return m.reg.String()
}

// ID identifies this master instance.
func (m *Master) ID() string { return m.id }

// Run drives the allocation loop and the timers until ctx ends. It starts
// the allocator first unless StartAllocator did, and stops the allocator
// plugins when it returns.
func (m *Master) Run(ctx context.Context) error {
	if err := m.StartAllocator(ctx); err != nil {
		return err
	}
	defer m.stopSlot()
	m.mu.Lock()
	m.leadingSince = m.now()
	m.mu.Unlock()
	m.loadRecords(ctx)
	var wg sync.WaitGroup
	for _, w := range []*recordWriter{m.agentRecords, m.frameworkRecords} {
		if w != nil {
			wg.Add(1)
			go func() { defer wg.Done(); w.run(ctx) }()
		}
	}
	wg.Add(4)
	go func() { defer wg.Done(); m.allocationLoop(ctx) }()
	go func() { defer wg.Done(); m.persistLoop(ctx) }()
	go func() { defer wg.Done(); m.sampleLoop(ctx) }()
	go func() { defer wg.Done(); m.timerLoop(ctx) }()
	<-ctx.Done()
	wg.Wait()
	m.mu.Lock()
	for _, f := range m.frameworks {
		if f.sub != nil {
			f.sub.events.close()
		}
		for _, s := range f.standbys {
			s.sub.events.close()
		}
	}
	for _, a := range m.agents {
		if a.conn != nil {
			a.conn.out.close()
		}
	}
	m.mu.Unlock()
	return nil
}

// Close stops the allocator plugins of a master that will not Run: a warm
// standby discarded because the registry changed while it waited. Run
// stops them itself when it returns.
func (m *Master) Close() { m.stopSlot() }

// logicalNow is the allocation clock: milliseconds since the master started.
func (m *Master) logicalNow() allocator.LogicalTime {
	return allocator.LogicalTime(m.now().Sub(m.start) / time.Millisecond)
}

// requestAllocation asks for an allocation cycle soon; requests coalesce.
func (m *Master) requestAllocation(t allocator.Trigger) {
	select {
	case m.trigger <- t:
	default:
	}
}

// timerLoop handles everything that happens because time passes: offer
// expiry, scheduler heartbeats, agent and framework failover timeouts, the
// end of revocation grace periods. It reads the injected clock, so tests
// can move time.
func (m *Master) timerLoop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastHeartbeat := m.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.timerTick(&lastHeartbeat)
	}
}

// rescanAgentsLocked makes the next tick look at the agents (one just
// disconnected: its re-registration timeout starts).
func (m *Master) rescanAgentsLocked() { m.agentScanAt = time.Time{} }

// farFuture is a scan time that only an event brings forward.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// timerTick does the timer work due at the clock's now; lastHeartbeat is
// when heartbeats were last sent, updated when they are sent again.
func (m *Master) timerTick(lastHeartbeat *time.Time) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.OfferTimeout > 0 && !now.Before(m.offerScanAt) {
		next := farFuture
		for _, o := range m.offers {
			if now.Sub(o.createdAt) >= m.cfg.OfferTimeout {
				m.log.Debug("offer expired", "offer_id", o.id, "framework_id", o.frameworkID)
				m.rescindLocked(o, 0)
			} else if d := o.createdAt.Add(m.cfg.OfferTimeout); d.Before(next) {
				next = d
			}
		}
		m.offerScanAt = next
	}
	if now.Sub(*lastHeartbeat) >= m.cfg.HeartbeatInterval {
		*lastHeartbeat = now
		for _, f := range m.frameworks {
			if f.sub != nil {
				f.sub.send(&corralpb.Event{Event: &corralpb.Event_Heartbeat_{Heartbeat: &corralpb.Event_Heartbeat{}}})
			}
		}
	}
	if !now.Before(m.agentScanAt) {
		next := farFuture
		for _, a := range m.agents {
			if a.connected {
				continue
			}
			if now.Sub(a.disconnectedAt) >= m.cfg.AgentReregisterTimeout {
				m.log.Warn("agent did not re-register in time; removing it", "agent_id", a.info.Id,
					"timeout", m.cfg.AgentReregisterTimeout)
				m.removeAgentLocked(a, "agent did not re-register within "+m.cfg.AgentReregisterTimeout.String())
			} else if d := a.disconnectedAt.Add(m.cfg.AgentReregisterTimeout); d.Before(next) {
				next = d
			}
		}
		m.agentScanAt = next
	}
	m.expireRevocationsLocked(now)
	m.expireExpectedLocked(now)
	for _, f := range m.frameworks {
		if !f.connected && now.Sub(f.disconnectedAt) >= m.failoverTimeout(f) {
			m.log.Info("framework failover timeout expired; removing it", "framework_id", f.info.Id)
			m.removeFrameworkLocked(f)
		}
	}
}

// FailoverTimeout is how long the master keeps a framework (and its tasks)
// after its scheduler disconnects; 0 for an unknown framework.
func (m *Master) FailoverTimeout(frameworkID string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.frameworks[frameworkID]; f != nil {
		return m.failoverTimeout(f)
	}
	return 0
}

func (m *Master) failoverTimeout(f *frameworkEntry) time.Duration {
	d := time.Duration(f.info.FailoverTimeoutSeconds * float64(time.Second))
	if f.info.FailoverTimeoutSeconds == 0 {
		// Unset (proto3 cannot tell it from 0): one week, not Mesos's 0,
		// which kills every task the moment a scheduler or the master
		// fails over.
		d = m.cfg.DefaultFailoverTimeout
	}
	if m.cfg.FrameworkFailoverMax > 0 && d > m.cfg.FrameworkFailoverMax {
		d = m.cfg.FrameworkFailoverMax
	}
	// A framework known only from an agent's report after a master
	// failover has had no chance to re-subscribe: its own timeout (0 by
	// default) would kill its tasks before its scheduler finds the new
	// master. Mesos never times such frameworks out and leaks their tasks
	// (MESOS-4659); corral gives them the agents' re-registration window.
	if f.recovered && d < m.cfg.AgentReregisterTimeout {
		d = m.cfg.AgentReregisterTimeout
	}
	return d
}

// rescindLocked withdraws an outstanding offer and returns its resources.
func (m *Master) rescindLocked(o *offerEntry, refuse float64) {
	m.removeOfferLocked(o)
	m.recoverLocked(o.frameworkID, o.role, o.agentID, o.resources, refuse)
	m.metrics.offersRescinded.WithLabelValues(o.role).Inc()
	if f := m.frameworks[o.frameworkID]; f != nil && f.sub != nil {
		f.sub.send(&corralpb.Event{Event: &corralpb.Event_Rescind_{Rescind: &corralpb.Event_Rescind{OfferId: o.id}}})
	}
}

func (m *Master) removeOfferLocked(o *offerEntry) {
	if m.offers[o.id] == o {
		m.tally.addRole(o.role, o.resources, -1)
	}
	delete(m.offers, o.id)
	if f := m.frameworks[o.frameworkID]; f != nil {
		delete(f.offers, o.id)
	}
}

// recoverLocked returns resources of a framework on an agent to the pool
// and tells the allocator, optionally with a decline filter.
func (m *Master) recoverLocked(frameworkID, role, agentID string, res resources.Resources, refuse float64) {
	if res.IsEmpty() {
		return
	}
	if a := m.agents[agentID]; a != nil {
		m.addAgentUsedLocked(a, res, -1)
	}
	now := m.logicalNow()
	m.deltas.add(now, allocator.Delta{
		Kind:          allocator.Recovered,
		Allocation:    &allocator.Allocation{FrameworkID: frameworkID, Role: role, AgentID: agentID, Resources: res},
		RefuseSeconds: refuse,
	})
	if f := m.frameworks[frameworkID]; f != nil && refuse > 0 {
		// The plugin keeps filters, but a plugin that restarts or is
		// re-initialized must get them back from the snapshot: a framework
		// must not be offered again what it declined for an hour.
		f.addFilter(now, allocator.Filter{FrameworkID: frameworkID, Role: role, AgentID: agentID,
			Resources: res, ExpiresAt: now + allocator.LogicalTime(refuse*1000)})
	}
	m.requestAllocation(allocator.TriggerEvent)
}

// minFilterSweep is the fewest filters a framework holds before addFilter
// looks for expired ones.
const minFilterSweep = 64

// addFilter keeps fl for snapshots. The expired filters are dropped once
// the list has doubled since the last sweep, not at every append: a
// framework accepting thousands of offers a second holds tens of
// thousands of live filters (the refusal Accept's filters put on what its
// tasks leave unused), and a sweep per append was 6.5% of the master's
// CPU in make bench-scale at 50k agents. Snapshots skip the expired ones.
func (f *frameworkEntry) addFilter(now allocator.LogicalTime, fl allocator.Filter) {
	if len(f.filters) >= f.filtersSweepAt {
		f.filters = activeFilters(f.filters, now)
		f.filtersSweepAt = max(minFilterSweep, 2*len(f.filters))
	}
	f.filters = append(f.filters, fl)
}

// activeFilters drops the filters that have expired at now.
func activeFilters(fs []allocator.Filter, now allocator.LogicalTime) []allocator.Filter {
	return slices.DeleteFunc(fs, func(f allocator.Filter) bool { return f.ExpiresAt <= now })
}

// sendUpdateLocked forwards a status update to the framework, if connected.
func (m *Master) sendUpdateLocked(frameworkID string, st *corralpb.TaskStatus) {
	if f := m.frameworks[frameworkID]; f != nil && f.sub != nil {
		f.sub.send(&corralpb.Event{Event: &corralpb.Event_Update_{Update: &corralpb.Event_Update{Status: st}}})
	}
}

// masterStatus builds a status update generated by the master itself; such
// updates carry no uuid and need no acknowledgement.
func (m *Master) masterStatus(t *taskEntry, state corralpb.TaskState, reason corralpb.TaskStatus_Reason, msg string) *corralpb.TaskStatus {
	return &corralpb.TaskStatus{
		TaskId:          t.info.TaskId,
		State:           state,
		Message:         msg,
		Source:          corralpb.TaskStatus_SOURCE_MASTER,
		Reason:          reason,
		AgentId:         t.agentID,
		TimestampUnixMs: m.now().UnixMilli(),
	}
}

// setTaskStateLocked records a task's new state, recovers its resources
// when it turns terminal and moves it to the completed list.
func (m *Master) setTaskStateLocked(t *taskEntry, st *corralpb.TaskStatus) {
	if len(t.history) == 0 {
		t.history = append(t.history, transition{state: t.state, at: t.createdAt})
	}
	if last := t.history[len(t.history)-1]; last.state != st.State || last.reason != reasonName(st.Reason) {
		at := m.now()
		if st.TimestampUnixMs > 0 {
			at = time.UnixMilli(st.TimestampUnixMs)
		}
		t.history = append(t.history, transition{state: st.State, at: at, reason: reasonName(st.Reason),
			message: st.Message, source: sourceName(st.Source)})
		if len(t.history) > maxTaskHistory {
			// Keep the first state (when the task was created) and the
			// latest ones.
			t.history = append(t.history[:1], t.history[len(t.history)-maxTaskHistory+1:]...)
		}
	}
	if _, live := m.agentTasks[t.agentID][t]; live {
		m.tally.states[t.state]--
		if terminal(st.State) {
			m.tally.addRole(t.role, t.resources, -1)
		} else {
			m.tally.states[st.State]++
		}
	}
	t.state = st.State
	t.status = st
	m.metrics.observeTaskState(st.State)
	if !terminal(st.State) || t.recovered {
		return
	}
	t.recovered = true
	m.unindexTaskLocked(t)
	if f := m.frameworks[t.frameworkID]; f != nil {
		delete(f.tasks, t.info.TaskId)
		f.completed = append(f.completed, t)
		if len(f.completed) > m.cfg.MaxCompletedTasks {
			f.completed = f.completed[len(f.completed)-m.cfg.MaxCompletedTasks:]
		}
	}
	m.revocationEndedLocked(t)
	m.taskGoneLocked(t)
	m.recoverLocked(t.frameworkID, t.role, t.agentID, t.resources, 0)
}

// addAgentUsedLocked adds res to (sign 1) or takes it from (sign -1) what
// the agent's tasks, executors and offers use, keeping the tally.
func (m *Master) addAgentUsedLocked(a *agentEntry, res resources.Resources, sign int) {
	if res.IsEmpty() {
		return
	}
	m.tally.addAgent(a, -1)
	if sign > 0 {
		a.used = a.used.Add(res)
	} else {
		a.used = a.used.Subtract(res)
	}
	m.tally.addAgent(a, 1)
}

// removeAgentLocked forgets an agent: its offers are rescinded and its
// tasks are LOST.
func (m *Master) removeAgentLocked(a *agentEntry, why string) {
	for _, o := range m.offers {
		if o.agentID == a.info.Id {
			m.rescindLocked(o, 0)
		}
	}
	m.batchGuaranteesLocked(func() {
		for _, t := range m.agentTasksLocked(a.info.Id) {
			st := m.masterStatus(t, corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_REASON_AGENT_REMOVED, why)
			m.setTaskStateLocked(t, st)
			m.sendUpdateLocked(t.frameworkID, st)
		}
		for _, f := range m.frameworks {
			if f.sub != nil {
				f.sub.send(&corralpb.Event{Event: &corralpb.Event_Failure_{Failure: &corralpb.Event_Failure{AgentId: a.info.Id, Message: why}}})
			}
		}
	})
	if a.conn != nil {
		a.conn.out.close()
	}
	m.dropAgentExecutorsLocked(a.info.Id)
	m.tally.addAgent(a, -1)
	if a.drain != nil {
		m.tally.draining--
	}
	delete(m.agents, a.info.Id)
	// Kept in the registry as unreachable: if it comes back, it is
	// re-admitted with its tasks.
	m.markUnreachableLocked(a.info.Id, a.info.Hostname)
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.AgentRemoved, AgentID: a.info.Id})
	m.metrics.agents.Set(float64(len(m.agents)))
}

// removeFrameworkLocked tears a framework down: offers are withdrawn, its
// tasks are killed on their agents, and it is forgotten.
func (m *Master) removeFrameworkLocked(f *frameworkEntry) {
	for _, o := range f.offers {
		m.removeOfferLocked(o)
		m.recoverLocked(o.frameworkID, o.role, o.agentID, o.resources, 0)
	}
	for _, a := range m.agents {
		if a.conn != nil {
			a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_ShutdownFramework{
				ShutdownFramework: &agentproto.ShutdownFramework{FrameworkId: f.info.Id}}})
		}
	}
	m.batchGuaranteesLocked(func() {
		for _, t := range f.tasks {
			st := m.masterStatus(t, corralpb.TaskState_TASK_KILLED, corralpb.TaskStatus_REASON_FRAMEWORK_REMOVED, "framework removed")
			m.setTaskStateLocked(t, st)
		}
	})
	m.dropExecutorsLocked(f)
	if f.sub != nil {
		f.sub.events.close()
		f.sub = nil
	}
	for _, s := range f.standbys {
		s.sub.events.close()
	}
	f.standbys = nil
	fv := m.frameworkViewLocked(f)
	removed := m.now()
	fv.RemovedAt = &removed
	fv.Connected = false
	m.completedFrameworks = append(m.completedFrameworks, fv)
	if n := len(m.completedFrameworks) - m.cfg.MaxCompletedFrameworks; n > 0 {
		m.completedFrameworks = append(m.completedFrameworks[:0:0], m.completedFrameworks[n:]...)
	}
	delete(m.frameworks, f.info.Id)
	m.forgetFrameworkLocked(f.info.Id)
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.FrameworkRemoved, FrameworkID: f.info.Id})
	m.metrics.frameworks.Set(float64(len(m.frameworks)))
}

// frameworkView is the allocator's view of a framework.
func frameworkView(f *frameworkEntry) *allocator.Framework {
	fw := &allocator.Framework{
		ID:              f.info.Id,
		Roles:           sortedKeys(f.roles),
		Active:          f.connected,
		SuppressedRoles: sortedKeys(f.suppressed),
		Capabilities:    append([]string(nil), f.info.Capabilities...),
	}
	if len(f.minAllocatable) > 0 {
		// A copy: deltas outlive this call, and the entry's map is
		// replaced when the framework re-subscribes.
		fw.MinAllocatable = make(map[string][]resources.Resources, len(f.minAllocatable))
		for r, alts := range f.minAllocatable {
			fw.MinAllocatable[r] = append([]resources.Resources(nil), alts...)
		}
	}
	return fw
}

func agentView(a *agentEntry) *allocator.Agent {
	return &allocator.Agent{
		ID:         a.info.Id,
		Hostname:   a.info.Hostname,
		Total:      a.total,
		Attributes: a.info.Attributes,
		// A draining agent is inactive to the allocator: nothing new
		// should land on it.
		Active: a.connected && a.drain == nil,
	}
}

func newID(prefix string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// reasonName is a status reason without its enum prefix, "" for none.
func reasonName(r corralpb.TaskStatus_Reason) string {
	if r == 0 {
		return ""
	}
	return strings.TrimPrefix(r.String(), "REASON_")
}

func sourceName(s corralpb.TaskStatus_Source) string {
	if s == 0 {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "SOURCE_"))
}
