package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/agent/fetch"
	"github.com/corral-project/corral/core/agent/sandbox"
	"github.com/corral-project/corral/core/agent/statusupdate"
	"github.com/corral-project/corral/core/master/agentproto"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Custom executors.
//
// A framework's executor (TaskInfo.executor) is agent-native, not an
// executor plugin: the agent must hold its books (which tasks it runs,
// their updates through the reliable status update path, framework
// messages, acknowledgements), and every byte the executor says is
// validated against them. Only its process is run the way every task's
// process is: an internal "container task" (key "executor:<id>") goes
// through the ordinary launch path, so the executor plugin, the per-task
// shim, the isolator (a container sized by the executor's resources),
// checkpointing and reattach all apply to it unchanged.
//
// The executor talks to the agent through one of two thin adapters over
// the same core (ExecutorSubscribe, ExecutorUpdate, ExecutorMessage):
// corral's gRPC API on a unix socket (executor_grpc.go, sdk/executor) or
// the Mesos v1 executor HTTP API at /api/v1/executor.

// executorContainerPrefix names executor containers among the agent's
// tasks; the master refuses task IDs that start with it.
const executorContainerPrefix = "executor:"

type execKey struct{ framework, executor string }

// customExecutor is one running framework executor.
type customExecutor struct {
	key       execKey
	info      *corralpb.ExecutorInfo
	framework *corralpb.FrameworkInfo
	container *task
	sandbox   string
	socket    string
	logger    hclog.Logger

	// Below: guarded by Agent.mu.
	srv        *grpc.Server
	tasks      map[string]*task          // live tasks
	pending    []*corralpb.ExecutorEvent // held until the executor subscribes
	sess       *ExecutorSession
	subscribed bool // ever, in this agent run
	idle       *time.Timer
	shutdown   bool
	exited     bool
}

// maxPendingEvents bounds what is held for an executor not subscribed.
const maxPendingEvents = 4096

// executorRegistrationTimeout is how long a new executor has to subscribe
// before its container is destroyed and its tasks fail (Mesos's
// --executor_registration_timeout default).
const executorRegistrationTimeout = time.Minute

// ExecutorSession is one subscription of an executor: the events the agent
// sends it, in order, until Done.
type ExecutorSession struct {
	events chan *corralpb.ExecutorEvent
	done   chan struct{}
	once   sync.Once
}

func newSession() *ExecutorSession {
	return &ExecutorSession{events: make(chan *corralpb.ExecutorEvent, maxPendingEvents), done: make(chan struct{})}
}

// Events is the stream; read it until Done is closed.
func (s *ExecutorSession) Events() <-chan *corralpb.ExecutorEvent { return s.events }

// Done is closed when the session ends (executor gone, replaced by a newer
// subscription, or shut down).
func (s *ExecutorSession) Done() <-chan struct{} { return s.done }

func (s *ExecutorSession) end() { s.once.Do(func() { close(s.done) }) }

// ExecutorCallError is a refused executor call; Status is the HTTP status
// the Mesos adapter answers (gRPC maps it to a code).
type ExecutorCallError struct {
	Status int
	Msg    string
}

func (e *ExecutorCallError) Error() string { return e.Msg }

