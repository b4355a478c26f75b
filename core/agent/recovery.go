package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/agent/checkpoint"
	"github.com/corral-project/corral/core/agent/statusupdate"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/sdk/procfs"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// reattachTimeout bounds reconnecting to one executor at start-up.
const reattachTimeout = 20 * time.Second

// openCheckpoint opens the checkpoint store and loads what a previous run
// left. An unusable store stops start-up with an error naming the file,
// unless Recover is cleanup: then it is moved aside and the agent starts
// fresh under a new ID. With cleanup, a readable store's tasks are killed.
func (a *Agent) openCheckpoint(ctx context.Context) (*checkpoint.State, error) {
	path := a.cfg.checkpointPath()
	store, err := checkpoint.Open(path)
	var st *checkpoint.State
	if err == nil {
		if st, err = store.Load(); err != nil {
			_ = store.Close()
		}
	}
	if err == nil && st.AgentID != "" {
		if idErr := checkStoredID(path, st.AgentID); idErr != nil {
			_ = store.Close()
			err = idErr
		}
	}
	cleanup := a.cfg.Recover == RecoverCleanup
	switch {
	case err != nil && !cleanup:
		return nil, fmt.Errorf("%w (start the agent with -recover=cleanup to discard it: its tasks are killed and the agent registers under a new ID)", err)
	case err != nil:
		a.logger.Warn("checkpoint unusable; starting fresh (-recover=cleanup)", "error", err)
	case cleanup:
		a.killCheckpointed(ctx, st)
		_ = store.Close()
	default:
		a.ckpt = store
		if st.AgentID != "" {
			a.mu.Lock()
			if a.id != "" && a.id != st.AgentID {
				a.logger.Warn("agent ID file and checkpoint disagree; using the checkpoint's", "file", a.id, "checkpoint", st.AgentID)
			}
			a.id = st.AgentID
			a.mu.Unlock()
		}
		return st, nil
	}
	aside, derr := checkpoint.Discard(path)
	if derr != nil {
		return nil, derr
	}
	if aside != "" {
		a.logger.Warn("old checkpoint moved aside", "path", aside)
	}
	if err := os.Remove(a.cfg.idFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove agent ID file: %w", err)
	}
	a.mu.Lock()
	a.id = ""
	a.mu.Unlock()
	if a.ckpt, err = checkpoint.Open(path); err != nil {
		return nil, err
	}
	return &checkpoint.State{}, nil
}

// killCheckpointed ends the executors and tasks a readable checkpoint
// names (-recover=cleanup); their containers go as orphans when the
// isolators recover with none known.
func (a *Agent) killCheckpointed(ctx context.Context, st *checkpoint.State) {
	var wg sync.WaitGroup
	for _, rec := range st.Tasks {
		if rec.Terminal || len(rec.Executor) == 0 {
			continue
		}
		wg.Go(func() {
			logger := a.logger.With("framework_id", rec.FrameworkID, "task_id", rec.TaskID)
			rctx, cancel := context.WithTimeout(ctx, reattachTimeout)
			defer cancel()
			h, err := a.plugins.Executors.Reattach(rctx, rec.TaskID, filepath.Join(rec.Sandbox, "executor.log"), rec.Executor)
			if err != nil {
				logger.Info("cleanup: executor already gone", "error", err)
				return
			}
			if err := h.Executor.Shutdown(rctx, a.cfg.ExecutorShutdownGrace); err != nil {
				logger.Warn("cleanup: task shutdown failed; killing its executor", "error", err)
			}
			h.Release()
			logger.Info("cleanup: killed task left by the previous run")
		})
	}
	wg.Wait()
	if c, ok := a.plugins.Executors.(executorCloser); ok {
		c.Close(false) // the previous run's executor processes go too
	}
}

