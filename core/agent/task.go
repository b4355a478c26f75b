package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/agent/sandbox"
	"github.com/corral-project/corral/core/agent/statusupdate"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

type taskKey struct{ framework, task string }

// task is one task the agent runs. Fields below the line are guarded by
// Agent.mu.
type task struct {
	key         taskKey
	framework   *corralpb.FrameworkInfo
	info        *corralpb.TaskInfo
	res         resources.Resources
	containerID string
	isolator    string // the isolator plugin the container belongs to
	sandbox     string
	logger      hclog.Logger
	done        chan struct{} // closed when the task is torn down
	infoBytes   []byte        // info in wire format, as checkpointed

	state         corralpb.TaskState
	pid           int
	exec          *ExecutorHandle
	launched      bool // the task's process was started
	killRequested bool
	limitation    *isolator.Limitation // what the isolator saw end the container
	killGrace     time.Duration
	frameworkGone bool // ShutdownFramework: send nothing more
	terminal      bool
	cleaned       bool            // container cleaned up
	execInfo      json.RawMessage // executor reattach info, once started
	// Health check state: health known (checked at least once), the last
	// result, whether the check asked for the kill, and how to stop it.
	healthKnown, healthy, unhealthy bool
	stopHealth                      context.CancelFunc
	// onExec is the custom executor running the task (runsOnExecutor);
	// execEnded is closed once such a task has ended.
	onExec    *customExecutor
	execEnded chan struct{}
	endOnce   sync.Once
}

// endExec marks a task on a custom executor as ended for its waiter.
func (t *task) endExec() {
	if t.execEnded != nil {
		t.endOnce.Do(func() { close(t.execEnded) })
	}
}

// runTask handles a RunTask: a duplicate is ignored, a new task is recorded
// and launched in the background.
func (a *Agent) runTask(fw *corralpb.FrameworkInfo, ti *corralpb.TaskInfo) {
	k := taskKey{fw.GetId(), ti.GetTaskId()}
	logger := a.logger.With("framework_id", k.framework, "task_id", k.task)
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.tasks[k]; ok {
		// The master resends RunTask after a reconnect when it has not yet
		// seen the task's first update; running it twice would be wrong.
		logger.Info("ignoring duplicate RunTask")
		return
	}
	iso := a.cfg.Isolator
	if typ := ti.GetContainer().GetType(); typ != "" {
		iso = typ // launch refuses a type this agent lacks, as an ordinary update
	}
	t := &task{
		key:         k,
		framework:   fw,
		info:        ti,
		containerID: newID(),
		isolator:    iso,
		logger:      logger,
		done:        make(chan struct{}),
		execEnded:   make(chan struct{}),
		state:       corralpb.TaskState_TASK_STAGING,
	}
	t.infoBytes, _ = proto.Marshal(ti) // a message the master sent marshals
	a.addTaskLocked(t)
	if a.stopping {
		// Shutdown has begun; there is no one left to tear the task down.
		t.terminal = true
		t.state = corralpb.TaskState_TASK_LOST
		close(t.done)
		st := a.newStatus(t, corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_AGENT_REMOVED, "agent is shutting down")
		go a.report(t, st)
		return
	}
	logger.Info("launching task", "container_id", t.containerID)
	a.taskWG.Go(func() { a.launch(t) })
}

