package master

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// AgentGateway serves the agents' Connect streams.
type AgentGateway struct{ m *Master }

// AgentGateway returns the gRPC implementation of the agent protocol.
func (m *Master) AgentGateway() agentproto.AgentGatewayServer { return &AgentGateway{m: m} }

// Connect registers an agent and then exchanges messages with it until the
// stream breaks.
func (g *AgentGateway) Connect(stream agentproto.AgentGateway_ConnectServer) error {
	m := g.m
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if reg == nil || reg.Agent == nil {
		return status.Error(codes.InvalidArgument, "connect: the first message must be a register with agent info")
	}
	total, err := resources.FromProto(reg.Agent.Resources)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "connect: agent resources: %v", err)
	}
	if total.IsEmpty() {
		return status.Error(codes.InvalidArgument, "connect: agent reports no resources")
	}
	if err := m.Authorize(authn.Principal(stream.Context()), acl.RegisterAgents, reg.Agent.Hostname); err != nil {
		return status.Error(codes.PermissionDenied, "connect: "+err.Error())
	}
	// A new agent's ID is chosen here and made durable in the registry
	// before the agent hears it (see admitAgent), as is an ID the registry
	// does not hold yet (an agent of a cluster older than the registry).
	assigned := reg.Agent.Id
	if assigned == "" {
		assigned = newID("agent")
	} else if err := agentproto.ValidateAgentID(assigned); err != nil {
		return status.Errorf(codes.InvalidArgument, "connect: %v", err)
	}
	if err := m.admitAgent(stream.Context(), assigned, reg.Agent.Hostname); err != nil {
		return status.Errorf(codes.Unavailable, "connect: recording the agent in the registry: %v", err)
	}
	conn := &agentConn{out: newQueue[*agentproto.MasterMessage]()}
	agentID, err := m.registerAgent(reg, total, conn, assigned)
	if err != nil {
		return err
	}
	// Two goroutines per agent, not three: this one sends, one receives.
	// (At 50,000 agents each goroutine more is some 8 KiB of stack per
	// agent in the master.) The receiver ends the send loop through ctx;
	// the send loop's return ends the stream, which ends the receiver.
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				cancel(err)
				return
			}
			switch {
			case msg.GetStatusUpdate() != nil:
				m.handleStatusUpdate(agentID, msg.GetStatusUpdate())
			case msg.GetExecutorMessage() != nil:
				m.handleExecutorMessage(agentID, msg.GetExecutorMessage())
			case msg.GetExecutorExited() != nil:
				m.handleExecutorExited(agentID, msg.GetExecutorExited())
			}
		}
	}()
	for {
		msg, ok := conn.out.pop(ctx)
		if !ok {
			err = context.Cause(ctx)
			if ctx.Err() == nil {
				err = nil // the queue was closed: replaced or removed
			}
			break
		}
		if err = stream.Send(msg); err != nil {
			break
		}
	}
	cancel(nil)
	m.agentDisconnected(agentID, conn)
	return err
}