// restore rebuilds the task table and the update queues from the
// checkpoint. Nothing is sent yet: the master connection starts later.
func (a *Agent) restore(st *checkpoint.State) error {
	frameworks := map[string]*corralpb.FrameworkInfo{}
	for id, b := range st.Frameworks {
		fw := &corralpb.FrameworkInfo{}
		if err := proto.Unmarshal(b, fw); err != nil {
			return &checkpoint.Error{Path: a.cfg.checkpointPath(), Problem: fmt.Sprintf("framework %q does not decode", id), Err: err}
		}
		frameworks[id] = fw
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rec := range st.Tasks {
		info := &corralpb.TaskInfo{}
		if err := proto.Unmarshal(rec.Info, info); err != nil {
			return &checkpoint.Error{Path: a.cfg.checkpointPath(), Problem: fmt.Sprintf("task %q of framework %q does not decode", rec.TaskID, rec.FrameworkID), Err: err}
		}
		fw := frameworks[rec.FrameworkID]
		if fw == nil {
			fw = &corralpb.FrameworkInfo{Id: rec.FrameworkID}
		}
		res, _ := resources.FromProto(info.GetResources()) // was valid when it launched
		k := taskKey{rec.FrameworkID, rec.TaskID}
		t := &task{
			key: k, framework: fw, info: info, infoBytes: rec.Info, res: res,
			containerID: rec.ContainerID, isolator: rec.Isolator, sandbox: rec.Sandbox,
			logger: a.logger.With("framework_id", k.framework, "task_id", k.task),
			done:   make(chan struct{}),
			state:  corralpb.TaskState(rec.State), pid: rec.Pid, launched: rec.Launched,
			terminal: rec.Terminal, cleaned: rec.Cleaned, execInfo: rec.Executor,
			execEnded: make(chan struct{}),
		}
		if t.terminal {
			close(t.done)
		}
		a.addTaskLocked(t)
	}
	for _, u := range st.Updates {
		status := &corralpb.TaskStatus{}
		if err := proto.Unmarshal(u.Status, status); err != nil {
			return &checkpoint.Error{Path: a.cfg.checkpointPath(), Problem: fmt.Sprintf("status update of task %q does not decode", u.TaskID), Err: err}
		}
		a.updates.Enqueue(statusupdate.Update{FrameworkID: u.FrameworkID, Status: status})
	}
	a.restoreExecutorsLocked()
	if n := len(st.Tasks); n > 0 || len(st.Updates) > 0 {
		a.logger.Info("recovered checkpoint", "tasks", n, "unacknowledged_updates", len(st.Updates))
	}
	return nil
}

// recoverTasks reconnects to the executors of every task the checkpoint
// says is live, in parallel, and settles the fate of the others. It
// returns once each task is supervised again or has its terminal update
// queued, so that the registration that follows lists exactly the live
// tasks.
func (a *Agent) recoverTasks(ctx context.Context) {
	a.mu.Lock()
	var live, settled, onExec []*task
	for _, t := range a.tasks {
		switch {
		case t.terminal:
			settled = append(settled, t)
		case runsOnExecutor(t):
			onExec = append(onExec, t)
		default:
			live = append(live, t)
		}
	}
	a.mu.Unlock()
	a.recoverExecutors(onExec)
	var wg sync.WaitGroup
	for _, t := range live {
		wg.Go(func() { a.recoverTask(ctx, t) })
	}
	// A terminal task whose update was acknowledged before the crash but
	// not yet forgotten: finish forgetting it.
	for _, t := range settled {
		if len(a.updates.Pending(t.key.framework, t.key.task)) == 0 {
			a.forgetTask(t.key.framework, t.key.task)
		}
	}
	wg.Wait()
	if len(live) > 0 {
		a.logger.Info("task recovery done", "tasks", len(live))
	}
}

// recoverTask reattaches one task's executor, or reports what became of it.
func (a *Agent) recoverTask(ctx context.Context, t *task) {
	fail := func(state corralpb.TaskState, reason corralpb.TaskStatus_Reason, msg string) {
		a.cleanupContainer(t)
		a.finish(t, state, corralpb.TaskStatus_SOURCE_AGENT, reason, msg, nil)
		close(t.done)
	}
	if len(t.execInfo) == 0 {
		fail(corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_REASON_LAUNCH_FAILED,
			"the agent stopped before the task's executor started; the task never ran")
		return
	}
	rctx, cancel := context.WithTimeout(ctx, reattachTimeout)
	defer cancel()
	h, err := a.plugins.Executors.Reattach(rctx, t.key.task, filepath.Join(t.sandbox, "executor.log"), t.execInfo)
	if err != nil {
		// The executor died too; the task's shim may hold the task or
		// its exit status. A fresh executor takes it over from there.
		t.logger.Warn("executor gone after agent restart; starting another", "error", err)
		h2, rerr := a.restartExecutor(ctx, t)
		if rerr == nil {
			h, err = h2, nil
		} else {
			err = fmt.Errorf("%w; a new executor could not take the task over: %w", err, rerr)
		}
	}
	if err != nil {
		t.logger.Warn("executor gone after agent restart", "error", err)
		if t.pid != 0 && procfs.Alive(t.pid, 0) {
			fail(corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED,
				fmt.Sprintf("the task's executor exited while the agent was down (%v); its task (pid %d) was killed", err, t.pid))
			return
		}
		fail(corralpb.TaskState_TASK_LOST, corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED,
			fmt.Sprintf("the task's executor exited while the agent was down and its exit status was not recorded (%v)", err))
		return
	}
	a.mu.Lock()
	t.exec = h
	launched, pid := t.launched, t.pid
	a.mu.Unlock()
	if !launched || pid == 0 {
		// The agent stopped between starting the executor and hearing
		// back from Launch: ask the executor whether the task started
		// (Recover of a task it holds reports it; one it lost it takes
		// over from the shim).
		resp, err := h.Executor.Recover(rctx, &executor.RecoverRequest{ContainerID: t.containerID, TaskID: t.key.task, SandboxDir: t.sandbox})
		if err != nil {
			h.Release()
			fail(corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_REASON_LAUNCH_FAILED,
				fmt.Sprintf("the agent stopped while launching the task; it never started (%v)", err))
			return
		}
		a.mu.Lock()
		t.launched = true
		if resp.Pid != 0 {
			t.pid = resp.Pid
		}
		a.mu.Unlock()
		if resp.Pid != 0 {
			// The isolator recovered this container before the pid was
			// known, and a process isolator forgets a container without
			// one: hand it the pid, or a kill would miss the task.
			a.readoptContainer(rctx, t, resp.Pid)
		}
		a.persistTask(t)
	}
	a.mu.Lock()
	state := t.state
	a.mu.Unlock()
	if state != corralpb.TaskState_TASK_RUNNING {
		a.update(t, corralpb.TaskState_TASK_RUNNING, corralpb.TaskStatus_REASON_UNSPECIFIED, "")
	}
	t.logger.Info("reattached to task", "pid", t.pid)
	a.startHealthCheck(t)
	a.taskWG.Go(func() {
		defer close(t.done)
		a.await(t, h)
	})
}

// readoptContainer tells t's isolator that pid is the container's first
// process, for a container recovered without one.
func (a *Agent) readoptContainer(ctx context.Context, t *task, pid int) {
	iso, err := a.isolatorOf(t)
	if err == nil {
		err = iso.Isolate(ctx, t.containerID, pid)
	}
	if err != nil {
		t.logger.Warn("could not hand the recovered task's pid to its isolator", "pid", pid, "error", err)
	}
}

// isDetaching reports whether the agent is stopping and leaving its tasks
// running.
func (a *Agent) isDetaching() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.detaching
}

