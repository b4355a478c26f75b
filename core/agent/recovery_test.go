package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/core/agent/checkpoint"
	"github.com/corral-project/corral/sdk/procfs"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// agentProc is a real `corral agent` process.
type agentProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  chan string
	done chan struct{}

	mu    sync.Mutex
	lines []string
}

// startAgentProc starts bin/corral agent against master with workDir.
func startAgentProc(t *testing.T, master, workDir string, extra ...string) *agentProc {
	t.Helper()
	bin := os.Getenv("CORRAL_BIN_DIR")
	if bin == "" {
		t.Skip("CORRAL_BIN_DIR is unset: run `make build` (make test sets it)")
	}
	args := append([]string{"agent", "-master", master, "-address", "127.0.0.1:0", "-work-dir", workDir,
		"-plugin-dir", filepath.Join(bin, "plugins"), "-resources", "cpus:512;mem:65536", "-log-level", "debug"}, extra...)
	cmd := exec.Command(filepath.Join(bin, "corral"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{t: t, cmd: cmd, url: make(chan string, 1), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "corral agent: ready at "); ok {
				p.url <- strings.Fields(rest)[0]
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("agent stderr:\n%s", strings.Join(p.lines, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

func (p *agentProc) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *agentProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *agentProc) state(t *testing.T, url string) State {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("agent state %s: %v", b, err)
	}
	return st
}

func (p *agentProc) waitURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-p.url:
		return u
	case <-p.done:
		t.Fatalf("agent exited before ready:\n%s", p.output())
	case <-time.After(60 * time.Second):
		t.Fatal("agent not ready after 60 s")
	}
	return ""
}

// killTasksAtEnd kills the process groups of the tasks the test started
// if anything is left. The tasks are identified now: by cleanup their
// pids may name other processes.
func killTasksAtEnd(t *testing.T, pids map[string]int) {
	var tasks []procfs.Process
	for _, pid := range pids {
		if p, err := procfs.Identify(pid); err == nil {
			tasks = append(tasks, p)
		}
	}
	t.Cleanup(func() {
		for _, p := range tasks {
			_ = p.SignalGroup(syscall.SIGKILL)
		}
	})
}

// The acceptance test: kill -9 of an agent with 50 running tasks,
// then a restart. Every task keeps its pid and is re-registered, none is
// reported lost, and a task that exited while the agent was down delivers
// its real exit code.
func TestAgentKill9KeepsTasks(t *testing.T) {
	const n = 50
	m := startFakeMaster(t)
	work := t.TempDir()
	release := filepath.Join(t.TempDir(), "release")

	ag := startAgentProc(t, m.addr, work, "-on-shutdown", "kill")
	url := ag.waitURL(t)
	waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })
	for i := range n {
		m.runTask(t, "fw", fmt.Sprintf("t%d", i), "exec sleep 600")
	}
	// The master never acknowledges this one's first update before the
	// crash: the restarted agent resends it (same UUID), then the rest.
	m.setAck("unacked", false)
	m.runTask(t, "fw", "unacked", "exec sleep 600")
	// This one ends while the agent is down, with a status of its own.
	m.runTask(t, "fw", "exits", fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; exit 7", release))
	running := func(id string) bool {
		sts, _ := m.statuses(id)
		return len(sts) > 0 && sts[len(sts)-1].GetState() == corralpb.TaskState_TASK_RUNNING
	}
	waitFor(t, "all tasks running", 120*time.Second, func() bool {
		for i := range n {
			if !running(fmt.Sprintf("t%d", i)) {
				return false
			}
		}
		sts, _ := m.statuses("unacked")
		return running("exits") && len(sts) == 1
	})
	firstUUID := mustStatuses(m, "unacked")[0].GetUuid()
	pids := map[string]int{}
	for _, ts := range ag.state(t, url).Tasks {
		pids[ts.TaskID] = ts.Pid
	}
	killTasksAtEnd(t, pids)
	if len(pids) != n+2 {
		t.Fatalf("agent state lists %d tasks, want %d", len(pids), n+2)
	}

	ag.stop(syscall.SIGKILL)
	for id, pid := range pids {
		if !alive(pid) {
			t.Fatalf("task %s (pid %d) died with the agent", id, pid)
		}
	}
	// Its executor dies too: only the task's shim is left to record how
	// it ends, and a fresh executor takes that over after the restart.
	if err := syscall.Kill(checkpointedExecutorPid(t, work, "exits"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the released task to exit while the agent is down", 30*time.Second, func() bool { return !alive(pids["exits"]) })

	m.setAck("unacked", true)
	ag2 := startAgentProc(t, m.addr, work, "-on-shutdown", "kill")
	url2 := ag2.waitURL(t)
	waitFor(t, "re-registration", 60*time.Second, func() bool { return len(m.registrations()) == 2 })
	reg := m.registrations()[1]
	if reg.GetAgent().GetId() != m.registrations()[0].GetAgent().GetId() && m.registrations()[0].GetAgent().GetId() != "" {
		t.Fatalf("re-registered as %q", reg.GetAgent().GetId())
	}
	listed := map[string]bool{}
	for _, rt := range reg.GetTasks() {
		listed[rt.GetTask().GetTaskId()] = true
	}
	for i := range n {
		if id := fmt.Sprintf("t%d", i); !listed[id] {
			t.Fatalf("re-registration does not list %s (lists %d tasks)", id, len(listed))
		}
	}
	sts := m.waitStates(t, "exits", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FAILED)
	if last := sts[2]; !last.GetHasExitCode() || last.GetExitCode() != 7 {
		t.Fatalf("task that exited while the agent was down: exit code %v (has %v), message %q; want 7",
			last.GetExitCode(), last.GetHasExitCode(), last.GetMessage())
	}
	un := m.waitStates(t, "unacked", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
	if string(un[0].GetUuid()) != string(firstUUID) {
		t.Fatal("the unacknowledged update was not resent with its UUID")
	}
	st := ag2.state(t, url2)
	got := map[string]TaskState{}
	for _, ts := range st.Tasks {
		got[ts.TaskID] = ts
	}
	for i := range n {
		id := fmt.Sprintf("t%d", i)
		ts, ok := got[id]
		switch {
		case !ok:
			t.Fatalf("restarted agent does not know %s", id)
		case ts.Pid != pids[id] || !alive(ts.Pid):
			t.Fatalf("%s: pid %d after restart (alive %v), was %d", id, ts.Pid, alive(ts.Pid), pids[id])
		case ts.State != corralpb.TaskState_TASK_RUNNING.String():
			t.Fatalf("%s is %s after restart", id, ts.State)
		}
		for _, s := range mustStatuses(m, id) {
			if s.GetState() != corralpb.TaskState_TASK_STARTING && s.GetState() != corralpb.TaskState_TASK_RUNNING {
				t.Fatalf("%s reported %s: %s", id, s.GetState(), s.GetMessage())
			}
		}
	}
	// A kill after the restart goes through the reattached executor.
	m.killTask(t, "fw", "t0", 1)
	m.waitStates(t, "t0", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
	waitFor(t, "t0's process to end", 30*time.Second, func() bool { return !alive(pids["t0"]) })

	// SIGTERM with on_shutdown = kill ends every task.
	ag2.stop(syscall.SIGTERM)
	for id, pid := range pids {
		if alive(pid) {
			t.Fatalf("task %s (pid %d) outlived an agent stopped with on_shutdown = kill", id, pid)
		}
	}
}

// checkpointedExecutorPid reads a task's executor pid from a stopped
// agent's checkpoint.
func checkpointedExecutorPid(t *testing.T, work, id string) int {
	t.Helper()
	store, err := checkpoint.Open(filepath.Join(work, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	st, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range st.Tasks {
		if rec.TaskID == id {
			var info struct {
				Pid int `json:"pid"`
			}
			if err := json.Unmarshal(rec.Executor, &info); err != nil || info.Pid == 0 {
				t.Fatalf("executor info %s: %v", rec.Executor, err)
			}
			return info.Pid
		}
	}
	t.Fatalf("task %s not in the checkpoint", id)
	return 0
}

func mustStatuses(m *fakeMaster, id string) []*corralpb.TaskStatus {
	sts, _ := m.statuses(id)
	return sts
}

// A checkpoint or agent ID file that cannot be read stops start-up with an
// error naming the file; -recover=cleanup starts fresh instead, and with a
// readable checkpoint it kills the tasks the previous run left.
func TestUnusableCheckpointAndCleanup(t *testing.T) {
	m := startFakeMaster(t)
	cases := []struct {
		name, file, content, want string
	}{
		{"corrupt checkpoint", "checkpoint.db", "this is not a bbolt file, it is text\n", "cannot open (corrupt or not a checkpoint)"},
		{"corrupt agent ID", "agent_id", "\x00\x01 not an id\n", "does not hold an agent ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			path := filepath.Join(work, tc.file)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			ag := startAgentProc(t, m.addr, work)
			select {
			case <-ag.done:
			case <-time.After(60 * time.Second):
				t.Fatal("agent with an unusable checkpoint kept running")
			}
			if code := ag.cmd.ProcessState.ExitCode(); code == 0 {
				t.Fatalf("agent exited 0 with an unusable %s", tc.file)
			}
			out := ag.output()
			for _, want := range []string{path, tc.want, "-recover=cleanup"} {
				if !strings.Contains(out, want) {
					t.Fatalf("start-up error does not say %q:\n%s", want, out)
				}
			}
			before := len(m.registrations())
			ag2 := startAgentProc(t, m.addr, work, "-recover", "cleanup")
			ag2.waitURL(t)
			waitFor(t, "registration after cleanup", 30*time.Second, func() bool { return len(m.registrations()) > before })
			if id := m.registrations()[before].GetAgent().GetId(); id != "" {
				t.Fatalf("agent registered under old ID %q after cleanup", id)
			}
		})
	}

	t.Run("cleanup kills the previous run's tasks", func(t *testing.T) {
		m := startFakeMaster(t)
		work := t.TempDir()
		ag := startAgentProc(t, m.addr, work)
		url := ag.waitURL(t)
		waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })
		m.runTask(t, "fw", "old", "exec sleep 600")
		m.waitStates(t, "old", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
		ts := ag.state(t, url).Tasks
		if len(ts) != 1 || ts[0].Pid == 0 {
			t.Fatalf("agent state: %+v", ts)
		}
		pid := ts[0].Pid
		killTasksAtEnd(t, map[string]int{"old": pid})
		ag.stop(syscall.SIGKILL)
		if !alive(pid) {
			t.Fatal("task died with the agent")
		}
		ag2 := startAgentProc(t, m.addr, work, "-recover", "cleanup")
		ag2.waitURL(t)
		waitFor(t, "re-registration", 30*time.Second, func() bool { return len(m.registrations()) == 2 })
		if reg := m.registrations()[1]; reg.GetAgent().GetId() != "" || len(reg.GetTasks()) != 0 {
			t.Fatalf("after cleanup the agent registered as %q with %d tasks; want a new agent with none", reg.GetAgent().GetId(), len(reg.GetTasks()))
		}
		waitFor(t, "the old task to be killed", 30*time.Second, func() bool { return !alive(pid) })
		matches, _ := filepath.Glob(filepath.Join(work, "checkpoint.db.discarded-*"))
		if len(matches) != 1 {
			t.Fatalf("old checkpoint not kept aside: %v", matches)
		}
	})
}

// An agent killed -9 mid-launch leaves a checkpoint whose task has an
// executor but no pid yet (Launch had not answered). After the restart the
// executor reports the task's pid, and the isolator must know the
// container by it: the process isolator's Recover forgets a container
// without a pid, and the task was then not shut down gracefully but
// SIGKILLed. Here the task traps SIGTERM and exits 0: a graceful kill ends
// it with exit code 0, a SIGKILL with 137.
func TestAgentKill9MidLaunchKeepsTask(t *testing.T) {
	m := startFakeMaster(t)
	work := t.TempDir()
	ag := startAgentProc(t, m.addr, work, "-on-shutdown", "kill")
	url := ag.waitURL(t)
	waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })
	ready := filepath.Join(t.TempDir(), "ready")
	m.runTask(t, "fw", "mid", fmt.Sprintf("trap 'exit 0' TERM; touch %s; while :; do sleep 0.05; done", ready))
	m.waitStates(t, "mid", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
	waitFor(t, "the task to set its trap", 30*time.Second, func() bool { _, err := os.Stat(ready); return err == nil })
	pid := 0
	for _, ts := range ag.state(t, url).Tasks {
		pid = ts.Pid
	}
	if pid == 0 {
		t.Fatal("no task pid in the agent state")
	}
	killTasksAtEnd(t, map[string]int{"mid": pid})
	ag.stop(syscall.SIGKILL)

	// Rewrite the checkpoint as a crash between the executor's start and
	// Launch's answer leaves it.
	store, err := checkpoint.Open(filepath.Join(work, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rec := range st.Tasks {
		if rec.TaskID == "mid" {
			rec.Pid, rec.Launched, found = 0, false, true
			rec.State = int32(corralpb.TaskState_TASK_STARTING)
			if err := store.PutTask(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := store.Close(); err != nil || !found {
		t.Fatalf("rewrite checkpoint: found %v, %v", found, err)
	}

	ag2 := startAgentProc(t, m.addr, work, "-on-shutdown", "kill")
	url2 := ag2.waitURL(t)
	waitFor(t, "re-registration", 60*time.Second, func() bool { return len(m.registrations()) == 2 })
	var ts TaskState
	for _, s := range ag2.state(t, url2).Tasks {
		ts = s
	}
	if ts.TaskID != "mid" || ts.Pid != pid || ts.State != corralpb.TaskState_TASK_RUNNING.String() {
		t.Fatalf("after restart: task %+v, want mid RUNNING with pid %d", ts, pid)
	}
	// The isolator knows the container again: its usage is served.
	waitFor(t, "the recovered container in /api/v1/monitor", 30*time.Second, func() bool {
		resp, err := http.Get(url2 + "/api/v1/monitor")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var usage []ContainerUsage
		if json.NewDecoder(resp.Body).Decode(&usage) != nil {
			return false
		}
		for _, u := range usage {
			if u.TaskID == "mid" && u.Processes > 0 {
				return true
			}
		}
		return false
	})
	m.killTask(t, "fw", "mid", 20)
	// RUNNING twice: once before the crash, once when the restarted agent
	// learns the task started (its checkpoint said STARTING).
	sts := m.waitStates(t, "mid", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING,
		corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
	if last := sts[len(sts)-1]; !last.GetHasExitCode() || last.GetExitCode() != 0 {
		t.Fatalf("killed task: exit code %d (has %v), message %q; want 0 (its SIGTERM trap ran)",
			last.GetExitCode(), last.GetHasExitCode(), last.GetMessage())
	}
	waitFor(t, "the task's process to end", 30*time.Second, func() bool { return !alive(pid) })
}

// An agent killed while its executor process sits idle (its only task
// ended) leaves that process with no task record naming it; the restarted
// agent finds it in the checkpoint's executor records and ends it, so
// crashes do not pile up executor processes.
func TestAgentKill9EndsIdleExecutor(t *testing.T) {
	m := startFakeMaster(t)
	work := t.TempDir()
	ag := startAgentProc(t, m.addr, work, "-on-shutdown", "kill")
	ag.waitURL(t)
	waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })
	m.runTask(t, "fw", "quick", "exit 0")
	waitFor(t, "the task to finish", 60*time.Second, func() bool {
		sts, _ := m.statuses("quick")
		return len(sts) > 0 && sts[len(sts)-1].GetState() == corralpb.TaskState_TASK_FINISHED
	})
	ag.stop(syscall.SIGKILL)

	store, err := checkpoint.Open(filepath.Join(work, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Load()
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Executors) != 1 {
		t.Fatalf("checkpoint records %d executor processes, want the one started", len(st.Executors))
	}
	var pid int
	for _, info := range st.Executors {
		var ri struct {
			Pid int `json:"pid"`
		}
		if err := json.Unmarshal(info, &ri); err != nil || ri.Pid == 0 {
			t.Fatalf("executor record %s: %v", info, err)
		}
		pid = ri.Pid
	}
	if executor, err := procfs.Identify(pid); err == nil {
		t.Cleanup(func() { _ = executor.Signal(syscall.SIGKILL) })
	}
	if !alive(pid) {
		t.Fatalf("executor %d died with the agent; the test needs it idle and alive", pid)
	}

	ag2 := startAgentProc(t, m.addr, work, "-on-shutdown", "kill")
	ag2.waitURL(t)
	waitFor(t, "the idle executor to be ended", 60*time.Second, func() bool { return !alive(pid) })
	if out := ag2.output(); !strings.Contains(out, "ending an executor process no recovered task uses") {
		t.Errorf("the restarted agent did not log why it ended executor %d", pid)
	}
}