func execErr(status int, format string, args ...any) error {
	return &ExecutorCallError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

func isExecutorContainer(t *task) bool { return strings.HasPrefix(t.key.task, executorContainerPrefix) }

// runsOnExecutor reports whether t is a framework task run by a custom
// executor (not the executor's own container).
func runsOnExecutor(t *task) bool { return t.info.GetExecutor() != nil && !isExecutorContainer(t) }

// launchOnExecutor hands a task to its framework's executor, starting the
// executor first if it does not run yet, and waits until the task ends
// (or the agent detaches from it).
func (a *Agent) launchOnExecutor(t *task) {
	a.persistFramework(t.framework)
	a.persistTask(t)
	ex, err := a.ensureExecutor(t)
	if err != nil {
		t.logger.Warn("task launch failed", "error", err)
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED, err.Error(), nil)
		return
	}
	a.mu.Lock()
	t.sandbox = ex.sandbox
	t.onExec = ex
	ex.tasks[t.key.task] = t
	if ex.idle != nil {
		ex.idle.Stop()
		ex.idle = nil
	}
	ex.sendLocked(&corralpb.ExecutorEvent{Event: &corralpb.ExecutorEvent_Launch_{Launch: &corralpb.ExecutorEvent_Launch{Task: t.info}}})
	a.mu.Unlock()
	a.persistTask(t)
	t.logger.Info("task handed to its executor", "executor_id", ex.key.executor)
	// The agent runs the task's health check, as it does for command
	// tasks; the executor's kill stops a task that turns unhealthy.
	a.startHealthCheck(t)
	defer a.stopHealthCheck(t)
	a.waitExecTask(t)
}

// waitExecTask blocks until a task on an executor has ended or the agent
// stops supervising (on_shutdown = keep).
func (a *Agent) waitExecTask(t *task) {
	select {
	case <-t.execEnded:
	case <-a.taskCtx.Done():
	}
}

// ensureExecutor returns the live executor t names, starting it if needed.
func (a *Agent) ensureExecutor(t *task) (*customExecutor, error) {
	info := t.info.GetExecutor()
	k := execKey{t.key.framework, info.GetExecutorId()}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ex := a.executors[k]; ex != nil {
		switch {
		case ex.shutdown || ex.exited:
			return nil, fmt.Errorf("executor %q is shutting down; the task was not launched", k.executor)
		case !proto.Equal(ex.info, info):
			return nil, fmt.Errorf("executor %q already runs with a different ExecutorInfo", k.executor)
		}
		return ex, nil
	}
	if a.stopping {
		return nil, errors.New("agent is shutting down")
	}
	ci := &corralpb.TaskInfo{
		TaskId:           executorContainerPrefix + k.executor,
		Name:             info.GetName(),
		AgentId:          t.info.GetAgentId(),
		Resources:        info.GetResources(),
		Command:          info.GetCommand(),
		KillGraceSeconds: info.GetShutdownGraceSeconds(),
		Executor:         info,
	}
	ck := taskKey{k.framework, ci.TaskId}
	if old := a.tasks[ck]; old != nil {
		// The previous run of this executor ended but its record lingers.
		return nil, fmt.Errorf("executor %q is still being torn down; the task was not launched", k.executor)
	}
	dir, err := sandbox.Create(a.cfg.sandboxRoot(), k.framework, ci.TaskId)
	if err != nil {
		return nil, fmt.Errorf("executor %q sandbox: %w", k.executor, err)
	}
	ct := &task{
		key: ck, framework: t.framework, info: ci, containerID: newID(), isolator: a.cfg.Isolator,
		logger: a.logger.With("framework_id", k.framework, "executor_id", k.executor),
		done:   make(chan struct{}), state: corralpb.TaskState_TASK_STAGING,
	}
	ct.infoBytes, _ = proto.Marshal(ci)
	ex := a.newCustomExecutor(k, info, t.framework, ct, dir)
	if err := a.serveExecutorLocked(ex); err != nil {
		return nil, err
	}
	a.addTaskLocked(ct)
	a.executors[k] = ex
	ex.logger.Info("starting custom executor", "container_id", ct.containerID, "api", apiOf(info))
	a.taskWG.Go(func() { a.launch(ct) })
	time.AfterFunc(executorRegistrationTimeout, func() {
		a.mu.Lock()
		late := !ex.subscribed && !ex.exited && a.executors[k] == ex
		a.mu.Unlock()
		if late {
			ex.logger.Warn("executor did not subscribe in time; killing it", "timeout", executorRegistrationTimeout)
			a.killTask(ct, 0)
		}
	})
	return ex, nil
}