// detachTasks is a stopping agent's on_shutdown = "keep": every executor
// keeps its task; the supervising goroutines let go of them.
func (a *Agent) detachTasks() {
	a.mu.Lock()
	a.stopping, a.detaching = true, true
	n := 0
	for _, t := range a.tasks {
		if !t.terminal {
			n++
		}
	}
	a.mu.Unlock()
	if n > 0 {
		a.logger.Info("agent stopping: leaving tasks running (on_shutdown = keep)", "count", n)
	}
	a.taskCancel()
	a.taskWG.Wait()
}

// The checkpoint writes. A failed write is logged, not fatal: the agent
// keeps running its tasks and delivering updates from memory; only a
// restart would miss what was not written.

// recordLocked is t's checkpoint record; nil for a task the agent never
// ran (an unknown task's LOST update). Caller holds mu.
func (a *Agent) recordLocked(t *task) *checkpoint.Task {
	if t.info == nil {
		return nil
	}
	return &checkpoint.Task{
		FrameworkID: t.key.framework, TaskID: t.key.task, Info: t.infoBytes,
		ContainerID: t.containerID, Isolator: t.isolator, Sandbox: t.sandbox,
		State: int32(t.state), Pid: t.pid, Launched: t.launched, Terminal: t.terminal,
		Cleaned: t.cleaned, Executor: t.execInfo,
	}
}

func (a *Agent) persistTask(t *task) {
	if a.ckpt == nil {
		return
	}
	a.mu.Lock()
	if t.infoBytes == nil && t.info != nil {
		t.infoBytes, _ = proto.Marshal(t.info)
	}
	rec := a.recordLocked(t)
	gone := t.frameworkGone && t.terminal
	a.mu.Unlock()
	if rec == nil || gone {
		return
	}
	if err := a.ckpt.PutTask(*rec); err != nil {
		t.logger.Error("checkpoint task", "error", err)
	}
}