// launch drives a task from sandbox creation to its terminal update.
func (a *Agent) launch(t *task) {
	defer close(t.done)
	if runsOnExecutor(t) {
		a.launchOnExecutor(t)
		return
	}
	ctx := a.taskCtx
	fail := func(err error) {
		t.logger.Warn("task launch failed", "error", err)
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_LAUNCH_FAILED, err.Error(), nil)
	}

	// Checkpointed before anything the master or the kernel can see: a
	// restarted agent then knows the task and its container ID.
	a.persistFramework(t.framework)
	a.persistTask(t)

	if _, ok := a.isos[t.isolator]; !ok {
		msg := fmt.Sprintf("agent %s has no %q isolator (it has: %s); choose an agent whose %q attribute lists it",
			a.ID(), t.isolator, a.cfg.Attributes[IsolatorsAttribute], IsolatorsAttribute)
		t.logger.Warn("task refused", "reason", msg)
		a.finish(t, corralpb.TaskState_TASK_ERROR, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_INVALID, msg, nil)
		return
	}
	res, err := resources.FromProto(t.info.GetResources())
	if err != nil {
		fail(fmt.Errorf("task resources: %w", err))
		return
	}
	dir, err := sandbox.Create(a.cfg.sandboxRoot(), t.key.framework, t.key.task)
	if err != nil {
		fail(err)
		return
	}
	a.mu.Lock()
	t.res, t.sandbox = res, dir
	a.mu.Unlock()
	if !a.admitTaskUser(t, dir) { // taskuser.go: the task's OS user exists, is not a refused root; owns the sandbox
		return
	}
	if isExecutorContainer(t) {
		if err := a.prepareExecutorSandbox(ctx, t, dir); err != nil {
			fail(err)
			return
		}
	}
	cmd := t.info.GetCommand()
	// The agent's executor process (started now if this is the first
	// task, or it died). Taken before STARTING is checkpointed, so that
	// one write records the task's state and the executor that will hold
	// it: a restarted agent must be able to find the executor.
	h, err := a.plugins.Executors.Launch(ctx, t.key.task, filepath.Join(dir, "executor.log"))
	if err != nil {
		fail(fmt.Errorf("start executor: %w", err))
		return
	}
	detached := false
	defer func() {
		if !detached {
			h.Release() // however the task ends, its executor forgets it
		}
	}()
	a.mu.Lock()
	t.exec, t.execInfo = h, h.Reattach
	a.mu.Unlock()
	a.update(t, corralpb.TaskState_TASK_STARTING, corralpb.TaskStatus_REASON_UNSPECIFIED, "")
	if isExecutorContainer(t) {
		a.persistTask(t) // update records nothing for an executor's container
	}
	if a.abortIfKilled(t) {
		return
	}
	if cmd == nil {
		fail(errors.New("task has no command"))
		return
	}

	// A launch starts the task's shim and calls the isolator
	// twice: a burst of them at once only slow each other down. The slot
	// is held until the task runs (or fails to).
	select {
	case a.launchSlots <- struct{}{}:
	case <-ctx.Done():
		fail(fmt.Errorf("launch: %w", ctx.Err()))
		return
	}
	releaseSlot := sync.OnceFunc(func() { <-a.launchSlots })
	defer releaseSlot()
	if a.abortIfKilled(t) {
		return
	}

	req := &executor.LaunchRequest{
		ContainerID: t.containerID,
		TaskID:      t.key.task,
		Command: executor.Command{
			Shell:       cmd.GetShell(),
			Value:       cmd.GetValue(),
			Arguments:   cmd.GetArguments(),
			Environment: cmd.GetEnvironment(),
			User:        a.userFor(t),
		},
		SandboxDir:  dir,
		StdoutPath:  filepath.Join(dir, sandbox.Stdout),
		StderrPath:  filepath.Join(dir, sandbox.Stderr),
		Environment: a.taskEnv(t, res, dir),
	}
	if isExecutorContainer(t) {
		a.executorEnv(t, req.Environment)
	}
	lresp, err := h.Executor.Launch(ctx, req, &containerService{a: a, t: t})
	releaseSlot()
	if err != nil {
		a.cleanupContainer(t)
		fail(fmt.Errorf("launch: %w", err))
		return
	}
	a.mu.Lock()
	t.launched = true
	t.pid = lresp.Pid
	killNow, grace := t.killRequested, t.killGrace
	a.mu.Unlock()
	t.logger.Info("task running", "pid", lresp.Pid)
	a.update(t, corralpb.TaskState_TASK_RUNNING, corralpb.TaskStatus_REASON_UNSPECIFIED, "")
	a.startHealthCheck(t)
	if killNow {
		// A kill arrived while launching; killTask left it to us.
		go a.shutdownExecutor(t, h, grace)
	}
	detached = a.await(t, h)
}

