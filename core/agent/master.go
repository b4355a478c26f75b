package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/corral-project/corral/core/agent/statusupdate"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/sdk/discovery"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

type agentMessage = agentproto.AgentMessage

// Reconnect backoff and the heartbeat used when the master names none.
const (
	minReconnectBackoff     = 100 * time.Millisecond
	maxReconnectBackoff     = 10 * time.Second
	defaultHeartbeatSeconds = 15
	// outboxSize bounds messages queued for the stream writer; when full,
	// status updates wait for their retry rather than block the agent.
	outboxSize = 4096
)

var errNotConnected = errors.New("not connected to the master")

// connectLoop keeps a registered stream to the leading master until ctx
// ends. The master spec may name several masters or a Consul (see
// sdk/discovery): a master that does not lead redirects to the one that
// does, and a lost leader is replaced by whichever master is elected next.
func (a *Agent) connectLoop(ctx context.Context) {
	finder, err := discovery.Parse(a.cfg.Master)
	if err != nil {
		// Only a malformed spec gets here; nothing will fix it by retrying.
		a.logger.Error("master address unusable", "master", a.cfg.Master, "error", err)
		return
	}
	logger := a.logger.Named("master")
	backoff := minReconnectBackoff
	failed := ""
	redirects := 0
	for ctx.Err() == nil {
		addr, err := finder.Pick(ctx, failed)
		if err == nil {
			var registered bool
			registered, err = a.dial(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			if registered {
				backoff = minReconnectBackoff
			}
			if leader, ok := discovery.LeaderFrom(err); ok && leader != "" && redirects < 3 {
				// Follow the redirect at once; a few hops at most, so
				// standbys with stale views cannot bounce us forever.
				redirects++
				finder.Hint(leader)
				logger.Info("master is not the leader; following the redirect", "master", addr, "leader", leader)
				failed = ""
				continue
			}
			failed = addr
			if _, isRedirect := discovery.LeaderFrom(err); isRedirect {
				// A master that knows no leader yet (one just elected
				// and not serving, or an election under way): try again
				// after the backoff without waiting for the leader key
				// to name another master.
				failed = ""
			}
		}
		redirects = 0
		logger.Warn("master connection lost; reconnecting", "master", finder.String(), "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxReconnectBackoff)
	}
}

// dial opens a connection to one master and serves a session over it.
func (a *Agent) dial(ctx context.Context, addr string) (bool, error) {
	creds, err := a.cfg.TLS.GRPCCredentials()
	if err != nil {
		return false, fmt.Errorf("master %s: %w", addr, err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if a.cfg.Credential != nil { // credential.go
		opts = append(opts, grpc.WithPerRPCCredentials(a.cfg.Credential))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return false, fmt.Errorf("master %s: %w", addr, err)
	}
	defer conn.Close()
	return a.session(ctx, agentproto.NewAgentGatewayClient(conn))
}

// session registers over one stream and serves it until it breaks. It
// reports whether registration succeeded.
func (a *Agent) session(ctx context.Context, client agentproto.AgentGatewayClient) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, reg, err := agentproto.Handshake(ctx, client, a.registerMessage())
	if err != nil {
		return false, err
	}
	a.registered(reg)

	out := make(chan *agentMessage, outboxSize)
	writeErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-out:
				if err := stream.Send(m); err != nil {
					writeErr <- fmt.Errorf("send: %w", err)
					cancel()
					return
				}
			}
		}
	}()
	a.connMu.Lock()
	a.out = out
	a.connMu.Unlock()
	defer func() {
		a.connMu.Lock()
		a.out = nil
		a.connMu.Unlock()
	}()
	go a.heartbeat(ctx, reg.GetHeartbeatIntervalSeconds())
	// The old stream may have lost what was in flight.
	a.updates.ResendAll()

	for {
		m, err := stream.Recv()
		if err != nil {
			select {
			case werr := <-writeErr:
				return true, werr
			default:
				return true, fmt.Errorf("receive: %w", err)
			}
		}
		a.handle(m)
	}
}

func (a *Agent) heartbeat(ctx context.Context, seconds float64) {
	if seconds <= 0 {
		seconds = defaultHeartbeatSeconds
	}
	tick := time.NewTicker(time.Duration(seconds * float64(time.Second)))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := a.send(&agentMessage{Msg: &agentproto.AgentMessage_Heartbeat{Heartbeat: &agentproto.Heartbeat{}}}); err != nil {
				a.logger.Debug("heartbeat not sent", "error", err)
			}
		}
	}
}

// registered keeps the ID the master gave, in memory and on disk.
func (a *Agent) registered(reg *agentproto.Registered) {
	a.mu.Lock()
	old, oldSecret := a.id, a.secret
	a.id = reg.GetAgentId()
	if reg.GetSecret() != "" {
		a.secret = reg.GetSecret()
	}
	a.mu.Unlock()
	// The secret first: an ID on disk without its secret could not
	// re-register.
	if reg.GetSecret() != "" && reg.GetSecret() != oldSecret {
		if err := storeSecret(a.cfg.secretFile(), reg.GetSecret()); err != nil {
			a.logger.Error("persist agent secret", "error", err)
		}
	}
	if old != "" && old != reg.GetAgentId() {
		a.logger.Warn("master assigned a new agent ID", "old", old, "new", reg.GetAgentId())
	}
	if err := storeID(a.cfg.idFile(), reg.GetAgentId()); err != nil {
		a.logger.Error("persist agent ID", "error", err)
	}
	a.persistAgent(reg.GetAgentId())
	a.logger.Info("registered with master", "agent_id", reg.GetAgentId(), "reregistered", old != "")
}