// newSecret is a fresh agent secret: 128 random bits, hex.
func newSecret() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// registerAgent admits a new agent or takes back a known one.
// assigned is the ID for an agent that registers without one ("": a new
// one is made).
func (m *Master) registerAgent(reg *agentproto.Register, total resources.Resources, conn *agentConn, assigned string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := reg.Agent
	if info.Id != "" {
		if err := agentproto.ValidateAgentID(info.Id); err != nil {
			return "", status.Errorf(codes.InvalidArgument, "connect: %v", err)
		}
	}
	a := m.agents[info.Id]
	if a != nil && sha256.Sum256([]byte(reg.Secret)) != a.secretHash {
		// Refused before anything is touched: the live agent keeps its
		// stream, resources and tasks.
		m.metrics.agentSecretRefusals.Inc()
		m.log.Warn("refused a registration with a known agent ID but without its secret",
			"agent_id", info.Id, "hostname", info.Hostname, "connected", a.connected)
		return "", status.Errorf(codes.PermissionDenied,
			"connect: agent %s is registered and the secret presented for it is missing or wrong; "+
				"an agent ID is bound to the secret it got at first registration (remove the agent's work dir to register as a new agent)", info.Id)
	}
	secret := reg.Secret
	id := info.Id
	if id == "" {
		id = assigned
	}
	if id == "" {
		id = newID("agent")
	}
	expected := m.agentBackLocked(id, info.Hostname)
	if info.Id != "" && a == nil && (!expected || m.log.IsDebug()) {
		// A master that failed over re-admits agents by their IDs: that
		// is how it rebuilds its soft state. The secret the agent presents
		// binds the ID again (secrets are not carried across failover).
		// One the registry expected is part of the burst agentBackLocked
		// sums up: a line per agent under the books' lock only slows the
		// burst down.
		logf := m.log.Info
		if expected {
			logf = m.log.Debug
		}
		logf("re-admitting agent not known to this master", "agent_id", info.Id)
	}
	if secret == "" {
		secret = newSecret()
	}
	stored := &corralpb.AgentInfo{Id: id, Hostname: info.Hostname, Resources: total.ToProto(), Attributes: info.Attributes, Url: info.Url}
	if m.recoveringLocked(m.now()) {
		// A master that took over is being sent the whole cluster at
		// once: the allocator is re-initialized from one snapshot after
		// the burst instead of replaying a dozen deltas per agent (see
		// suspendDeltasLocked).
		m.suspendDeltasLocked()
	}
	added := a == nil
	if added {
		a = &agentEntry{info: stored, total: total, registeredAt: m.now(), secretHash: sha256.Sum256([]byte(secret)),
			conn: conn, connected: true}
		m.agents[id] = a
		m.tally.addAgent(a, 1)
		// Added connected: no AgentUpdated follows (the allocator would
		// recompute the agent's free resources from all allocations).
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.AgentAdded, Agent: agentView(a)})
	} else {
		if a.conn != nil {
			a.conn.out.close() // the previous connection is dead or replaced
		}
		if !a.total.Equal(total) {
			m.log.Info("agent resources changed on re-registration", "agent_id", id, "old", a.total.String(), "new", total.String())
		}
		m.tally.addAgent(a, -1)
		a.info, a.total = stored, total
		a.conn, a.connected = conn, true
		m.tally.addAgent(a, 1)
	}
	m.reconcileAgentTasksLocked(a, reg.Tasks)
	m.adoptExecutorsLocked(a, reg.Executors)
	m.resendRevocationKillsLocked(a)
	if !added {
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.AgentUpdated, Agent: agentView(a)})
		a.closedAt = m.deltas.version
	}
	conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_Registered{Registered: &agentproto.Registered{
		AgentId: id, HeartbeatIntervalSeconds: m.cfg.HeartbeatInterval.Seconds(), Secret: secret}}})
	m.metrics.agents.Set(float64(len(m.agents)))
	// An agent that is part of a failover's burst is logged at debug
	// (agentBackLocked sums the burst up): a line per agent, written
	// under the books' lock, would only slow the burst down.
	if !expected || m.log.IsDebug() {
		logf := m.log.Info
		if expected {
			logf = m.log.Debug
		}
		logf("agent registered", "agent_id", id, "hostname", info.Hostname, "resources", total.String(),
			"tasks", len(reg.Tasks), "reregistered", info.Id != "")
	}
	m.requestAllocation(allocator.TriggerEvent)
	return id, nil
}