func (a *Agent) newCustomExecutor(k execKey, info *corralpb.ExecutorInfo, fw *corralpb.FrameworkInfo, ct *task, dir string) *customExecutor {
	return &customExecutor{
		key: k, info: info, framework: fw, container: ct, sandbox: dir,
		socket: executorSocketPath(dir, k),
		logger: a.logger.With("framework_id", k.framework, "executor_id", k.executor),
		tasks:  map[string]*task{},
	}
}

func apiOf(info *corralpb.ExecutorInfo) string {
	if info.GetApi() == "" {
		return "corral"
	}
	return info.GetApi()
}

// executorSocketPath is the executor's socket: in its sandbox, or, when
// that path is too long for a unix socket, a fixed name in the temp dir
// derived from the sandbox (the same after an agent restart).
func executorSocketPath(dir string, k execKey) string {
	p := filepath.Join(dir, "executor.sock")
	if len(p) < 100 {
		return p
	}
	h := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "corral-ex-"+hex.EncodeToString(h[:8])+".sock")
}

// serveExecutorLocked starts the executor's gRPC endpoint on its socket.
func (a *Agent) serveExecutorLocked(ex *customExecutor) error {
	if apiOf(ex.info) != "corral" {
		return nil // Mesos executors use the agent's HTTP port
	}
	_ = os.Remove(ex.socket) // a stale socket from a previous run
	ln, err := net.Listen("unix", ex.socket)
	if err != nil {
		return fmt.Errorf("executor %q socket: %w", ex.key.executor, err)
	}
	srv := grpc.NewServer()
	corralpb.RegisterExecutorServer(srv, &executorGRPC{a: a, key: ex.key})
	ex.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// sendLocked delivers an event to the subscribed executor, or holds it
// until the executor subscribes.
func (ex *customExecutor) sendLocked(ev *corralpb.ExecutorEvent) {
	if ex.sess != nil {
		select {
		case ex.sess.events <- ev:
			return
		default:
			// The executor does not keep up; end its session: it
			// re-subscribes and gets what it has not acknowledged.
			ex.logger.Warn("executor event stream backlogged; ending its session")
			ex.sess.end()
			ex.sess = nil
		}
	}
	if _, ok := ev.Event.(*corralpb.ExecutorEvent_Acknowledged_); ok {
		return // a re-subscribing executor learns from the agent's state instead
	}
	if len(ex.pending) < maxPendingEvents {
		ex.pending = append(ex.pending, ev)
	}
}

// ExecutorSubscribe (re)subscribes a custom executor. unackedTasks and
// unackedUpdates are what a re-subscribing executor has not had
// acknowledged: its updates are taken again, and tasks the agent holds for
// it that it never heard of are launched again.
func (a *Agent) ExecutorSubscribe(frameworkID, executorID string, unackedTasks []*corralpb.TaskInfo,
	unackedUpdates []*corralpb.TaskStatus) (*ExecutorSession, error) {
	for _, st := range unackedUpdates {
		if err := validateExecutorStatus(st); err != nil {
			return nil, err
		}
	}
	a.mu.Lock()
	ex := a.executors[execKey{frameworkID, executorID}]
	if ex == nil || ex.exited {
		a.mu.Unlock()
		return nil, execErr(http.StatusBadRequest, "executor %q of framework %q is not running on this agent", executorID, frameworkID)
	}
	if ex.sess != nil {
		ex.sess.end() // replaced by this subscription
	}
	sess := newSession()
	ex.sess, ex.subscribed = sess, true
	sess.events <- &corralpb.ExecutorEvent{Event: &corralpb.ExecutorEvent_Subscribed_{Subscribed: &corralpb.ExecutorEvent_Subscribed{
		ExecutorInfo: ex.info, FrameworkInfo: ex.framework,
		AgentInfo: &corralpb.AgentInfo{Id: a.id, Hostname: a.cfg.Hostname, Url: a.url, Attributes: a.cfg.Attributes},
	}}}
	known := map[string]bool{}
	for _, ti := range unackedTasks {
		known[ti.GetTaskId()] = true
	}
	for _, st := range unackedUpdates {
		known[st.GetTaskId()] = true
	}
	queued := map[string]bool{}
	for _, ev := range ex.pending {
		if l := ev.GetLaunch(); l != nil {
			queued[l.GetTask().GetTaskId()] = true
		}
	}
	// A task sent to the executor that it neither reported nor lists was
	// lost on the way (a broken stream), as Mesos decides on re-subscribe.
	var lost []*task
	for id, t := range ex.tasks {
		if !known[id] && !queued[id] && t.state == corralpb.TaskState_TASK_STAGING {
			lost = append(lost, t)
			delete(ex.tasks, id)
		}
	}
	pending := ex.pending
	ex.pending = nil
	for _, ev := range pending {
		ex.sendLocked(ev)
	}
	if len(ex.tasks) == 0 && !ex.shutdown {
		a.armIdleLocked(ex)
	}
	a.mu.Unlock()
	for _, t := range lost {
		a.finish(t, corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_SOURCE_AGENT, corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED,
			"the executor re-subscribed without this task: its launch was lost", nil)
		t.endExec()
	}
	ex.logger.Info("executor subscribed", "unacknowledged_tasks", len(unackedTasks), "unacknowledged_updates", len(unackedUpdates))
	for _, st := range unackedUpdates {
		if err := a.ExecutorUpdate(frameworkID, executorID, st); err != nil {
			ex.logger.Warn("ignoring a resent update", "task_id", st.GetTaskId(), "error", err)
		}
	}
	return sess, nil
}

// validateExecutorStatus checks what an executor may say in an update.
func validateExecutorStatus(st *corralpb.TaskStatus) error {
	switch {
	case st == nil:
		return execErr(http.StatusBadRequest, "update has no status")
	case st.GetTaskId() == "":
		return execErr(http.StatusBadRequest, "status has no task_id")
	case len(st.GetUuid()) != 16:
		return execErr(http.StatusBadRequest, "status of task %q: uuid must be 16 bytes, got %d", st.GetTaskId(), len(st.GetUuid()))
	case st.GetState() == corralpb.TaskState_TASK_STAGING:
		return execErr(http.StatusBadRequest, "status of task %q: an executor may not report TASK_STAGING", st.GetTaskId())
	case corralpb.TaskState_name[int32(st.GetState())] == "":
		return execErr(http.StatusBadRequest, "status of task %q: unknown state %d", st.GetTaskId(), st.GetState())
	}
	return nil
}

// ExecutorUpdate takes a task's status from its executor and sends it to
// the framework through the reliable status update path (checkpointed,
// retried until acknowledged; the executor gets Acknowledged then).
func (a *Agent) ExecutorUpdate(frameworkID, executorID string, st *corralpb.TaskStatus) error {
	if err := validateExecutorStatus(st); err != nil {
		return err
	}
	a.mu.Lock()
	ex := a.executors[execKey{frameworkID, executorID}]
	if ex == nil || ex.exited {
		a.mu.Unlock()
		return execErr(http.StatusBadRequest, "executor %q of framework %q is not running on this agent", executorID, frameworkID)
	}
	if ex.sess == nil {
		a.mu.Unlock()
		return execErr(http.StatusForbidden, "executor %q is not subscribed", executorID)
	}
	t := ex.tasks[st.GetTaskId()]
	if t == nil {
		old := a.tasks[taskKey{frameworkID, st.GetTaskId()}]
		a.mu.Unlock()
		if old != nil && old.info.GetExecutor().GetExecutorId() == executorID && old.terminal {
			a.ackExecutor(frameworkID, executorID, st) // a resent update of a task already ended
			return nil
		}
		return execErr(http.StatusBadRequest, "task %q is not a live task of executor %q", st.GetTaskId(), executorID)
	}
	for _, u := range a.updates.Pending(frameworkID, st.GetTaskId()) {
		if string(u.Status.GetUuid()) == string(st.GetUuid()) {
			a.mu.Unlock()
			a.ackExecutor(frameworkID, executorID, st) // already taken; still on its way
			return nil
		}
	}
	if t.frameworkGone {
		a.mu.Unlock()
		return nil
	}
	terminal := statusupdate.IsTerminal(st.GetState())
	t.state = st.GetState()
	if terminal {
		t.terminal = true
		delete(ex.tasks, t.key.task)
		if len(ex.tasks) == 0 && !ex.shutdown {
			a.armIdleLocked(ex)
		}
	}
	reason := st.GetReason()
	if t.unhealthy && st.GetState() == corralpb.TaskState_TASK_KILLED {
		// The agent's health check asked for this kill.
		reason = corralpb.TaskStatus_REASON_TASK_UNHEALTHY
	}
	out := a.newStatus(t, st.GetState(), corralpb.TaskStatus_SOURCE_EXECUTOR, reason, st.GetMessage())
	out.Uuid = append([]byte(nil), st.GetUuid()...)
	if st.Healthy != nil {
		out.Healthy = st.Healthy // the executor checks its tasks itself
	}
	out.HasExitCode, out.ExitCode = st.GetHasExitCode(), st.GetExitCode()
	out.Data = st.GetData()
	a.mu.Unlock()
	t.logger.Debug("executor update", "state", st.GetState())
	a.report(t, out)
	// As in Mesos, the agent acknowledges once the update is checkpointed
	// and queued: its delivery to the framework is the agent's job now.
	a.ackExecutor(frameworkID, executorID, st)
	if terminal {
		t.logger.Info("task ended", "state", st.GetState(), "message", st.GetMessage())
		t.endExec()
	}
	return nil
}

// ExecutorMessage forwards a framework message from an executor to the
// master (best effort, as in Mesos).
func (a *Agent) ExecutorMessage(frameworkID, executorID string, data []byte) error {
	a.mu.Lock()
	ex := a.executors[execKey{frameworkID, executorID}]
	subscribed := ex != nil && ex.sess != nil
	a.mu.Unlock()
	switch {
	case ex == nil:
		return execErr(http.StatusBadRequest, "executor %q of framework %q is not running on this agent", executorID, frameworkID)
	case !subscribed:
		return execErr(http.StatusForbidden, "executor %q is not subscribed", executorID)
	}
	if err := a.send(&agentMessage{Msg: &agentproto.AgentMessage_ExecutorMessage{ExecutorMessage: &agentproto.ExecutorMessage{
		FrameworkId: frameworkID, ExecutorId: executorID, Data: data}}}); err != nil {
		return execErr(http.StatusServiceUnavailable, "message not sent: %v", err)
	}
	return nil
}

// frameworkMessage delivers a scheduler's message to the executor it names
// (or the executor of the task it names).
func (a *Agent) frameworkMessage(fm *agentproto.FrameworkMessage) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := fm.GetExecutorId()
	if id == "" {
		if t := a.tasks[taskKey{fm.GetFrameworkId(), fm.GetTaskId()}]; t != nil && runsOnExecutor(t) {
			id = t.info.GetExecutor().GetExecutorId()
		}
	}
	ex := a.executors[execKey{fm.GetFrameworkId(), id}]
	if ex == nil || ex.exited {
		// The command executor takes no messages, as in Mesos.
		a.logger.Debug("dropping framework message: no custom executor takes it",
			"framework_id", fm.GetFrameworkId(), "task_id", fm.GetTaskId(), "executor_id", id, "bytes", len(fm.GetData()))
		return
	}
	ex.sendLocked(&corralpb.ExecutorEvent{Event: &corralpb.ExecutorEvent_Message_{Message: &corralpb.ExecutorEvent_Message{Data: fm.GetData()}}})
}