// await waits for a running task's executor to report its end, then tears
// the task down and sends its terminal update. An executor that dies (or
// stops answering) is replaced by a fresh one that takes the task over
// from its shim, up to maxExecutorRestarts times in a row. When the agent
// stops and leaves its tasks running (on_shutdown = "keep"), await detaches
// from the executor instead and reports true.
func (a *Agent) await(t *task, h *ExecutorHandle) (detached bool) {
	var result *executor.ExitResult
	var waitErr error
	defer a.stopHealthCheck(t)
	for restarts := 0; ; restarts++ {
		result, waitErr = h.Executor.Wait(a.taskCtx)
		if waitErr != nil && a.isDetaching() {
			h.Detach()
			t.logger.Info("agent stopping: task left running under its executor")
			return true
		}
		if waitErr == nil || restarts >= maxExecutorRestarts {
			break
		}
		t.logger.Warn("executor lost; another takes the task over", "error", waitErr, "restart", restarts+1)
		// The connection broke: the process is dead or unreachable. Make
		// sure it is gone (it serves every task; each is taken over by the
		// new one), so the restart below starts a fresh process rather than
		// find this one not yet reaped. The task is the shim's child, not
		// the executor's.
		h.KillProcess()
		h.Release()
		h2, err := a.restartExecutor(a.taskCtx, t)
		if err != nil {
			t.logger.Error("executor restart failed", "error", err)
			waitErr = fmt.Errorf("%w; restarting it failed: %w", waitErr, err)
			break
		}
		h = h2
	}
	release := h.Release
	a.stopHealthCheck(t)
	a.mu.Lock()
	killed, unhealthy := t.killRequested, t.unhealthy
	a.mu.Unlock()
	// Asked before Cleanup, which removes the container's counters. A
	// command that exited 0 by itself was not stopped by a limit, and a
	// task someone killed ends KILLED unless Watch had already reported a
	// limitation: neither needs the isolator asked (one call per task
	// saved when a thousand are killed at once).
	clean := waitErr == nil && result != nil && result.Err == "" && result.Signal == 0 && result.ExitCode == 0
	lim := a.limitationAfterExit(t, clean || killed)
	// Not checkpointed here: the terminal update below writes the task
	// record (cleaned included) with it. An agent that dies in between
	// cleans up again at recovery, which finds nothing left.
	a.releaseContainer(t)
	if lim == nil && !clean && !killed {
		// Watch may deliver the limitation while the isolator is asked or
		// the container cleaned up (its poll and the exit race on a loaded
		// machine, and the OOM count can lag the kill): take it if it came.
		a.mu.Lock()
		lim = t.limitation
		a.mu.Unlock()
	}
	release()
	switch {
	case lim != nil:
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_AGENT,
			limitationReason(lim), lim.Message, exitCode(result))
	case unhealthy:
		a.finish(t, corralpb.TaskState_TASK_KILLED, corralpb.TaskStatus_SOURCE_EXECUTOR,
			corralpb.TaskStatus_REASON_TASK_UNHEALTHY, "task killed: it failed its health check", exitCode(result))
	case killed:
		a.finish(t, corralpb.TaskState_TASK_KILLED, corralpb.TaskStatus_SOURCE_EXECUTOR,
			corralpb.TaskStatus_REASON_KILLED, "task killed", exitCode(result))
	case waitErr != nil:
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED, fmt.Sprintf("executor failed: %v", waitErr), nil)
	case result.Err != "":
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_EXECUTOR,
			corralpb.TaskStatus_REASON_LAUNCH_FAILED, result.Err, nil)
	case result.Signal > 0:
		code := 128 + result.Signal
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_EXECUTOR,
			corralpb.TaskStatus_REASON_COMMAND_EXITED,
			fmt.Sprintf("command terminated by signal %s (%d)", signalName(result.Signal), result.Signal), &code)
	case result.ExitCode == 0:
		code := 0
		a.finish(t, corralpb.TaskState_TASK_FINISHED, corralpb.TaskStatus_SOURCE_EXECUTOR,
			corralpb.TaskStatus_REASON_COMMAND_EXITED, "command exited with status 0", &code)
	default:
		code := result.ExitCode
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_EXECUTOR,
			corralpb.TaskStatus_REASON_COMMAND_EXITED, fmt.Sprintf("command exited with status %d", code), &code)
	}
	return false
}

// abortIfKilled ends a task that was killed before its process started.
func (a *Agent) abortIfKilled(t *task) bool {
	a.mu.Lock()
	killed := t.killRequested
	a.mu.Unlock()
	if killed {
		a.finish(t, corralpb.TaskState_TASK_KILLED, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_KILLED, "task killed before it started", nil)
	}
	return killed
}