// reconcileAgentTasksLocked merges what a (re-)registering agent runs with
// the master's task table: unknown tasks are adopted (master failover) and
// tasks the agent no longer has are LOST.
//
// It takes ownership of running's TaskInfos (a message just received, which
// nothing else holds): the master keeps them as they are instead of
// cloning a hundred thousand of them when a failed-over master is sent the
// whole cluster at once.
func (m *Master) reconcileAgentTasksLocked(a *agentEntry, running []*agentproto.RunningTask) {
	type key struct{ framework, task string }
	reported := make(map[key]bool, len(running))
	// Tasks of one agent mostly share a shape: parse each distinct
	// resource list once (Resources values are immutable, so sharing one
	// is safe).
	var memo resourceMemo
	// An agent's tasks mostly belong to one framework: its first role
	// (sorted, an allocation) is worked out once per run of them.
	var lastF *frameworkEntry
	var lastRole string
	// What the adopted tasks use, summed in place and added to the
	// agent's use once (one Add per task allocated a new value each).
	var adopted resources.Sum
	for _, rt := range running {
		fi, ti := rt.GetFramework(), rt.GetTask()
		if fi.GetId() == "" || ti.GetTaskId() == "" {
			continue
		}
		reported[key{fi.Id, ti.TaskId}] = true
		f := m.frameworks[fi.Id]
		if f == nil {
			// The framework has not re-subscribed yet: keep its tasks under
			// an inactive entry until it does or its re-subscribe window
			// ends (see failoverTimeout).
			info := cloneFramework(fi)
			f = &frameworkEntry{info: info, roles: map[string]bool{}, suppressed: map[string]bool{},
				tasks: map[string]*taskEntry{}, offers: map[string]*offerEntry{}, demands: map[string][]allocator.TaskShape{},
				disconnectedAt: m.now(), registeredAt: m.now(), recovered: true}
			for _, r := range info.Roles {
				f.roles[r] = true
			}
			if len(f.roles) == 0 {
				f.roles["*"] = true
			}
			// Best effort: the framework validated this when it subscribed
			// to an earlier master, and re-subscribing replaces it.
			if ma, err := minAllocatableFromInfo(info, f.roles); err == nil {
				f.minAllocatable = ma
			}
			m.frameworks[fi.Id] = f
			m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.FrameworkAdded, Framework: frameworkView(f)})
		}
		if f.tasks[ti.TaskId] != nil {
			continue
		}
		res, err := memo.parse(ti.Resources)
		if err != nil {
			m.log.Warn("agent reported a task with invalid resources", "agent_id", a.info.Id, "task_id", ti.TaskId, "error", err)
			continue
		}
		if f != lastF {
			lastF, lastRole = f, firstRole(f)
		}
		role := lastRole
		t := &taskEntry{info: ti, frameworkID: fi.Id, role: role, agentID: a.info.Id, resources: res,
			state: rt.State, createdAt: m.now()}
		t.status = m.masterStatus(t, rt.State, corralpb.TaskStatus_REASON_RECONCILIATION, "adopted from agent re-registration")
		if terminal(rt.State) {
			// Ended while this master did not know it; its terminal update
			// is on its way (the agent resends it until acknowledged).
			// Known as completed, it reconciles to its real end, and holds
			// no resources.
			if findCompleted(f, ti.TaskId) == nil {
				t.recovered = true
				f.completed = append(f.completed, t)
				if len(f.completed) > m.cfg.MaxCompletedTasks {
					f.completed = f.completed[len(f.completed)-m.cfg.MaxCompletedTasks:]
				}
			}
			continue
		}
		adopted.Add(res)
		if m.deltas.dropping() {
			// Suspended for a failover's burst (suspendDeltasLocked).
			m.deltas.skip()
		} else {
			m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.Allocated, Allocation: &allocator.Allocation{
				FrameworkID: fi.Id, Role: role, AgentID: a.info.Id, Resources: res}})
		}
		// The master cannot know when an adopted task really started; its
		// age counts from the adoption.
		m.addTaskLocked(f, t)
	}
	m.addAgentUsedLocked(a, adopted.Resources(), 1)
	m.batchGuaranteesLocked(func() {
		for _, t := range m.agentTasksLocked(a.info.Id) {
			if !reported[key{t.frameworkID, t.info.TaskId}] {
				st := m.masterStatus(t, corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_REASON_AGENT_DISCONNECTED,
					"agent re-registered without this task")
				m.setTaskStateLocked(t, st)
				m.sendUpdateLocked(t.frameworkID, st)
			}
		}
	})
}

