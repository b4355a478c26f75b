// Package emulate runs many lightweight agents in one process (`corral
// agent -emulate N`), for failover figures, scale tests and simulations
// against a real master. Each emulated agent is a real client of the
// master's agent gateway, with its own stream, ID and resources, speaking
// the same protocol as core/agent: it registers (re-registering with its
// live tasks after a master failover), heartbeats, and runs tasks with a
// fake executor that turns each task into a timer. Status updates carry
// UUIDs and are retried, per task in order, until the current leader
// acknowledges them, as a real agent's status update manager does.
//
// A task runs for the duration its command asks (`sleep 3`, or argv
// ["sleep", "3"]), or its label "corral.emulate/duration" ("1.5s"), else
// Options.DefaultDuration (0: until killed). The label
// "corral.emulate/exit" = "failed" ends it TASK_FAILED instead of
// TASK_FINISHED.
package emulate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/sdk/discovery"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// Labels a task may carry to steer its fake executor.
const (
	LabelDuration = "corral.emulate/duration"
	LabelExit     = "corral.emulate/exit"
)

// Options configure a fleet of emulated agents.
type Options struct {
	// Master is a discovery spec (host:port, a list, consul://...).
	Master string
	// N is how many agents to run.
	N         int
	Resources resources.Resources
	// Hostname of agent i is HostnamePrefix-i.
	HostnamePrefix string
	Attributes     map[string]string
	// DefaultDuration is how long a task runs when neither its command nor
	// its labels say (0: until killed).
	DefaultDuration time.Duration
	// StatusRetry is the first retry interval of an unacknowledged
	// update; it doubles up to a minute. Default 10s.
	StatusRetry time.Duration
	// AgentsPerConn is how many agents share one HTTP/2 connection (each
	// keeps its own stream); default 50, well under the server's limit on
	// concurrent streams.
	AgentsPerConn int
	Logger        hclog.Logger
}

// Fleet is a running set of emulated agents.
type Fleet struct {
	opts       Options
	finder     *discovery.Finder
	agents     []*agent
	registered atomic.Int64
}

// New checks opts and builds the fleet; Run starts it.
func New(opts Options) (*Fleet, error) {
	if opts.N <= 0 {
		return nil, fmt.Errorf("emulate: want at least one agent, got %d", opts.N)
	}
	if opts.Resources.IsEmpty() {
		return nil, errors.New("emulate: the agents need resources (for example cpus:4;mem:8192)")
	}
	if opts.HostnamePrefix == "" {
		opts.HostnamePrefix = "emulated"
	}
	if opts.StatusRetry <= 0 {
		opts.StatusRetry = 10 * time.Second
	}
	if opts.AgentsPerConn <= 0 {
		opts.AgentsPerConn = 50
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	f, err := discovery.Parse(opts.Master)
	if err != nil {
		return nil, fmt.Errorf("emulate: %w", err)
	}
	fl := &Fleet{opts: opts, finder: f}
	for i := range opts.N {
		fl.agents = append(fl.agents, &agent{
			fleet:    fl,
			hostname: fmt.Sprintf("%s-%d", opts.HostnamePrefix, i),
			tasks:    map[taskKey]*task{},
			log:      opts.Logger.Named("emulated").With("agent", i),
		})
	}
	return fl, nil
}

// Registered is how many agents hold a registered session right now.
func (fl *Fleet) Registered() int { return int(fl.registered.Load()) }

// Tasks is how many non-terminal tasks the agents run.
func (fl *Fleet) Tasks() int {
	n := 0
	for _, a := range fl.agents {
		a.mu.Lock()
		for _, t := range a.tasks {
			if !terminal(t.state) {
				n++
			}
		}
		a.mu.Unlock()
	}
	return n
}

// Run runs the agents until ctx ends.
func (fl *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fl.retryLoop(ctx)
	}()
	for g := 0; g < len(fl.agents); g += fl.opts.AgentsPerConn {
		group := fl.agents[g:min(g+fl.opts.AgentsPerConn, len(fl.agents))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			fl.runGroup(ctx, group)
		}()
	}
	wg.Wait()
	return nil
}

// retryLoop resends, once a second, every agent's updates whose retry
// interval has passed. One loop for the fleet, not a ticker per agent: ten
// thousand tickers in one process woke ten thousand goroutines a second,
// 13% of an emulator's CPU in make bench-scale, where a real agent wakes
// one.
func (fl *Fleet) retryLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, a := range fl.agents {
			a.retryUpdates()
		}
	}
}