func exitCode(r *executor.ExitResult) *int {
	if r == nil || r.Err != "" {
		return nil
	}
	code := r.ExitCode
	if r.Signal > 0 {
		code = 128 + r.Signal
	}
	return &code
}

func signalName(sig int) string {
	if n := unix.SignalName(syscall.Signal(sig)); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(sig)
}

// userFor is the user the task runs as: the command's, else the
// framework's, as in Mesos.
func (a *Agent) userFor(t *task) string {
	if u := t.info.GetCommand().GetUser(); u != "" {
		return u
	}
	return t.framework.GetUser()
}

// taskEnv is what the agent tells every task about itself: the variables
// Mesos sets (MESOS_SANDBOX, MESOS_TASK_ID, ...) under a CORRAL_ prefix,
// the task's allocation, and its ports.
func (a *Agent) taskEnv(t *task, res resources.Resources, dir string) map[string]string {
	env := map[string]string{
		"CORRAL_TASK_ID":      t.key.task,
		"CORRAL_FRAMEWORK_ID": t.key.framework,
		"CORRAL_AGENT_ID":     a.ID(),
		"CORRAL_SANDBOX":      dir,
		// Mesos' MESOS_DIRECTORY: the same sandbox, seen from the agent.
		"CORRAL_DIRECTORY":    dir,
		"CORRAL_CONTAINER_ID": t.containerID,
		// The command executor runs one task: its executor ID is the task's.
		"CORRAL_EXECUTOR_ID": t.key.task,
		"CORRAL_CHECKPOINT":  "1",
		// SIGTERM to SIGKILL when the task is killed.
		"CORRAL_EXECUTOR_SHUTDOWN_GRACE_PERIOD": a.graceFor(t, 0).String(),
	}
	if n := t.info.GetName(); n != "" {
		env["CORRAL_TASK_NAME"] = n
	}
	if n := t.framework.GetName(); n != "" {
		env["CORRAL_FRAMEWORK_NAME"] = n
	}
	if h := a.cfg.Hostname; h != "" {
		env["CORRAL_AGENT_HOSTNAME"] = h
	}
	if a.url != "" {
		env["CORRAL_AGENT_ENDPOINT"] = strings.TrimPrefix(a.url, "http://")
	}
	if v := res.Scalar(resources.CPUs); v > 0 {
		env["CORRAL_CPUS"] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	if v := res.Scalar(resources.Mem); v > 0 {
		env["CORRAL_MEM_MB"] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	var ports []string
	for _, r := range res.Ranges(resources.Ports) {
		for p := r.Begin; p <= r.End && p >= r.Begin; p++ {
			env["PORT"+strconv.Itoa(len(ports))] = strconv.FormatUint(p, 10)
			ports = append(ports, strconv.FormatUint(p, 10))
		}
	}
	if len(ports) > 0 {
		env["PORTS"] = strings.Join(ports, ",")
	}
	return env
}

// graceFor picks the SIGTERM-to-SIGKILL grace: the task's, else the kill
// request's, else the configured default.
func (a *Agent) graceFor(t *task, requested time.Duration) time.Duration {
	if g := t.info.GetKillGraceSeconds(); g > 0 {
		return time.Duration(g * float64(time.Second))
	}
	if requested > 0 {
		return requested
	}
	return a.cfg.ExecutorShutdownGrace
}

// killTask asks a task to stop. A task still launching stops at its next
// step; a running one gets its executor's Shutdown; a task on a custom
// executor is killed by that executor.
func (a *Agent) killTask(t *task, grace time.Duration) {
	if runsOnExecutor(t) {
		a.killOnExecutor(t, grace)
		return
	}
	a.mu.Lock()
	if t.terminal || t.killRequested {
		a.mu.Unlock()
		return
	}
	t.killRequested, t.killGrace = true, grace
	h, launched := t.exec, t.launched
	a.mu.Unlock()
	t.logger.Info("killing task", "grace", grace)
	if launched {
		go a.shutdownExecutor(t, h, grace)
	}
}

// shutdownExecutor stops the task's process group; if the executor does not
// manage, the isolator's Cleanup kills what is left of the container (the
// task's shim then reports its end). An executor that did not even answer
// in time is killed: it serves every task, and a fresh one takes them over.
func (a *Agent) shutdownExecutor(t *task, h *ExecutorHandle, grace time.Duration) {
	ctx, cancel := context.WithTimeout(a.taskCtx, grace+pluginCallTimeout)
	defer cancel()
	if err := h.Executor.Shutdown(ctx, grace); err != nil {
		if ctx.Err() != nil && a.taskCtx.Err() == nil {
			t.logger.Warn("executor did not answer shutdown; killing the executor process and the container", "error", err)
			h.KillProcess()
		} else {
			t.logger.Warn("executor shutdown failed; killing the container", "error", err)
		}
		a.cleanupContainer(t)
	}
}

// isolatorOf is the live isolator instance of t's container.
func (a *Agent) isolatorOf(t *task) (isolator.Isolator, error) {
	h, ok := a.isos[t.isolator]
	if !ok {
		return nil, fmt.Errorf("no %q isolator on this agent", t.isolator)
	}
	return h.Current()
}

// cleanupContainer releases the task's container through the isolator
// and checkpoints that it did.
func (a *Agent) cleanupContainer(t *task) {
	if a.releaseContainer(t) {
		a.persistTask(t)
	}
}

// releaseContainer releases the task's container through the isolator and
// reports whether it did; the caller checkpoints it.
func (a *Agent) releaseContainer(t *task) bool {
	iso, err := a.isolatorOf(t)
	if err != nil {
		t.logger.Error("container cleanup: no isolator", "container_id", t.containerID, "error", err)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), pluginCallTimeout)
	defer cancel()
	if err := iso.Cleanup(ctx, t.containerID); err != nil {
		t.logger.Error("container cleanup failed", "container_id", t.containerID, "error", err)
		return false
	}
	a.mu.Lock()
	t.cleaned = true
	a.mu.Unlock()
	return true
}

// update sends a non-terminal status update from the executor.
func (a *Agent) update(t *task, state corralpb.TaskState, reason corralpb.TaskStatus_Reason, msg string) {
	a.mu.Lock()
	if isExecutorContainer(t) {
		t.state = state // the executor's process is no task of the master's
		a.mu.Unlock()
		return
	}
	if t.frameworkGone {
		a.mu.Unlock()
		return
	}
	t.state = state
	st := a.newStatus(t, state, corralpb.TaskStatus_SOURCE_EXECUTOR, reason, msg)
	a.mu.Unlock()
	a.report(t, st)
}

// finish records a task's terminal state and sends its last update.
func (a *Agent) finish(t *task, state corralpb.TaskState, source corralpb.TaskStatus_Source,
	reason corralpb.TaskStatus_Reason, msg string, code *int) {
	if isExecutorContainer(t) {
		a.containerEnded(t, state, msg, code)
		return
	}
	t.logger.Info("task ended", "state", state, "message", msg)
	a.mu.Lock()
	t.state, t.terminal = state, true
	if t.frameworkGone {
		// Nobody will acknowledge the update: forget the task now.
		delete(a.tasks, t.key)
		a.mu.Unlock()
		a.forgetCheckpointed(t.key)
		return
	}
	st := a.newStatus(t, state, source, reason, msg)
	if code != nil {
		st.HasExitCode, st.ExitCode = true, int32(*code)
	}
	a.mu.Unlock()
	a.report(t, st)
}

// report checkpoints an update together with the task's new state, then
// hands it to the status update manager: an update the master may see is
// always on disk first. Updates of one task come from one goroutine at a
// time, so they keep their order.
func (a *Agent) report(t *task, st *corralpb.TaskStatus) {
	a.mu.Lock()
	rec := a.recordLocked(t)
	a.mu.Unlock()
	a.persistUpdate(rec, t.key, st)
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.frameworkGone {
		// ShutdownFramework dropped the framework's updates meanwhile.
		go a.forgetUpdate(t.key, st.GetUuid())
		return
	}
	a.enqueueLocked(t, st)
}

// enqueueLocked hands an update to the status update manager. Holding mu
// makes the framework-gone check and the enqueue atomic with
// ShutdownFramework's drop.
func (a *Agent) enqueueLocked(t *task, st *corralpb.TaskStatus) {
	a.updates.Enqueue(statusupdate.Update{FrameworkID: t.key.framework, Status: st})
}

// newStatus builds a status with a fresh UUID. Caller may hold mu.
func (a *Agent) newStatus(t *task, state corralpb.TaskState, source corralpb.TaskStatus_Source,
	reason corralpb.TaskStatus_Reason, msg string) *corralpb.TaskStatus {
	st := &corralpb.TaskStatus{
		TaskId:          t.key.task,
		State:           state,
		Message:         msg,
		Source:          source,
		Reason:          reason,
		AgentId:         a.id,
		TimestampUnixMs: time.Now().UnixMilli(),
		Uuid:            newUUID(),
		SandboxUrl:      a.sandboxURL(t.key),
	}
	if runsOnExecutor(t) {
		st.ExecutorId = t.info.GetExecutor().GetExecutorId()
	}
	if t.healthKnown {
		healthy := t.healthy
		st.Healthy = &healthy
	}
	return st
}

func (a *Agent) sandboxURL(k taskKey) string {
	return a.url + "/api/v1/sandbox/" + url.PathEscape(k.framework) + "/" + url.PathEscape(k.task)
}

// forgetTask is called once a task's terminal update is acknowledged.
func (a *Agent) forgetTask(frameworkID, taskID string) {
	k := taskKey{frameworkID, taskID}
	a.mu.Lock()
	t, ok := a.tasks[k]
	if !ok || !t.terminal {
		a.mu.Unlock()
		return
	}
	delete(a.tasks, k)
	cleaned := t.cleaned || (t.exec == nil && t.execInfo == nil) // no executor, no container
	a.mu.Unlock()
	t.logger.Debug("terminal update acknowledged; forgetting task")
	go func() {
		if !cleaned {
			// The teardown's Cleanup failed or never ran; try once more.
			a.cleanupContainer(t)
		}
		a.forgetCheckpointed(k)
	}()
}

// containerService is what a task's executor may ask of the agent: only
// its own container, with the limits the agent decides.
type containerService struct {
	a *Agent
	t *task
}

func (c *containerService) check(containerID string) error {
	if containerID != c.t.containerID {
		return fmt.Errorf("container %q does not belong to task %s", containerID, c.t.key.task)
	}
	return nil
}

func (c *containerService) Prepare(ctx context.Context, containerID string) (*isolator.LaunchSpec, error) {
	if err := c.check(containerID); err != nil {
		return nil, err
	}
	iso, err := c.a.isolatorOf(c.t)
	if err != nil {
		return nil, fmt.Errorf("prepare container: %w", err)
	}
	c.a.mu.Lock()
	req := isolator.PrepareRequest{ContainerID: containerID, Resources: c.t.res, SandboxDir: c.t.sandbox,
		User: c.a.userFor(c.t), AgentID: c.a.id, CPUQuota: cpuQuotaChoice(c.t.info),
		Rootfs: c.t.info.GetContainer().GetRootfs(), Hostname: containerHostname(c.t.info)}
	c.a.mu.Unlock()
	spec, err := iso.Prepare(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("prepare container: %w", err)
	}
	return spec, nil
}

func (c *containerService) Isolate(ctx context.Context, containerID string, pid int) error {
	if err := c.check(containerID); err != nil {
		return err
	}
	iso, err := c.a.isolatorOf(c.t)
	if err != nil {
		return fmt.Errorf("isolate container: %w", err)
	}
	if err := iso.Isolate(ctx, containerID, pid); err != nil {
		return fmt.Errorf("isolate container: %w", err)
	}
	c.a.mu.Lock()
	c.t.pid = pid
	c.a.mu.Unlock()
	return nil
}

// containerHostname is the hostname a task asked for, or else its ID (the
// isolator makes it a valid hostname).
func containerHostname(ti *corralpb.TaskInfo) string {
	if h := ti.GetContainer().GetHostname(); h != "" {
		return h
	}
	return ti.GetTaskId()
}

// cpuQuotaChoice is the task's own choice of a hard CPU quota, nil if it
// made none.
func cpuQuotaChoice(ti *corralpb.TaskInfo) *bool {
	if c := ti.GetContainer(); c != nil && c.CpuQuota != nil {
		q := *c.CpuQuota
		return &q
	}
	return nil
}

func newUUID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

func newID() string { return hex.EncodeToString(newUUID()) }
