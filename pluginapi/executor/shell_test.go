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

// shell is a minimal real executor: one task per instance, run in its own
// session with output to files. It shows that the contract suite accepts a
// correct plugin.
type shell struct {
	mu   sync.Mutex
	pid  int
	done chan struct{}
	res  executor.ExitResult
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
	s.mu.Lock()
	s.pid, s.done = cmd.Process.Pid, make(chan struct{})
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		s.mu.Lock()
		switch {
		case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
			s.res.Signal = int(ee.Sys().(syscall.WaitStatus).Signal())
		case errors.As(err, &ee):
			s.res.ExitCode = ee.ExitCode()
		case err != nil:
			s.res.Err = err.Error()
		}
		s.mu.Unlock()
		close(s.done)
	}()
	if err := containers.Isolate(ctx, req.ContainerID, cmd.Process.Pid); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return nil, err
	}
	return &executor.LaunchResponse{Pid: cmd.Process.Pid}, nil
}

func (s *shell) task() (int, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid, s.done
}

func (s *shell) Wait(ctx context.Context) (*executor.ExitResult, error) {
	_, done := s.task()
	if done == nil {
		return nil, errors.New("no task launched")
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.res
	return &res, nil
}

func (s *shell) Signal(_ context.Context, sig syscall.Signal) error {
	pid, _ := s.task()
	if pid == 0 {
		return errors.New("no task launched")
	}
	return syscall.Kill(-pid, sig)
}

func (s *shell) Shutdown(ctx context.Context, grace time.Duration) error {
	pid, done := s.task()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *shell) Stats(context.Context) (*executor.Stats, error) {
	return &executor.Stats{Timestamp: time.Now()}, nil
}

func (s *shell) Version(context.Context) (*executor.VersionInfo, error) {
	pid, _ := s.task()
	return &executor.VersionInfo{Version: "0.0.1", Pid: pid}, nil
}