// ackExecutor tells an executor the agent has taken its update.
func (a *Agent) ackExecutor(frameworkID, executorID string, st *corralpb.TaskStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ex := a.executors[execKey{frameworkID, executorID}]
	if ex == nil || ex.exited {
		return
	}
	ex.sendLocked(&corralpb.ExecutorEvent{Event: &corralpb.ExecutorEvent_Acknowledged_{Acknowledged: &corralpb.ExecutorEvent_Acknowledged{
		TaskId: st.GetTaskId(), Uuid: st.GetUuid()}}})
}

// killOnExecutor asks the executor to kill one of its tasks; a task the
// executor has not been sent yet ends at once.
func (a *Agent) killOnExecutor(t *task, grace time.Duration) {
	a.mu.Lock()
	ex := t.onExec
	if t.terminal || t.killRequested || ex == nil {
		a.mu.Unlock()
		return
	}
	t.killRequested, t.killGrace = true, grace
	for i, ev := range ex.pending {
		if ev.GetLaunch().GetTask().GetTaskId() == t.key.task {
			ex.pending = append(ex.pending[:i], ex.pending[i+1:]...)
			delete(ex.tasks, t.key.task)
			if len(ex.tasks) == 0 && !ex.shutdown {
				a.armIdleLocked(ex)
			}
			a.mu.Unlock()
			a.finish(t, corralpb.TaskState_TASK_KILLED, corralpb.TaskStatus_SOURCE_AGENT,
				corralpb.TaskStatus_REASON_KILLED, "task killed before its executor received it", nil)
			t.endExec()
			return
		}
	}
	ex.sendLocked(&corralpb.ExecutorEvent{Event: &corralpb.ExecutorEvent_Kill_{Kill: &corralpb.ExecutorEvent_Kill{
		TaskId: t.key.task, GraceSeconds: grace.Seconds()}}})
	a.mu.Unlock()
	t.logger.Info("kill sent to executor", "executor_id", ex.key.executor, "grace", grace)
}