// registerMessage describes the agent and every task that is not terminal.
func (a *Agent) registerMessage() *agentMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	reg := &agentproto.Register{
		Agent: &corralpb.AgentInfo{
			Id:         a.id,
			Hostname:   a.cfg.Hostname,
			Resources:  a.resources.ToProto(),
			Attributes: a.cfg.Attributes,
			Url:        a.url,
		},
		Version: Version,
		Secret:  a.secret,
	}
	// Every task the agent still holds: live ones, and ended ones whose
	// terminal update the framework has not acknowledged yet (they are
	// forgotten on the acknowledgement). Leaving the latter out would let
	// the master call them LOST just before their FINISHED arrives.
	for _, t := range a.tasks {
		if isExecutorContainer(t) {
			continue // reported as an executor below
		}
		reg.Tasks = append(reg.Tasks, &agentproto.RunningTask{Framework: t.framework, Task: t.info, State: t.state})
	}
	reg.Executors = a.runningExecutorsLocked()
	return &agentMessage{Msg: &agentproto.AgentMessage_Register{Register: reg}}
}

// send queues a message for the stream writer without blocking.
func (a *Agent) send(m *agentMessage) error {
	a.connMu.Lock()
	defer a.connMu.Unlock()
	if a.out == nil {
		return errNotConnected
	}
	select {
	case a.out <- m:
		return nil
	default:
		return errors.New("master connection backlogged")
	}
}

// sendUpdate is the status update manager's transport.
func (a *Agent) sendUpdate(u statusupdate.Update) error {
	return a.send(&agentMessage{Msg: &agentproto.AgentMessage_StatusUpdate{
		StatusUpdate: &agentproto.StatusUpdate{FrameworkId: u.FrameworkID, Status: u.Status},
	}})
}

// handle dispatches one master message. It must not block: long work runs
// in the task's own goroutines.
func (a *Agent) handle(m *agentproto.MasterMessage) {
	switch msg := m.GetMsg().(type) {
	case *agentproto.MasterMessage_Registered:
		a.registered(msg.Registered)
	case *agentproto.MasterMessage_RunTask:
		a.runTask(msg.RunTask.GetFramework(), msg.RunTask.GetTask())
	case *agentproto.MasterMessage_KillTask:
		k := msg.KillTask
		a.killRequest(k.GetFrameworkId(), k.GetTaskId(), time.Duration(k.GetGraceSeconds()*float64(time.Second)))
	case *agentproto.MasterMessage_Ack:
		ack := msg.Ack
		if a.updates.Ack(ack.GetFrameworkId(), ack.GetTaskId(), ack.GetUuid()) {
			go a.forgetUpdate(taskKey{ack.GetFrameworkId(), ack.GetTaskId()}, ack.GetUuid())
		}
	case *agentproto.MasterMessage_ShutdownFramework:
		a.shutdownFramework(msg.ShutdownFramework.GetFrameworkId())
	case *agentproto.MasterMessage_FrameworkMessage:
		a.frameworkMessage(msg.FrameworkMessage)
	case *agentproto.MasterMessage_ShutdownExecutor:
		se := msg.ShutdownExecutor
		a.mu.Lock()
		ex := a.executors[execKey{se.GetFrameworkId(), se.GetExecutorId()}]
		a.mu.Unlock()
		if ex != nil {
			ex.logger.Info("framework asked to shut its executor down")
			go a.shutdownCustomExecutor(ex)
		}
	case *agentproto.MasterMessage_Heartbeat:
	default:
		a.logger.Warn("ignoring unknown master message", "type", fmt.Sprintf("%T", m.GetMsg()))
	}
}

// killRequest handles KillTask; an unknown task is reported lost so the
// master and framework can reconcile.
func (a *Agent) killRequest(frameworkID, taskID string, grace time.Duration) {
	k := taskKey{frameworkID, taskID}
	a.mu.Lock()
	t, ok := a.tasks[k]
	if !ok {
		ghost := &task{key: k}
		st := a.newStatus(ghost, corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_TASK_UNKNOWN, "task unknown to the agent")
		a.mu.Unlock()
		a.report(ghost, st)
		a.logger.Info("kill for unknown task; reported lost", "framework_id", frameworkID, "task_id", taskID)
		return
	}
	a.mu.Unlock()
	a.killTask(t, a.graceFor(t, grace))
}

// shutdownFramework kills a departed framework's tasks and drops its
// unacknowledged updates: nobody is left to acknowledge them.
func (a *Agent) shutdownFramework(frameworkID string) {
	a.mu.Lock()
	var live []*task
	for k, t := range a.tasks {
		if k.framework != frameworkID {
			continue
		}
		t.frameworkGone = true
		if t.terminal {
			delete(a.tasks, k)
		} else {
			live = append(live, t)
		}
	}
	dropped := a.updates.DropFramework(frameworkID)
	a.mu.Unlock()
	a.dropCheckpointedFramework(frameworkID)
	a.logger.Info("shutting down framework", "framework_id", frameworkID, "tasks", len(live), "dropped_updates", dropped)
	for _, t := range live {
		a.killTask(t, a.graceFor(t, 0))
	}
}
