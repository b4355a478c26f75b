package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// executorPid is the pid of the executor plugin process running a task.
func (ra *runningAgent) executorPid(t *testing.T, fw, id string) int {
	t.Helper()
	ra.mu.Lock()
	defer ra.mu.Unlock()
	tk, ok := ra.tasks[taskKey{fw, id}]
	if !ok || tk.execInfo == nil {
		t.Fatalf("task %s has no executor", id)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(tk.execInfo, &info); err != nil || info.Pid == 0 {
		t.Fatalf("executor reattach info %s: %v", tk.execInfo, err)
	}
	return info.Pid
}

// kill -9 of the agent's executor plugin process: the agent starts one
// other, which takes every task over from its shim; the tasks keep their
// pids and end with their real exit codes, and a kill still reaches them.
func TestExecutorKill9TaskSurvives(t *testing.T) {
	cat := pluginCatalog(t)
	m := startFakeMaster(t)
	ra := startAgent(t, cat, m.addr, t.TempDir())
	waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })
	release := filepath.Join(t.TempDir(), "release")
	m.runTask(t, "fw", "exits", fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; exit 3", release))
	m.runTask(t, "fw", "sleeps", "exec sleep 600")
	for _, id := range []string{"exits", "sleeps"} {
		m.waitStates(t, id, corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
	}
	pid := func(id string) int {
		ts, ok := ra.task("fw", id)
		if !ok {
			t.Fatalf("no task %s", id)
		}
		return ts.Pid
	}
	exitsPid, sleepsPid := pid("exits"), pid("sleeps")

	// One executor process serves both tasks.
	old := ra.executorPid(t, "fw", "exits")
	if other := ra.executorPid(t, "fw", "sleeps"); other != old {
		t.Fatalf("tasks run on executor processes %d and %d, want one shared", old, other)
	}
	// Twice: the second kill hits the process the first restart started.
	for range 2 {
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the executor to be replaced, once, for both tasks", 60*time.Second, func() bool {
			a, b := ra.executorPid(t, "fw", "exits"), ra.executorPid(t, "fw", "sleeps")
			return a != old && a == b
		})
		old = ra.executorPid(t, "fw", "exits")
	}
	if !alive(exitsPid) || !alive(sleepsPid) || pid("exits") != exitsPid || pid("sleeps") != sleepsPid {
		t.Fatal("a task died, or changed pid, with its executor")
	}
	// Ends under the new executor: its real exit code arrives.
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sts := m.waitStates(t, "exits", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FAILED)
	if st := sts[2]; !st.GetHasExitCode() || st.GetExitCode() != 3 {
		t.Fatalf("exit code %d (has %v), message %q; want 3", st.GetExitCode(), st.GetHasExitCode(), st.GetMessage())
	}
	// A kill goes through the new executor.
	m.killTask(t, "fw", "sleeps", 1)
	m.waitStates(t, "sleeps", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
	waitFor(t, "the killed task to end", 30*time.Second, func() bool { return !alive(sleepsPid) })
}

// Sandboxes of finished tasks are garbage collected once the master has
// acknowledged their end (Mesos gc_delay semantics); a live task's stays.
func TestSandboxGC(t *testing.T) {
	cat := pluginCatalog(t)
	m := startFakeMaster(t)
	work := t.TempDir()
	startAgentWith(t, cat, Config{
		Master: m.addr, Address: "127.0.0.1:0", WorkDir: work, Hostname: "test-host",
		StatusUpdateRetry: 300 * time.Millisecond,
		GCDelay:           time.Millisecond, DiskWatchInterval: 50 * time.Millisecond,
	})
	waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })
	m.runTask(t, "fw", "live", "exec sleep 600")
	m.waitStates(t, "live", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
	m.runTask(t, "fw", "done", "echo bye")
	m.waitStates(t, "done", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FINISHED)
	root := filepath.Join(work, "sandboxes", "fw")
	waitFor(t, "the finished task's sandbox to be collected", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(root, "done"))
		return os.IsNotExist(err)
	})
	if _, err := os.Stat(filepath.Join(root, "live", "stdout")); err != nil {
		t.Fatalf("a running task's sandbox was collected: %v", err)
	}
}