// armIdleLocked starts the idle timer of an executor with no task.
func (a *Agent) armIdleLocked(ex *customExecutor) {
	if ex.idle != nil {
		ex.idle.Stop()
	}
	ex.idle = time.AfterFunc(a.cfg.ExecutorIdleTimeout, func() {
		a.mu.Lock()
		idle := len(ex.tasks) == 0 && !ex.shutdown && !ex.exited && a.executors[ex.key] == ex
		a.mu.Unlock()
		if idle {
			ex.logger.Info("executor idle; shutting it down", "idle_timeout", a.cfg.ExecutorIdleTimeout)
			a.shutdownCustomExecutor(ex)
		}
	})
}

// shutdownCustomExecutor sends Shutdown, then ends its container after the
// executor's grace if it has not exited by then.
func (a *Agent) shutdownCustomExecutor(ex *customExecutor) {
	grace := a.cfg.ExecutorShutdownGrace
	if g := ex.info.GetShutdownGraceSeconds(); g > 0 {
		grace = time.Duration(g * float64(time.Second))
	}
	a.mu.Lock()
	if ex.shutdown || ex.exited {
		a.mu.Unlock()
		return
	}
	ex.shutdown = true
	if ex.idle != nil {
		ex.idle.Stop()
	}
	ex.sendLocked(&corralpb.ExecutorEvent{Event: &corralpb.ExecutorEvent_Shutdown_{Shutdown: &corralpb.ExecutorEvent_Shutdown{GraceSeconds: grace.Seconds()}}})
	ct := ex.container
	a.mu.Unlock()
	go func() {
		select {
		case <-ct.done:
			return
		case <-time.After(grace):
		}
		a.killTask(ct, grace)
	}()
}