// conn is a connection to one master shared by a group of agents.
type conn struct {
	addr string
	cc   *grpc.ClientConn
	refs int
}

// runGroup runs agents that share connections: each agent dials through
// the group, which keeps one ClientConn per master address.
func (fl *Fleet) runGroup(ctx context.Context, group []*agent) {
	var mu sync.Mutex
	conns := map[string]*conn{}
	get := func(addr string) (agentproto.AgentGatewayClient, func(), error) {
		mu.Lock()
		defer mu.Unlock()
		c := conns[addr]
		if c == nil {
			// The connection is shared and outlives any one agent's
			// session: gRPC's default reconnect backoff (up to 2 minutes)
			// would keep a whole group failing fast long after the master
			// is back, so it is kept as short as the agents' own.
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 5 * time.Second,
					Backoff: backoff.Config{BaseDelay: minBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}}))
			if err != nil {
				return nil, nil, err
			}
			c = &conn{addr: addr, cc: cc}
			conns[addr] = c
		}
		c.refs++
		return agentproto.NewAgentGatewayClient(c.cc), func() {
			mu.Lock()
			defer mu.Unlock()
			if c.refs--; c.refs == 0 {
				_ = c.cc.Close()
				delete(conns, addr)
			}
		}, nil
	}
	var wg sync.WaitGroup
	for _, a := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.connectLoop(ctx, get)
		}()
	}
	wg.Wait()
}

type taskKey struct{ framework, task string }

type task struct {
	key       taskKey
	framework *corralpb.FrameworkInfo
	info      *corralpb.TaskInfo
	state     corralpb.TaskState
	timer     *time.Timer
	// updates not yet acknowledged, oldest first; only the head is sent.
	pending []*agentproto.StatusUpdate
	retry   time.Duration
	sentAt  time.Time
}

type agent struct {
	fleet    *Fleet
	hostname string
	log      hclog.Logger

	mu sync.Mutex
	id string
	// secret is what the master bound id to; presented on re-registration
	// as a real agent does.
	secret string
	tasks  map[taskKey]*task
	// unacked counts the tasks with an update not acknowledged yet: the
	// fleet's retry loop passes over the (many) agents that have none
	// without walking their tasks.
	unacked int
	out     chan *agentproto.AgentMessage // nil while disconnected
}

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// connectLoop keeps the agent registered with the leading master. After
// a failover every agent of the fleet loses its stream at once; they all
// wait on one Consul blocking query (discovery coalesces them) for the
// leader key to name another master, and dial it the moment it does:
// there is nothing to back off from when the address changed. Backoff
// (jittered, so ten thousand agents do not retry in step) is for retrying
// the same address, or a new leader not serving yet.
func (a *agent) connectLoop(ctx context.Context, get func(string) (agentproto.AgentGatewayClient, func(), error)) {
	backoff := minBackoff
	failed := ""
	redirects := 0
	for ctx.Err() == nil {
		addr, err := a.fleet.finder.Pick(ctx, failed)
		moved := err == nil && failed != "" && addr != failed && a.fleet.finder.Watches()
		if err == nil {
			var client agentproto.AgentGatewayClient
			var release func()
			client, release, err = get(addr)
			if err == nil {
				var registered bool
				registered, err = a.session(ctx, client)
				release()
				if registered {
					backoff = minBackoff
					moved = true // the session ended: look for the leader at once
				}
			}
			if ctx.Err() != nil {
				return
			}
			if leader, ok := discovery.LeaderFrom(err); ok && leader != "" && redirects < 3 {
				redirects++
				a.fleet.finder.Hint(leader)
				failed = ""
				continue
			}
			failed = addr
			if _, ok := discovery.LeaderFrom(err); ok {
				// No leader known to that master yet (one just elected
				// and not serving): retry after the backoff, without
				// waiting for the leader key to name another master.
				failed, moved = "", false
			}
		}
		redirects = 0
		if moved {
			// The leader key named a new address, or a session just ended
			// (the next Pick waits for the key to move off failed): no
			// sleep.
			a.log.Debug("master connection lost; following the leader", "error", err)
			continue
		}
		a.log.Debug("master connection lost; reconnecting", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
	return d/2 + time.Duration(n%uint64(d/2+1))
}

func (a *agent) session(ctx context.Context, client agentproto.AgentGatewayClient) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, reg, err := agentproto.Handshake(ctx, client, a.registerMessage())
	if err != nil {
		return false, err
	}
	out := make(chan *agentproto.AgentMessage, 1024)
	a.mu.Lock()
	a.id = reg.GetAgentId()
	if reg.GetSecret() != "" {
		a.secret = reg.GetSecret()
	}
	a.out = out
	// Whatever was in flight on the old stream may be lost: send every
	// task's oldest unacknowledged update again.
	for _, t := range a.tasks {
		if len(t.pending) > 0 {
			a.sendHeadLocked(t)
		}
	}
	a.mu.Unlock()
	a.fleet.registered.Add(1)
	defer func() {
		a.fleet.registered.Add(-1)
		a.mu.Lock()
		a.out = nil
		a.mu.Unlock()
	}()

	errc := make(chan error, 1)
	go func() {
		hb := time.Duration(reg.GetHeartbeatIntervalSeconds() * float64(time.Second))
		if hb <= 0 {
			hb = 15 * time.Second
		}
		tick := time.NewTicker(hb)
		defer tick.Stop()
		for {
			var m *agentproto.AgentMessage
			select {
			case <-ctx.Done():
				return
			case m = <-out:
			case <-tick.C:
				m = &agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Heartbeat{Heartbeat: &agentproto.Heartbeat{}}}
			}
			if err := stream.Send(m); err != nil {
				errc <- fmt.Errorf("send: %w", err)
				cancel()
				return
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			select {
			case werr := <-errc:
				return true, werr
			default:
				return true, fmt.Errorf("receive: %w", err)
			}
		}
		a.handle(m)
	}
}

func (a *agent) registerMessage() *agentproto.AgentMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	reg := &agentproto.Register{
		Agent: &corralpb.AgentInfo{Id: a.id, Hostname: a.hostname, Resources: a.fleet.opts.Resources.ToProto(),
			Attributes: a.fleet.opts.Attributes},
		Version: "emulated",
		Secret:  a.secret,
	}
	// Live tasks, and ended ones whose terminal update is not acknowledged
	// yet (as core/agent does): a master that failed over must know them
	// as ended, or it answers reconciliation for them with TASK_LOST
	// before the retried terminal update arrives.
	for _, t := range a.tasks {
		if t.framework != nil && (!terminal(t.state) || len(t.pending) > 0) {
			reg.Tasks = append(reg.Tasks, &agentproto.RunningTask{Framework: t.framework, Task: t.info, State: t.state})
		}
	}
	return &agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Register{Register: reg}}
}

