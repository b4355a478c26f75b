package contracttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/base/basetest"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
)

// Run checks the rules every executor must follow. newImpl must return a
// fresh executor on every call; one executor runs many tasks. Wrap it with
// InProcess to run the checks over gRPC and the broker. The checks run
// real processes through /bin/sh.
func Run(t *testing.T, newImpl func(t *testing.T) executor.Executor) {
	basetest.Run(t, base.KindExecutor, executor.APIVersions, newImpl)

	t.Run("LaunchWaitOutputAndIsolation", func(t *testing.T) {
		e := configured(t, newImpl)
		cs := &Containers{}
		req := shellRequest(t, `echo hello; echo $CORRAL_CONTRACT; echo oops >&2; exit 3`)
		resp := launch(t, e, req, cs)

		res := wait(t, e, req.TaskID, 30*time.Second)
		if res.ExitCode != 3 || res.Signal != 0 || res.Err != "" {
			t.Errorf("Wait = %+v, want exit code 3", *res)
		}
		if out := readFile(t, req.StdoutPath); !strings.Contains(out, "hello\nyes") {
			t.Errorf("stdout = %q, want it to contain %q (the LaunchSpec environment must reach the task)", out, "hello\nyes")
		}
		if errOut := readFile(t, req.StderrPath); !strings.Contains(errOut, "oops") {
			t.Errorf("stderr = %q, want it to contain %q", errOut, "oops")
		}
		prepared, isolated := cs.Calls()
		if len(prepared) == 0 || prepared[0] != req.ContainerID {
			t.Errorf("ContainerService.Prepare calls = %v, want one for %s", prepared, req.ContainerID)
		}
		if len(isolated) != 1 || isolated[0] != resp.Pid {
			t.Errorf("ContainerService.Isolate pids = %v, want [%d] (the launched pid)", isolated, resp.Pid)
		}

		again := wait(t, e, req.TaskID, 10*time.Second)
		if *again != *res {
			t.Errorf("second Wait = %+v, first %+v: must be the same", *again, *res)
		}
	})

	t.Run("VersionAndStatsWhileRunning", func(t *testing.T) {
		e := configured(t, newImpl)
		req := shellRequest(t, "sleep 60")
		launch(t, e, req, &Containers{})
		v, err := e.Version(ctx(t))
		if err != nil {
			t.Fatalf("Version: %v", err)
		}
		if v.Tasks != 1 {
			t.Errorf("Version().Tasks = %d, want 1", v.Tasks)
		}
		if _, err := e.Stats(ctx(t), req.TaskID); err != nil {
			t.Errorf("Stats while running: %v", err)
		}
	})

	t.Run("SignalReachesTask", func(t *testing.T) {
		e := configured(t, newImpl)
		req := shellRequest(t, "sleep 60")
		launch(t, e, req, &Containers{})
		if err := e.Signal(ctx(t), req.TaskID, syscall.SIGTERM); err != nil {
			t.Fatalf("Signal(SIGTERM): %v", err)
		}
		if res := wait(t, e, req.TaskID, 20*time.Second); res.Signal != int(syscall.SIGTERM) {
			t.Errorf("Wait after SIGTERM = %+v, want Signal %d", *res, syscall.SIGTERM)
		}
	})

	t.Run("ShutdownTerminates", func(t *testing.T) {
		e := configured(t, newImpl)
		req := shellRequest(t, "sleep 60")
		launch(t, e, req, &Containers{})
		if err := e.Shutdown(ctx(t), req.TaskID, 200*time.Millisecond); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		// The task sleeps 60s: a Wait that returns within 20s proves the
		// shutdown ended it.
		if res := wait(t, e, req.TaskID, 20*time.Second); res.Signal <= 0 {
			t.Errorf("Wait after Shutdown = %+v, want death by signal", *res)
		}
	})

	t.Run("ShutdownKillsAfterGrace", func(t *testing.T) {
		e := configured(t, newImpl)
		req := shellRequest(t, `trap "" TERM; echo trapped; sleep 60`)
		launch(t, e, req, &Containers{})
		// SIGTERM sent before the shell ran trap would end it early.
		if !poll(20*time.Second, func() bool { return strings.Contains(readFileOrEmpty(req.StdoutPath), "trapped") }) {
			t.Fatalf("task never wrote %q to %s", "trapped", req.StdoutPath)
		}
		if err := e.Shutdown(ctx(t), req.TaskID, 200*time.Millisecond); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if res := wait(t, e, req.TaskID, 20*time.Second); res.Signal != int(syscall.SIGKILL) {
			t.Errorf("Wait after Shutdown of a task ignoring SIGTERM = %+v, want Signal %d", *res, syscall.SIGKILL)
		}
	})

	t.Run("MissingCommandFails", func(t *testing.T) {
		e := configured(t, newImpl)
		req := shellRequest(t, "")
		req.Command = executor.Command{Value: filepath.Join(t.TempDir(), "no-such-command")}
		if _, err := e.Launch(ctx(t), req, &Containers{}); err != nil {
			return // refusing to launch is a valid way to fail
		}
		shutdownOnCleanup(t, e, req.TaskID)
		res := wait(t, e, req.TaskID, 20*time.Second)
		if res.Err == "" && res.ExitCode == 0 {
			t.Errorf("Wait for a missing command = %+v, want Err set or a non-zero exit code", *res)
		}
	})

	t.Run("ManyTasksInOneExecutor", func(t *testing.T) {
		e := configured(t, newImpl)
		cs := &Containers{}
		const n = 5
		reqs := make([]*executor.LaunchRequest, n)
		for i := range reqs {
			reqs[i] = shellRequest(t, fmt.Sprintf("echo task%d; exit %d", i, 10+i))
			reqs[i].ContainerID += fmt.Sprint("-", i)
			reqs[i].TaskID += fmt.Sprint("-", i)
		}
		// Launched concurrently, as an agent launching a burst does.
		var wg sync.WaitGroup
		for _, req := range reqs {
			shutdownOnCleanup(t, e, req.TaskID)
			wg.Go(func() {
				if _, err := e.Launch(ctx(t), req, cs); err != nil {
					t.Errorf("Launch %s: %v", req.TaskID, err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for i, req := range reqs {
			res := wait(t, e, req.TaskID, 30*time.Second)
			if res.ExitCode != 10+i || res.Signal != 0 || res.Err != "" {
				t.Errorf("task %d: Wait = %+v, want exit code %d (its own)", i, *res, 10+i)
			}
			if out := readFile(t, req.StdoutPath); strings.TrimSpace(out) != fmt.Sprint("task", i) {
				t.Errorf("task %d stdout = %q", i, out)
			}
		}
		if prepared, _ := cs.Calls(); len(prepared) < n {
			t.Errorf("ContainerService.Prepare calls = %v, want one per container", prepared)
		}
		if err := e.Forget(ctx(t), reqs[0].TaskID); err != nil {
			t.Errorf("Forget of an ended task: %v", err)
		}
		if err := e.Forget(ctx(t), "never-launched"); err != nil {
			t.Errorf("Forget of an unknown task: %v", err)
		}
		if res := wait(t, e, reqs[1].TaskID, 10*time.Second); res.ExitCode != 11 {
			t.Errorf("Wait of task 1 after task 0 was forgotten = %+v", *res)
		}
	})
}

// Containers is a ContainerService for tests: its launch spec sets
// CORRAL_CONTRACT=yes in the environment and it records every call.
type Containers struct {
	mu       sync.Mutex
	prepared []string
	isolated []int
}

var _ executor.ContainerService = (*Containers)(nil)

// Prepare records containerID and returns a spec with CORRAL_CONTRACT=yes.
func (c *Containers) Prepare(_ context.Context, containerID string) (*isolator.LaunchSpec, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prepared = append(c.prepared, containerID)
	return &isolator.LaunchSpec{Environment: map[string]string{"CORRAL_CONTRACT": "yes"}, NewSession: true}, nil
}

// Isolate records pid.
func (c *Containers) Isolate(_ context.Context, _ string, pid int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.isolated = append(c.isolated, pid)
	return nil
}

// Calls returns the container IDs prepared and the pids isolated so far.
func (c *Containers) Calls() (prepared []string, isolated []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.prepared...), append([]int(nil), c.isolated...)
}

func ctx(t *testing.T) context.Context { return basetest.Ctx(t) }

func configured(t *testing.T, newImpl func(t *testing.T) executor.Executor) executor.Executor {
	return basetest.Configured(t, newImpl, executor.APIVersions)
}

func shellRequest(t *testing.T, script string) *executor.LaunchRequest {
	sandbox := t.TempDir()
	return &executor.LaunchRequest{
		ContainerID: "contract-" + strings.ReplaceAll(t.Name(), "/", "-"),
		TaskID:      "task-" + filepath.Base(t.Name()),
		Command:     executor.Command{Shell: true, Value: script},
		SandboxDir:  sandbox,
		StdoutPath:  filepath.Join(sandbox, "stdout"),
		StderrPath:  filepath.Join(sandbox, "stderr"),
		Environment: map[string]string{"CORRAL_TASK_ID": "task"},
	}
}

// launch starts req and makes sure the task is gone when t ends, even if a
// check fails halfway.
func launch(t *testing.T, e executor.Executor, req *executor.LaunchRequest, cs executor.ContainerService) *executor.LaunchResponse {
	t.Helper()
	resp, err := e.Launch(ctx(t), req, cs)
	if err != nil {
		t.Fatalf("Launch %q: %v", req.Command.Value, err)
	}
	shutdownOnCleanup(t, e, req.TaskID)
	if resp.Pid <= 0 {
		t.Fatalf("Launch returned pid %d", resp.Pid)
	}
	return resp
}

func shutdownOnCleanup(t *testing.T, e executor.Executor, taskID string) {
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Shutdown(c, taskID, 0)
	})
}

func wait(t *testing.T, e executor.Executor, taskID string, timeout time.Duration) *executor.ExitResult {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := e.Wait(c, taskID)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return res
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read task output: %v", err)
	}
	return string(b)
}

func readFileOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