// containerEnded is the end of an executor's process: its tasks fail, its
// resources go back (ExecutorExited to the master), its record goes.
func (a *Agent) containerEnded(ct *task, state corralpb.TaskState, msg string, code *int) {
	k := execKey{ct.key.framework, strings.TrimPrefix(ct.key.task, executorContainerPrefix)}
	a.mu.Lock()
	ct.state, ct.terminal = state, true
	ex := a.executors[k]
	var live []*task
	if ex != nil && ex.container == ct {
		ex.exited = true
		delete(a.executors, k)
		for _, t := range ex.tasks {
			live = append(live, t)
		}
		ex.tasks = map[string]*task{}
		if ex.sess != nil {
			ex.sess.end()
			ex.sess = nil
		}
		if ex.idle != nil {
			ex.idle.Stop()
		}
		if ex.srv != nil {
			go ex.srv.Stop()
			go os.Remove(ex.socket)
		}
	}
	delete(a.tasks, ct.key)
	a.mu.Unlock()
	a.forgetCheckpointed(ct.key)
	why := fmt.Sprintf("executor %q exited: %s", k.executor, msg)
	ct.logger.Info("executor ended", "state", state, "message", msg, "tasks_failed", len(live))
	for _, t := range live {
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED, why, nil)
		t.endExec()
	}
	ee := &agentproto.ExecutorExited{FrameworkId: k.framework, ExecutorId: k.executor, Message: why}
	if code != nil {
		c := int32(*code)
		ee.Status = &c
	}
	if err := a.send(&agentMessage{Msg: &agentproto.AgentMessage_ExecutorExited{ExecutorExited: ee}}); err != nil {
		// The master learns it at the next registration, which no longer
		// lists the executor.
		ct.logger.Debug("executor exit not sent now", "error", err)
	}
}