func (a *agent) handle(m *agentproto.MasterMessage) {
	switch msg := m.GetMsg().(type) {
	case *agentproto.MasterMessage_Registered:
		a.mu.Lock()
		a.id = msg.Registered.GetAgentId()
		if msg.Registered.GetSecret() != "" {
			a.secret = msg.Registered.GetSecret()
		}
		a.mu.Unlock()
	case *agentproto.MasterMessage_RunTask:
		a.runTask(msg.RunTask.GetFramework(), msg.RunTask.GetTask())
	case *agentproto.MasterMessage_KillTask:
		a.kill(taskKey{msg.KillTask.GetFrameworkId(), msg.KillTask.GetTaskId()})
	case *agentproto.MasterMessage_Ack:
		a.ack(taskKey{msg.Ack.GetFrameworkId(), msg.Ack.GetTaskId()}, msg.Ack.GetUuid())
	case *agentproto.MasterMessage_ShutdownFramework:
		a.shutdownFramework(msg.ShutdownFramework.GetFrameworkId())
	}
}

func (a *agent) runTask(fw *corralpb.FrameworkInfo, info *corralpb.TaskInfo) {
	k := taskKey{fw.GetId(), info.GetTaskId()}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.tasks[k]; dup {
		return // a duplicate launch of a known task: nothing new to run
	}
	t := &task{key: k, framework: fw, info: info, state: corralpb.TaskState_TASK_STAGING}
	a.tasks[k] = t
	a.setStateLocked(t, corralpb.TaskState_TASK_RUNNING, 0, "")
	d, err := duration(info, a.fleet.opts.DefaultDuration)
	if err != nil {
		a.setStateLocked(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_REASON_LAUNCH_FAILED, err.Error())
		return
	}
	if d > 0 {
		t.timer = time.AfterFunc(d, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if terminal(t.state) {
				return
			}
			if info.GetLabels()[LabelExit] == "failed" {
				a.setStateLocked(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_REASON_COMMAND_EXITED, "exited 1")
			} else {
				a.setStateLocked(t, corralpb.TaskState_TASK_FINISHED, corralpb.TaskStatus_REASON_COMMAND_EXITED, "exited 0")
			}
		})
	}
}