func (a *Agent) persistUpdate(rec *checkpoint.Task, k taskKey, st *corralpb.TaskStatus) {
	if a.ckpt == nil {
		return
	}
	b, err := proto.Marshal(st)
	if err == nil {
		err = a.ckpt.PutTaskAndUpdate(rec, checkpoint.Update{FrameworkID: k.framework, TaskID: k.task, UUID: st.GetUuid(), Status: b})
	}
	if err != nil {
		a.logger.Error("checkpoint status update", "framework_id", k.framework, "task_id", k.task, "error", err)
	}
}

func (a *Agent) persistFramework(fw *corralpb.FrameworkInfo) {
	if a.ckpt == nil {
		return
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(fw)
	if err == nil {
		a.fwSavedMu.Lock()
		defer a.fwSavedMu.Unlock()
		if saved, ok := a.fwSaved[fw.GetId()]; ok && string(saved) == string(b) {
			return // on disk already
		}
		err = a.ckpt.PutFramework(fw.GetId(), b)
	}
	if err != nil {
		a.logger.Error("checkpoint framework", "framework_id", fw.GetId(), "error", err)
		return
	}
	if a.fwSaved == nil {
		a.fwSaved = map[string][]byte{}
	}
	a.fwSaved[fw.GetId()] = b
}

func (a *Agent) persistAgent(id string) {
	if a.ckpt == nil {
		return
	}
	a.mu.Lock()
	info := &corralpb.AgentInfo{Id: id, Hostname: a.cfg.Hostname, Resources: a.resources.ToProto(), Attributes: a.cfg.Attributes, Url: a.url}
	a.mu.Unlock()
	b, err := proto.Marshal(info)
	if err == nil {
		err = a.ckpt.PutAgent(id, b)
	}
	if err != nil {
		a.logger.Error("checkpoint agent ID", "error", err)
	}
}

func (a *Agent) forgetUpdate(k taskKey, uuid []byte) {
	if a.ckpt == nil {
		return
	}
	if err := a.ckpt.RemoveUpdate(k.framework, k.task, uuid); err != nil {
		a.logger.Error("checkpoint: forget acknowledged update", "framework_id", k.framework, "task_id", k.task, "error", err)
	}
}

func (a *Agent) forgetCheckpointed(k taskKey) {
	if a.ckpt == nil {
		return
	}
	if err := a.ckpt.DeleteTask(k.framework, k.task); err != nil {
		a.logger.Error("checkpoint: forget task", "framework_id", k.framework, "task_id", k.task, "error", err)
	}
}

func (a *Agent) dropCheckpointedFramework(id string) {
	if a.ckpt == nil {
		return
	}
	a.fwSavedMu.Lock()
	delete(a.fwSaved, id)
	a.fwSavedMu.Unlock()
	if err := a.ckpt.DropFramework(id); err != nil {
		a.logger.Error("checkpoint: drop framework", "framework_id", id, "error", err)
	}
}

// maxExecutorRestarts bounds how often one task's executor is replaced.
const maxExecutorRestarts = 3

// restartExecutor has the agent's executor process (a fresh one if the
// last died: the first task to ask starts it) take the task over
// (executor.Recoverer): from its live shim, or from the exit status the
// shim recorded.
func (a *Agent) restartExecutor(ctx context.Context, t *task) (*ExecutorHandle, error) {
	a.mu.Lock()
	req := &executor.RecoverRequest{ContainerID: t.containerID, TaskID: t.key.task, SandboxDir: t.sandbox, Pid: t.pid}
	a.mu.Unlock()
	h, err := a.plugins.Executors.Launch(ctx, t.key.task, filepath.Join(t.sandbox, "executor.log"))
	if err != nil {
		return nil, fmt.Errorf("start executor: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, reattachTimeout)
	defer cancel()
	resp, err := h.Executor.Recover(rctx, req)
	if err != nil {
		h.Release()
		return nil, err
	}
	if req.Pid == 0 && resp.Pid != 0 {
		a.mu.Lock()
		t.pid = resp.Pid
		a.mu.Unlock()
		a.readoptContainer(rctx, t, resp.Pid)
	}
	a.mu.Lock()
	t.exec, t.execInfo = h, h.Reattach
	a.mu.Unlock()
	a.persistTask(t)
	t.logger.Info("new executor took the task over", "pid", req.Pid)
	return h, nil
}