// prepareExecutorSandbox fetches the executor's URIs into its sandbox and
// resolves its command: a relative path names a fetched file.
func (a *Agent) prepareExecutorSandbox(ctx context.Context, ct *task, dir string) error {
	info := ct.info.GetExecutor()
	f := &fetch.Fetcher{CacheDir: filepath.Join(a.cfg.WorkDir, "fetch-cache")}
	var uris []*corralpb.URI
	uris = append(uris, info.GetUris()...)
	for _, u := range uris {
		fu := fetch.URI{Value: u.GetValue(), Executable: u.GetExecutable(), Extract: u.GetExtract(), Cache: u.GetCache(),
			OutputFile: u.GetOutputFile(), SHA256: u.GetSha256()}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		p, err := f.Fetch(fctx, fu, dir)
		cancel()
		if err != nil {
			return err
		}
		ct.logger.Info("fetched", "uri", u.GetValue(), "path", p)
	}
	return nil
}

// executorEnv is what Mesos sets for an executor (the MESOS_ names, so
// that Mesos executors run unmodified) and corral's own for sdk/executor.
func (a *Agent) executorEnv(ct *task, env map[string]string) {
	k := execKey{ct.key.framework, strings.TrimPrefix(ct.key.task, executorContainerPrefix)}
	a.mu.Lock()
	ex := a.executors[k]
	a.mu.Unlock()
	delete(env, "CORRAL_TASK_ID")
	delete(env, "CORRAL_TASK_NAME")
	endpoint := strings.TrimPrefix(strings.TrimPrefix(a.url, "http://"), "https://")
	grace := a.cfg.ExecutorShutdownGrace
	if g := ct.info.GetExecutor().GetShutdownGraceSeconds(); g > 0 {
		grace = time.Duration(g * float64(time.Second))
	}
	env["CORRAL_EXECUTOR_ID"] = k.executor
	env["MESOS_FRAMEWORK_ID"] = k.framework
	env["MESOS_EXECUTOR_ID"] = k.executor
	env["MESOS_DIRECTORY"] = ct.sandbox
	env["MESOS_SANDBOX"] = ct.sandbox
	env["MESOS_AGENT_ENDPOINT"] = endpoint
	env["MESOS_SLAVE_ID"] = a.ID()
	env["MESOS_AGENT_ID"] = a.ID()
	env["MESOS_CHECKPOINT"] = "1"
	env["MESOS_RECOVERY_TIMEOUT"] = "15mins"
	env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = "2secs"
	env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] = fmt.Sprintf("%dsecs", int(grace.Seconds()))
	env["MESOS_HTTP_COMMAND_EXECUTOR"] = "0"
	if strings.HasPrefix(a.url, "https://") {
		env["SSL_ENABLED"] = "true"
	}
	if ex != nil && ex.srv != nil {
		env["CORRAL_EXECUTOR_ENDPOINT"] = "unix://" + ex.socket
	}
}

