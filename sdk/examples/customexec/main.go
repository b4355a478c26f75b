// Command customexec is an example custom executor (sdk/executor): one
// process runs many tasks of its framework, each task's command as a child
// of the executor (/bin/sh -c), Spark-style. Every update's message names
// the executor's pid, so a framework can see that its tasks shared one
// executor. A framework message "ping:<x>" is answered with "pong:<x>
// pid=<pid>"; any other message is echoed back.
//
// Build it and name its path (or an http URL serving it) in
// TaskInfo.executor.command.value; see sdk/executor/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/sdk/executor"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

type handler struct {
	log hclog.Logger
	mu  sync.Mutex
	// running tasks' processes, by task ID
	procs  map[string]*exec.Cmd
	killed map[string]bool
	wg     sync.WaitGroup
}

func (h *handler) Launch(ctx context.Context, d *executor.Driver, t *corralpb.TaskInfo) {
	id := t.GetTaskId()
	cmd := t.GetCommand()
	var c *exec.Cmd
	switch {
	case cmd.GetShell() || len(cmd.GetArguments()) == 0:
		c = exec.Command("/bin/sh", "-c", cmd.GetValue())
	default:
		c = exec.Command(cmd.GetValue(), cmd.GetArguments()[1:]...)
	}
	c.Env = os.Environ()
	for k, v := range cmd.GetEnvironment() {
		c.Env = append(c.Env, k+"="+v)
	}
	c.Env = append(c.Env, "CORRAL_TASK_ID="+id)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		_ = d.Update(ctx, id, corralpb.TaskState_TASK_FAILED, fmt.Sprintf("executor pid=%d: start: %v", os.Getpid(), err))
		return
	}
	h.mu.Lock()
	h.procs[id] = c
	h.mu.Unlock()
	_ = d.Update(ctx, id, corralpb.TaskState_TASK_RUNNING, fmt.Sprintf("executor pid=%d", os.Getpid()))
	h.wg.Go(func() {
		err := c.Wait()
		h.mu.Lock()
		delete(h.procs, id)
		killed := h.killed[id]
		h.mu.Unlock()
		st := &corralpb.TaskStatus{TaskId: id, State: corralpb.TaskState_TASK_FINISHED, HasExitCode: true}
		var ee *exec.ExitError
		switch {
		case killed:
			st.State = corralpb.TaskState_TASK_KILLED
		case errors.As(err, &ee):
			st.State = corralpb.TaskState_TASK_FAILED
			st.ExitCode = int32(ee.ExitCode())
		case err != nil:
			st.State = corralpb.TaskState_TASK_FAILED
			st.HasExitCode = false
		}
		st.Message = fmt.Sprintf("executor pid=%d: exit %d", os.Getpid(), st.ExitCode)
		if err := d.UpdateStatus(ctx, st); err != nil {
			h.log.Warn("update not delivered now; resent on re-subscription", "task_id", id, "error", err)
		}
	})
}

func (h *handler) Kill(_ context.Context, _ *executor.Driver, taskID string, grace time.Duration) {
	h.mu.Lock()
	c := h.procs[taskID]
	h.killed[taskID] = true
	h.mu.Unlock()
	if c != nil {
		terminate(c, grace)
	}
}

func terminate(c *exec.Cmd, grace time.Duration) {
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	go func() {
		time.Sleep(grace)
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}()
}

func (h *handler) Message(ctx context.Context, d *executor.Driver, data []byte) {
	reply := data
	if x, ok := strings.CutPrefix(string(data), "ping:"); ok {
		reply = fmt.Appendf(nil, "pong:%s pid=%d", x, os.Getpid())
	}
	if err := d.SendMessage(ctx, reply); err != nil {
		h.log.Warn("message not sent", "error", err)
	}
}

func (h *handler) Shutdown(_ context.Context, _ *executor.Driver, grace time.Duration) {
	h.mu.Lock()
	for id, c := range h.procs {
		h.killed[id] = true
		terminate(c, grace)
	}
	h.mu.Unlock()
	h.wg.Wait() // their KILLED updates go out before the executor exits
}

func main() {
	log := hclog.New(&hclog.LoggerOptions{Name: "customexec", Output: os.Stderr, Level: hclog.Info})
	cfg, err := executor.ConfigFromEnv()
	if err != nil {
		log.Error("not started by an agent", "error", err)
		os.Exit(2)
	}
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	h := &handler{log: log, procs: map[string]*exec.Cmd{}, killed: map[string]bool{}}
	if err := executor.Run(ctx, cfg, h); err != nil {
		// Killed (SIGTERM) or the agent is gone for good: take the tasks along.
		h.Shutdown(context.Background(), nil, time.Second)
		log.Error("executor stopped", "error", err)
		os.Exit(1)
	}
	log.Info("executor shut down")
}