// resourceMemo parses task resource lists, reusing the last result when
// the next list is the same (scalars only: the common task shape; other
// lists are parsed every time).
type resourceMemo struct {
	last []*corralpb.Resource
	res  resources.Resources
	ok   bool
}

func (r *resourceMemo) parse(in []*corralpb.Resource) (resources.Resources, error) {
	if r.ok && sameScalars(r.last, in) {
		return r.res, nil
	}
	res, err := resources.FromProto(in)
	if err != nil {
		r.ok = false
		return res, err
	}
	r.last, r.res, r.ok = in, res, true
	return res, nil
}

// sameScalars: a and b list the same scalar resources in the same order
// (false when either holds anything but scalars).
func sameScalars(a, b []*corralpb.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		sx, okx := x.GetValue().(*corralpb.Resource_Scalar)
		sy, oky := y.GetValue().(*corralpb.Resource_Scalar)
		if !okx || !oky || x.Name != y.Name || x.Role != y.Role || sx.Scalar != sy.Scalar ||
			len(x.ProtoReflect().GetUnknown()) > 0 || len(y.ProtoReflect().GetUnknown()) > 0 {
			return false
		}
	}
	return true
}

func firstRole(f *frameworkEntry) string {
	if rs := sortedKeys(f.roles); len(rs) > 0 {
		return rs[0]
	}
	return "*"
}

// agentDisconnected marks the agent inactive; its tasks keep running and
// it has AgentReregisterTimeout to come back.
func (m *Master) agentDisconnected(id string, conn *agentConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[id]
	if a == nil || a.conn != conn {
		return
	}
	a.conn.out.close()
	m.tally.addAgent(a, -1)
	a.conn, a.connected, a.disconnectedAt = nil, false, m.now()
	m.rescanAgentsLocked()
	for _, o := range m.offers {
		if o.agentID == id {
			m.rescindLocked(o, 0)
		}
	}
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.AgentUpdated, Agent: agentView(a)})
	a.closedAt = m.deltas.version
	m.log.Warn("agent disconnected", "agent_id", id, "reregister_timeout", m.cfg.AgentReregisterTimeout)
}

// handleStatusUpdate records an agent's status update and relays it to
// the framework, which acknowledges it back through the master.
func (m *Master) handleStatusUpdate(agentID string, su *agentproto.StatusUpdate) {
	st := su.GetStatus()
	if st == nil || st.TaskId == "" {
		m.log.Warn("agent sent an empty status update", "agent_id", agentID)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.metrics.statusUpdates.Inc()
	st.AgentId = agentID
	f := m.frameworks[su.FrameworkId]
	if f == nil {
		// Nobody will ever acknowledge it: do so on the framework's behalf
		// so the agent stops retrying.
		if a := m.agents[agentID]; a != nil && a.conn != nil && len(st.Uuid) > 0 {
			a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_Ack{Ack: &agentproto.AckUpdate{
				FrameworkId: su.FrameworkId, TaskId: st.TaskId, Uuid: st.Uuid}}})
		}
		return
	}
	if t := f.tasks[st.TaskId]; t != nil {
		if t.agentID != agentID {
			m.log.Warn("status update from an agent that does not run the task", "agent_id", agentID, "task_id", st.TaskId,
				"task_agent", t.agentID)
			return
		}
		preemptedStatus(t, st)
		// st is the message just received, which nothing else holds or
		// changes after this: the task keeps it, and the framework is sent
		// the same one (no proto.Clone, reflection on every update).
		m.setTaskStateLocked(t, st)
	} else if t := findCompleted(f, st.TaskId); t != nil && t.agentID == agentID {
		// A retried terminal update (not acknowledged yet) must read the
		// same as the first one.
		preemptedStatus(t, st)
	}
	m.sendUpdateLocked(f.info.Id, st)
}

// String is for logs.
func (g *AgentGateway) String() string { return fmt.Sprintf("agent-gateway(%s)", g.m.id) }