// restoreExecutors rebuilds the executor table from recovered tasks.
// Caller holds mu.
func (a *Agent) restoreExecutorsLocked() {
	for _, ct := range a.tasks {
		if !isExecutorContainer(ct) || ct.terminal || ct.info.GetExecutor() == nil {
			continue
		}
		k := execKey{ct.key.framework, strings.TrimPrefix(ct.key.task, executorContainerPrefix)}
		a.executors[k] = a.newCustomExecutor(k, ct.info.GetExecutor(), ct.framework, ct, ct.sandbox)
	}
	for _, t := range a.tasks {
		if t.terminal || !runsOnExecutor(t) {
			continue
		}
		if ex := a.executors[execKey{t.key.framework, t.info.GetExecutor().GetExecutorId()}]; ex != nil {
			t.onExec = ex
			ex.tasks[t.key.task] = t
		}
	}
}

// recoverExecutors reopens the sockets of the executors a previous run
// started (they re-subscribe on their own), settles the tasks whose
// executor is gone, and kills executors that do not come back in time.
func (a *Agent) recoverExecutors(execTasks []*task) {
	a.mu.Lock()
	exs := make([]*customExecutor, 0, len(a.executors))
	for _, ex := range a.executors {
		if err := a.serveExecutorLocked(ex); err != nil {
			ex.logger.Error("reopen executor socket", "error", err)
		}
		exs = append(exs, ex)
	}
	a.mu.Unlock()
	for _, t := range execTasks {
		a.mu.Lock()
		ex := t.onExec
		a.mu.Unlock()
		if ex == nil {
			a.finish(t, corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_SOURCE_AGENT,
				corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED, "the task's executor was gone when the agent restarted", nil)
			t.endExec()
			close(t.done)
			continue
		}
		a.taskWG.Go(func() {
			defer close(t.done)
			a.startHealthCheck(t) // from its delay again, as after a launch
			defer a.stopHealthCheck(t)
			a.waitExecTask(t)
		})
	}
	for _, ex := range exs {
		time.AfterFunc(a.cfg.ExecutorReregisterTimeout, func() {
			a.mu.Lock()
			late := !ex.subscribed && !ex.exited && a.executors[ex.key] == ex
			a.mu.Unlock()
			if late {
				ex.logger.Warn("executor did not re-subscribe after the agent restart; killing it",
					"timeout", a.cfg.ExecutorReregisterTimeout)
				a.killTask(ex.container, 0)
			}
		})
	}
}

// runningExecutors lists the live executors for registration. Caller
// holds mu.
func (a *Agent) runningExecutorsLocked() []*agentproto.RunningExecutor {
	var out []*agentproto.RunningExecutor
	for _, ex := range a.executors {
		if !ex.exited {
			out = append(out, &agentproto.RunningExecutor{Framework: ex.framework, Executor: ex.info})
		}
	}
	return out
}

// stopExecutorServers closes the executors' sockets as the agent stops;
// executors left running re-subscribe to the next run.
func (a *Agent) stopExecutorServers() {
	a.mu.Lock()
	var srvs []*grpc.Server
	for _, ex := range a.executors {
		if ex.sess != nil {
			ex.sess.end()
			ex.sess = nil
		}
		if ex.srv != nil {
			srvs = append(srvs, ex.srv)
			ex.srv = nil
		}
		if ex.idle != nil {
			ex.idle.Stop()
		}
	}
	a.mu.Unlock()
	for _, s := range srvs {
		s.Stop()
	}
}
