package runc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/plugins/isolator/runc/rootfstest"
	"github.com/corral-project/corral/sdk/procfs"
	"github.com/hashicorp/go-hclog"
)

// testRoot holds every test parent, so a test run never touches the
// agent's /corral tree.
const testRoot = "/corral-test"

var seq atomic.Int64

// env is one test's isolator with a parent and state dir of its own.
type env struct {
	iso     *Isolator
	parent  string // with the agent ID
	rootfs  string
	starter string
}

// needRoot skips where containers cannot be made: the only skip.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("making containers needs root; running as euid %d", os.Geteuid())
	}
}

func testEnv(t *testing.T, configJSON string) *env {
	t.Helper()
	needRoot(t)
	starter := plugintest.Binary(t, StarterName, "github.com/corral-project/corral/plugins/isolator/runc/start/cmd")
	parent := fmt.Sprintf("%s/runc-%d-%d", testRoot, os.Getpid(), seq.Add(1))
	iso := New(hclog.NewNullLogger(), WithDefaults(parent+"/{agent_id}", t.TempDir()+"/{agent_id}", starter))
	if configJSON == "" {
		configJSON = "{}"
	}
	if err := iso.SetConfig(context.Background(), []byte(configJSON), "v1"); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	if _, err := iso.Recover(context.Background(), "agent-1", nil); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	e := &env{iso: iso, parent: parent + "/agent-1", rootfs: rootfstest.Busybox(t), starter: starter}
	mountsBefore := mountCount(t)
	t.Cleanup(func() {
		if left := leftCgroups(e.parent); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
		if n := mountCount(t); n > mountsBefore {
			t.Errorf("%d mounts left behind (%d before, %d after)", n-mountsBefore, mountsBefore, n)
		}
		for _, rel := range []string{e.parent, parent} {
			for _, d := range allControllerDirs(rel) {
				_ = os.Remove(d)
			}
		}
		for _, d := range allControllerDirs(testRoot) {
			_ = os.Remove(d) // shared with other test processes; stays while they use it
		}
	})
	return e
}

// leftCgroups lists the cgroups under rel in every controller.
func leftCgroups(rel string) []string {
	var out []string
	for _, d := range allControllerDirs(rel) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				out = append(out, filepath.Join(d, e.Name()))
			}
		}
	}
	return out
}

func mountCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// task is a started container, run the way the command executor's
// launcher runs it: the wrapper exec'd with the command appended, in a
// session of its own, stdout and stderr the sandbox's files.
type task struct {
	id, sandbox string
	cmd         *exec.Cmd
	exited      chan struct{}
	state       *os.ProcessState
}

func (e *env) start(t *testing.T, id string, prep isolator.PrepareRequest, argv ...string) *task {
	t.Helper()
	ctx := testCtx(t)
	if prep.SandboxDir == "" {
		prep.SandboxDir = t.TempDir()
	}
	if prep.Rootfs == "" {
		prep.Rootfs = e.rootfs
	}
	prep.ContainerID, prep.AgentID = id, "agent-1"
	spec, err := e.iso.Prepare(ctx, prep)
	if err != nil {
		t.Fatalf("Prepare %s: %v", id, err)
	}
	if len(spec.Wrapper) == 0 || len(spec.CgroupProcs) != 0 {
		t.Fatalf("launch spec %+v: want a wrapper and no cgroup.procs (the starter stays outside)", spec)
	}
	stdout, err := os.Create(filepath.Join(prep.SandboxDir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(prep.SandboxDir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	args := append(append([]string{}, spec.Wrapper...), argv...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = []string{"PATH=/usr/bin:/bin", "CORRAL_TASK_ID=" + id}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	// Identified before it can be reaped: by cleanup its pid may name
	// another test's process.
	session, _ := procfs.Identify(cmd.Process.Pid)
	if err := e.iso.Isolate(ctx, id, cmd.Process.Pid); err != nil {
		t.Fatalf("Isolate: %v", err)
	}
	tk := &task{id: id, sandbox: prep.SandboxDir, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		tk.state = cmd.ProcessState
		close(tk.exited)
	}()
	t.Cleanup(func() {
		_ = session.SignalGroup(syscall.SIGKILL)
		<-tk.exited
		_ = e.iso.Cleanup(context.Background(), id)
	})
	return tk
}

// wait waits for the starter to exit and returns its wait status.
func (tk *task) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case <-tk.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("task %s still running after 2 minutes; stderr: %s", tk.id, tk.read(t, "stderr"))
	}
	return tk.state.Sys().(syscall.WaitStatus)
}

func (tk *task) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tk.sandbox, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