func (a *agent) kill(k taskKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tasks[k]
	if !ok {
		t = &task{key: k, info: &corralpb.TaskInfo{TaskId: k.task}}
		a.tasks[k] = t
		a.setStateLocked(t, corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_REASON_TASK_UNKNOWN, "task unknown to the agent")
		return
	}
	if terminal(t.state) {
		return
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	a.setStateLocked(t, corralpb.TaskState_TASK_KILLED, corralpb.TaskStatus_REASON_KILLED, "killed")
}

func (a *agent) shutdownFramework(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, t := range a.tasks {
		if k.framework != id {
			continue
		}
		if t.timer != nil {
			t.timer.Stop()
		}
		// Nobody is left to acknowledge: forget the task.
		if len(t.pending) > 0 {
			a.unacked--
		}
		delete(a.tasks, k)
	}
}

// setStateLocked records a new state and queues its update.
func (a *agent) setStateLocked(t *task, st corralpb.TaskState, reason corralpb.TaskStatus_Reason, msg string) {
	t.state = st
	uuid := make([]byte, 16)
	_, _ = rand.Read(uuid)
	t.pending = append(t.pending, &agentproto.StatusUpdate{FrameworkId: t.key.framework, Status: &corralpb.TaskStatus{
		TaskId: t.key.task, State: st, Message: msg, Source: corralpb.TaskStatus_SOURCE_EXECUTOR, Reason: reason,
		AgentId: a.id, TimestampUnixMs: time.Now().UnixMilli(), Uuid: uuid,
	}})
	if len(t.pending) == 1 {
		a.unacked++
		t.retry = a.fleet.opts.StatusRetry
		a.sendHeadLocked(t)
	}
}

func (a *agent) sendHeadLocked(t *task) {
	t.sentAt = time.Now()
	if a.out == nil {
		return
	}
	select {
	case a.out <- &agentproto.AgentMessage{Msg: &agentproto.AgentMessage_StatusUpdate{StatusUpdate: t.pending[0]}}:
	default: // backlogged: the retry sends it
	}
}

func (a *agent) ack(k taskKey, uuid []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tasks[k]
	if !ok || len(t.pending) == 0 || string(t.pending[0].GetStatus().GetUuid()) != string(uuid) {
		return // stale or duplicate
	}
	t.pending = t.pending[1:]
	t.retry = a.fleet.opts.StatusRetry
	if len(t.pending) > 0 {
		a.sendHeadLocked(t)
		return
	}
	a.unacked--
	if terminal(t.state) {
		delete(a.tasks, k) // acknowledged terminal: done with it
	}
}

// retryUpdates resends heads not acknowledged within their retry interval.
func (a *agent) retryUpdates() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unacked == 0 {
		return
	}
	now := time.Now()
	for _, t := range a.tasks {
		if len(t.pending) > 0 && now.Sub(t.sentAt) >= t.retry {
			t.retry = min(2*t.retry, time.Minute)
			a.sendHeadLocked(t)
		}
	}
}

// duration is how long the fake executor runs a task.
func duration(info *corralpb.TaskInfo, def time.Duration) (time.Duration, error) {
	if s := info.GetLabels()[LabelDuration]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("label %s=%q is not a duration", LabelDuration, s)
		}
		return d, nil
	}
	cmd := info.GetCommand()
	words := strings.Fields(cmd.GetValue())
	if !cmd.GetShell() {
		words = append(words, cmd.GetArguments()...)
	}
	// "sleep 3", argv ["sleep", "3"], or "sleep" with arguments ["sleep", "3"].
	for i := 0; i+1 < len(words); i++ {
		if strings.HasSuffix(words[i], "sleep") {
			if secs, err := strconv.ParseFloat(words[i+1], 64); err == nil && secs >= 0 {
				return time.Duration(secs * float64(time.Second)), nil
			}
		}
	}
	return def, nil
}

func terminal(s corralpb.TaskState) bool {
	switch s {
	case corralpb.TaskState_TASK_FINISHED, corralpb.TaskState_TASK_FAILED, corralpb.TaskState_TASK_KILLED,
		corralpb.TaskState_TASK_LOST, corralpb.TaskState_TASK_ERROR:
		return true
	}
	return false
}
