package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
)

// shell is a minimal real executor: many tasks per instance, each run in
// its own session with output to files. It shows that the contract suite
// accepts a correct plugin.
type shell struct {
	mu    sync.Mutex
	tasks map[string]*shellTask
}

type shellTask struct {
	pid  int
	done chan struct{}
	res  executor.ExitResult // set before done closes
}

func (s *shell) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindExecutor, Name: "shell", Version: "0.0.1", APIVersions: executor.APIVersions}, nil
}
func (s *shell) ConfigSchema(context.Context) (*base.Schema, error) { return &base.Schema{}, nil }
func (s *shell) SetConfig(_ context.Context, cfg []byte, _ string) error {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return fmt.Errorf("shell config: %w", err)
	}
	return nil
}

func (s *shell) Launch(ctx context.Context, req *executor.LaunchRequest, containers executor.ContainerService) (*executor.LaunchResponse, error) {
	spec, err := containers.Prepare(ctx, req.ContainerID)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if req.Command.Shell {
		cmd = exec.Command("/bin/sh", "-c", req.Command.Value)
	} else {
		cmd = exec.Command(req.Command.Value, req.Command.Arguments...)
	}
	cmd.Env = os.Environ()
	for _, env := range []map[string]string{req.Environment, req.Command.Environment, spec.Environment} {
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Dir = req.SandboxDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdout, err := os.Create(req.StdoutPath)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(req.StderrPath)
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q: %w", req.Command.Value, err)
	}
	st := &shellTask{pid: cmd.Process.Pid, done: make(chan struct{})}
	s.mu.Lock()
	if s.tasks == nil {
		s.tasks = map[string]*shellTask{}
	}
	s.tasks[req.TaskID] = st
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
			st.res.Signal = int(ee.Sys().(syscall.WaitStatus).Signal())
		case errors.As(err, &ee):
			st.res.ExitCode = ee.ExitCode()
		case err != nil:
			st.res.Err = err.Error()
		}
		close(st.done)
	}()
	if err := containers.Isolate(ctx, req.ContainerID, cmd.Process.Pid); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return nil, err
	}
	return &executor.LaunchResponse{Pid: cmd.Process.Pid}, nil
}

func (s *shell) task(id string) *shellTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tasks[id]
}

func (s *shell) Wait(ctx context.Context, id string) (*executor.ExitResult, error) {
	st := s.task(id)
	if st == nil {
		return nil, fmt.Errorf("no task %q", id)
	}
	select {
	case <-st.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := st.res
	return &res, nil
}

func (s *shell) Signal(_ context.Context, id string, sig syscall.Signal) error {
	st := s.task(id)
	if st == nil {
		return fmt.Errorf("no task %q", id)
	}
	return syscall.Kill(-st.pid, sig)
}

func (s *shell) Shutdown(ctx context.Context, id string, grace time.Duration) error {
	st := s.task(id)
	if st == nil {
		return nil
	}
	_ = syscall.Kill(-st.pid, syscall.SIGTERM)
	select {
	case <-st.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-st.pid, syscall.SIGKILL)
	select {
	case <-st.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *shell) Forget(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.tasks[id]; ok {
		select {
		case <-st.done:
			delete(s.tasks, id)
		default:
		}
	}
	return nil
}

func (s *shell) Stats(context.Context, string) (*executor.Stats, error) {
	return &executor.Stats{Timestamp: time.Now()}, nil
}

func (s *shell) Version(context.Context) (*executor.VersionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.tasks {
		select {
		case <-st.done:
		default:
			n++
		}
	}
	return &executor.VersionInfo{Version: "0.0.1", Pid: os.Getpid(), Tasks: n}, nil
}
