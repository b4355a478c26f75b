package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/examples/ntasks"
)

// TestTaskAndFrameworkCommands: list, show, logs (with -f following to the
// end), kill, and framework list/show/teardown against a real cluster.
func TestTaskAndFrameworkCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of real binaries")
	}
	addr, _ := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	execDone := make(chan int, 1)
	go func() {
		cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "corral"), "exec", "-master", addr, "-name", "chatty",
			"--", "sh", "-c", "echo line-one; echo to-stderr >&2; while true; do echo tick; sleep 0.2; done")
		_ = cmd.Run()
		execDone <- cmd.ProcessState.ExitCode()
	}()
	var taskID string
	waitState(t, addr, "the chatty task running", func(s master.State) bool {
		for _, f := range s.Frameworks {
			for _, tk := range f.Tasks {
				if tk.State == "TASK_RUNNING" {
					taskID = tk.ID
					return true
				}
			}
		}
		return false
	})
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, ctx, append(args, "-master", addr)...)
	}
	code, out, errOut := cli("task", "list", "-json")
	var refs []taskRef
	if err := json.Unmarshal([]byte(out), &refs); code != 0 || err != nil || len(refs) != 1 || refs[0].Task.ID != taskID {
		t.Fatalf("task list -json: exit %d, %s %s", code, out, errOut)
	}
	if code, out, _ := cli("task", "list", "-state", "finished", "-json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("task list -state finished: exit %d, %q; want []", code, out)
	}
	if code, out, _ := cli("task", "show", taskID); code != 0 || !strings.Contains(out, "TASK_RUNNING") || !strings.Contains(out, "history:") {
		t.Errorf("task show: exit %d:\n%s", code, out)
	}
	if code, out, _ := cli("task", "logs", taskID); code != 0 || !strings.HasPrefix(out, "line-one\n") {
		t.Errorf("task logs: exit %d, %q", code, out)
	}
	if code, out, _ := cli("task", "logs", taskID, "-stderr"); code != 0 || out != "to-stderr\n" {
		t.Errorf("task logs -stderr: exit %d, %q", code, out)
	}
	// Follow while the task runs, then kill it: -f ends by itself.
	type result struct {
		code int
		out  string
	}
	follow := make(chan result, 1)
	go func() {
		code, out, _ := runCLI(t, ctx, "task", "logs", taskID, "-f", "-master", addr)
		follow <- result{code, out}
	}()
	waitState(t, addr, "a few ticks", func(master.State) bool {
		_, out, _ := cli("task", "logs", taskID)
		return strings.Count(out, "tick") >= 5
	})
	if code, out, errOut := cli("task", "kill", taskID); code != 0 || !strings.Contains(out, "kill sent") {
		t.Fatalf("task kill: exit %d %s %s", code, out, errOut)
	}
	select {
	case r := <-follow:
		if r.code != 0 || !strings.HasPrefix(r.out, "line-one\n") || strings.Count(r.out, "tick") < 5 {
			t.Errorf("task logs -f: exit %d, %q", r.code, r.out)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("task logs -f did not end after the task was killed")
	}
	if code := <-execDone; code != 137 {
		t.Errorf("corral exec of the killed task exited %d, want 137", code)
	}
	if code, _, errOut := cli("task", "kill", taskID); code != 1 || !strings.Contains(errOut, "already ended TASK_KILLED") {
		t.Errorf("killing an ended task: exit %d, %s", code, errOut)
	}
	if code, _, errOut := cli("task", "show", "no-such-task"); code != 1 || !strings.Contains(errOut, "task no-such-task is not known") {
		t.Errorf("task show of an unknown task: exit %d, %s", code, errOut)
	}

	// A framework torn down by the operator: its tasks are killed and it
	// is listed as completed.
	fw := startNtasks(t, ntasks.Config{Master: addr, Name: "long", Tasks: 2, Command: "sleep 600", CPUs: 0.1, Mem: 16})
	fw.waitLog(t, "launched")
	var fwID string
	waitState(t, addr, "both long tasks running", func(s master.State) bool {
		for _, f := range s.Frameworks {
			if f.Name == "long" && countTasks(f, "TASK_RUNNING") == 2 {
				fwID = f.ID
				return true
			}
		}
		return false
	})
	if code, out, _ := cli("framework", "list"); code != 0 || !strings.Contains(out, "long") || !strings.Contains(out, "completed") {
		t.Errorf("framework list: exit %d:\n%s", code, out)
	}
	if code, out, errOut := cli("framework", "teardown", fwID); code != 0 || !strings.Contains(out, "torn down") {
		t.Fatalf("framework teardown: exit %d %s %s", code, out, errOut)
	}
	waitState(t, addr, "the torn-down framework completed with its tasks killed", func(s master.State) bool {
		for _, f := range s.CompletedFrameworks {
			killed := 0
			for _, tk := range f.Completed {
				if tk.State == "TASK_KILLED" {
					killed++
				}
			}
			if f.ID == fwID && killed == 2 {
				return true
			}
		}
		return false
	})
	code, out, _ = cli("framework", "show", fwID, "-json")
	var v master.FrameworkView
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.RemovedAt == nil {
		t.Errorf("framework show of a completed framework: exit %d %s", code, out)
	}
	if code, _, errOut := cli("framework", "teardown", fwID); code != 1 || !strings.Contains(errOut, "is not registered") {
		t.Errorf("second teardown: exit %d %s", code, errOut)
	}
}
