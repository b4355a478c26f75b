package agent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/base"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// pluginCatalog finds the built plugin binaries, or skips the test.
func pluginCatalog(t *testing.T) *pluginhost.Catalog {
	t.Helper()
	bin := os.Getenv("CORRAL_BIN_DIR")
	if bin == "" {
		t.Skip("CORRAL_BIN_DIR is unset: run `make build` and set CORRAL_BIN_DIR=<repo>/bin (make test does) to run the agent against real plugins")
	}
	dir := filepath.Join(bin, "plugins")
	cat := pluginhost.NewCatalog(dir, nil)
	for kind, name := range map[string]string{base.KindIsolator: DefaultIsolator, base.KindExecutor: DefaultExecutor} {
		if _, err := cat.Resolve(kind, name); err != nil {
			t.Skipf("plugin binaries missing in %s (run `make build`): %v", dir, err)
		}
	}
	return cat
}

type runningAgent struct {
	*Agent
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startAgent(t *testing.T, cat *pluginhost.Catalog, master, workDir string) *runningAgent {
	t.Helper()
	return startAgentWith(t, cat, Config{
		Master:            master,
		Address:           "127.0.0.1:0",
		WorkDir:           workDir,
		Hostname:          "test-host",
		Resources:         resources.MustParse("cpus:3;mem:1024"),
		Attributes:        map[string]string{"rack": "r1"},
		StatusUpdateRetry: 300 * time.Millisecond,
	})
}

func startAgentWith(t *testing.T, cat *pluginhost.Catalog, cfg Config) *runningAgent {
	t.Helper()
	if cfg.OnShutdown == "" {
		cfg.OnShutdown = ShutdownKill // a test's tasks end with it
	}
	a, err := New(cfg, cat, hclog.New(&hclog.LoggerOptions{Name: "agent", Level: hclog.Debug, Output: testWriter{t}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(func() { ra.stop(t) })
	select {
	case <-a.Ready():
	case err := <-ra.done:
		t.Fatalf("agent stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready after 30 s")
	}
	return ra
}

func (ra *runningAgent) stop(t *testing.T) {
	t.Helper()
	ra.once.Do(func() {
		ra.cancel()
		select {
		case err := <-ra.done:
			if err != nil {
				t.Errorf("agent Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("agent did not stop within 60 s")
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (ra *runningAgent) task(fw, id string) (TaskState, bool) {
	for _, ts := range ra.State().Tasks {
		if ts.FrameworkID == fw && ts.TaskID == id {
			return ts, true
		}
	}
	return TaskState{}, false
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func TestAgentAgainstGateway(t *testing.T) {
	cat := pluginCatalog(t)
	m := startFakeMaster(t)
	workDir := t.TempDir()
	a := startAgent(t, cat, m.addr, workDir)

	// Registration: first ever, so no ID; the agent keeps the one given.
	waitFor(t, "registration", 10*time.Second, func() bool { return a.ID() == "agent-1" })
	reg := m.registrations()[0]
	if reg.GetAgent().GetId() != "" || reg.GetAgent().GetUrl() != a.URL() || reg.GetAgent().GetHostname() != "test-host" {
		t.Fatalf("register = %v, want empty ID, url %s", reg.GetAgent(), a.URL())
	}
	if strings.HasSuffix(a.URL(), ":0") || !strings.HasPrefix(a.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %q does not carry the chosen port", a.URL())
	}
	got := resources.MustFromProto(reg.GetAgent().GetResources())
	if got.Scalar("cpus") != 3 || got.Scalar("mem") != 1024 || got.Ranges("ports").String() != "[31000-32000]" || got.Scalar("disk") <= 0 {
		t.Fatalf("registered resources %s, want overrides applied to detected", got)
	}
	// The ID is checkpointed right after registration, not before a.ID()
	// changes: wait for the file rather than race it.
	var idFile []byte
	waitFor(t, "agent_id checkpoint", 10*time.Second, func() bool {
		idFile, _ = os.ReadFile(filepath.Join(workDir, "agent_id"))
		return strings.TrimSpace(string(idFile)) == "agent-1"
	})
	if code, _ := httpGet(t, a.URL()+"/health"); code != 200 {
		t.Fatalf("/health: %d", code)
	}

	t.Run("failing task", func(t *testing.T) {
		m.runTask(t, "fw1", "echo", "echo hi; exit 2")
		sts := m.waitStates(t, "echo", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FAILED)
		last := sts[2]
		if !last.GetHasExitCode() || last.GetExitCode() != 2 {
			t.Fatalf("FAILED status has exit code %v/%d, want 2", last.GetHasExitCode(), last.GetExitCode())
		}
		for _, st := range sts {
			if len(st.GetUuid()) != 16 || st.GetAgentId() != "agent-1" || st.GetTimestampUnixMs() == 0 ||
				st.GetSandboxUrl() != a.URL()+"/api/v1/sandbox/fw1/echo" ||
				(st.GetSource() != corralpb.TaskStatus_SOURCE_EXECUTOR && st.GetSource() != corralpb.TaskStatus_SOURCE_AGENT) {
				t.Fatalf("malformed status %v", st)
			}
		}
		if code, out := httpGet(t, last.GetSandboxUrl()+"/stdout"); code != 200 || out != "hi\n" {
			t.Fatalf("stdout: %d %q", code, out)
		}
		// Acknowledged terminal tasks are forgotten.
		waitFor(t, "task forgotten after ack", 10*time.Second, func() bool { _, ok := a.task("fw1", "echo"); return !ok })
	})

	t.Run("signal", func(t *testing.T) {
		m.runTask(t, "fw1", "selfkill", "kill -9 $$")
		sts := m.waitStates(t, "selfkill", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FAILED)
		if st := sts[2]; !st.GetHasExitCode() || st.GetExitCode() != 137 || !strings.Contains(st.GetMessage(), "SIGKILL") {
			t.Fatalf("status %v, want exit code 137 and a message naming SIGKILL", st)
		}
	})

	t.Run("heartbeats", func(t *testing.T) {
		// The master asked for one every 0.2 s.
		waitFor(t, "heartbeats", 10*time.Second, func() bool { return m.heartbeatCount() >= 2 })
	})

	t.Run("environment and ports", func(t *testing.T) {
		m.runTask(t, "fw1", "env", `echo "$CORRAL_TASK_ID $CORRAL_FRAMEWORK_ID $CORRAL_AGENT_ID $PORT0 $PORT1 $PORTS"; test -d "$CORRAL_SANDBOX"`,
			func(ti *corralpb.TaskInfo) {
				ti.Resources = append(ti.Resources, &corralpb.Resource{Name: "ports", Value: &corralpb.Resource_Ranges{
					Ranges: &corralpb.Ranges{Range: []*corralpb.Range{{Begin: 31005, End: 31006}}}}})
			})
		sts := m.waitStates(t, "env", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FINISHED)
		_, out := httpGet(t, sts[2].GetSandboxUrl()+"/stdout")
		if want := "env fw1 agent-1 31005 31006 31005,31006\n"; out != want {
			t.Fatalf("stdout %q, want %q", out, want)
		}
	})

	t.Run("launch failure", func(t *testing.T) {
		m.runTask(t, "fw1", "nocmd", "", func(ti *corralpb.TaskInfo) { ti.Command = nil })
		sts := m.waitStates(t, "nocmd", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_FAILED)
		if sts[1].GetReason() != corralpb.TaskStatus_REASON_LAUNCH_FAILED || sts[1].GetMessage() == "" {
			t.Fatalf("launch failure status %v", sts[1])
		}
	})

	var sleepPid int
	t.Run("reregister after drop", func(t *testing.T) {
		m.runTask(t, "fw1", "sleeper", "sleep 60")
		m.runTask(t, "fw1", "sleeper", "sleep 60") // a resend must not launch twice
		m.waitStates(t, "sleeper", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
		ts, ok := a.task("fw1", "sleeper")
		if !ok || ts.Pid == 0 || !alive(ts.Pid) {
			t.Fatalf("sleeper not running: %+v", ts)
		}
		sleepPid = ts.Pid

		m.dropStream()
		waitFor(t, "re-registration", 10*time.Second, func() bool { return len(m.registrations()) == 2 })
		reg := m.registrations()[1]
		if reg.GetAgent().GetId() != "agent-1" {
			t.Fatalf("re-registered with ID %q, want agent-1", reg.GetAgent().GetId())
		}
		if len(reg.GetTasks()) != 1 || reg.GetTasks()[0].GetTask().GetTaskId() != "sleeper" ||
			reg.GetTasks()[0].GetState() != corralpb.TaskState_TASK_RUNNING || reg.GetTasks()[0].GetFramework().GetId() != "fw1" {
			t.Fatalf("re-registered with tasks %v, want sleeper RUNNING", reg.GetTasks())
		}
		if !alive(sleepPid) {
			t.Fatal("sleeper died across the reconnect")
		}
		if sts, _ := m.statuses("sleeper"); len(sts) != 2 {
			t.Fatalf("sleeper has %v, want STARTING, RUNNING only (duplicate RunTask relaunched?)", stateList(sts))
		}
	})

	t.Run("kill", func(t *testing.T) {
		m.killTask(t, "fw1", "sleeper", 1)
		sts := m.waitStates(t, "sleeper", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
		if sts[2].GetReason() != corralpb.TaskStatus_REASON_KILLED {
			t.Fatalf("KILLED reason %v", sts[2].GetReason())
		}
		waitFor(t, "sleep process gone", 5*time.Second, func() bool { return !alive(sleepPid) })

		m.killTask(t, "fw1", "ghost", 0)
		sts = m.waitStates(t, "ghost", corralpb.TaskState_TASK_LOST)
		if sts[0].GetReason() != corralpb.TaskStatus_REASON_TASK_UNKNOWN {
			t.Fatalf("unknown task reason %v", sts[0].GetReason())
		}
	})

	t.Run("retry until ack", func(t *testing.T) {
		m.setAck("slow", false)
		m.runTask(t, "fw1", "slow", "exit 0")
		// STARTING is resent (same UUID) every retry interval until acked.
		waitFor(t, "STARTING resent", 10*time.Second, func() bool {
			d, total := m.statuses("slow")
			return len(d) == 1 && total >= 3
		})
		m.setAck("slow", true)
		m.waitStates(t, "slow", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FINISHED)
		waitFor(t, "no pending updates", 10*time.Second, func() bool { return a.State().PendingUpdates == 0 })
	})

	t.Run("shutdown framework", func(t *testing.T) {
		m.setAck("fw2task", false)
		m.runTask(t, "fw2", "fw2task", "sleep 60")
		var pid int
		waitFor(t, "fw2task running", 10*time.Second, func() bool {
			ts, ok := a.task("fw2", "fw2task")
			pid = ts.Pid
			return ok && ts.State == "TASK_RUNNING" && pid > 0
		})
		if a.State().PendingUpdates == 0 {
			t.Fatal("expected unacknowledged updates for fw2")
		}
		m.shutdownFramework(t, "fw2")
		waitFor(t, "fw2 task killed and forgotten", 10*time.Second, func() bool {
			_, ok := a.task("fw2", "fw2task")
			return !ok && !alive(pid) && a.State().PendingUpdates == 0
		})
	})

	t.Run("state API", func(t *testing.T) {
		m.runTask(t, "fw1", "listed", "sleep 60")
		waitFor(t, "listed running", 10*time.Second, func() bool { ts, ok := a.task("fw1", "listed"); return ok && ts.Pid > 0 })
		code, body := httpGet(t, a.URL()+"/api/v1/state")
		var st State
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
			t.Fatalf("/api/v1/state: %d %v %s", code, err, body)
		}
		if st.ID != "agent-1" || !st.Connected || len(st.Tasks) != 1 || st.Tasks[0].TaskID != "listed" || st.UsedResources != "cpus:0.1" {
			t.Fatalf("state %+v", st)
		}
		if cpus, ok := st.UsedResourcesStructured["cpus"].(float64); !ok || cpus != 0.1 || st.Tasks[0].ResourcesStructured["cpus"] != 0.1 {
			t.Fatalf("structured resources: used %v, task %v; want cpus 0.1 as a number", st.UsedResourcesStructured, st.Tasks[0].ResourcesStructured)
		}
	})

	// Stopping the agent kills what runs and leaves no process behind.
	ts, _ := a.task("fw1", "listed")
	a.stop(t)
	if alive(ts.Pid) {
		t.Fatalf("task pid %d survived agent shutdown", ts.Pid)
	}
	// The agent stayed connected long enough to report the kill.
	m.waitStates(t, "listed", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)

	// A restarted agent re-registers with the ID it was given.
	b := startAgent(t, cat, m.addr, workDir)
	waitFor(t, "registration after restart", 10*time.Second, func() bool { return len(m.registrations()) == 3 })
	if id := m.registrations()[2].GetAgent().GetId(); id != "agent-1" || b.ID() != "agent-1" {
		t.Fatalf("restarted agent registered as %q", id)
	}
}

// TestAgentWaitsForMaster starts the agent before the master: it keeps
// retrying and registers once the master is up.
func TestAgentWaitsForMaster(t *testing.T) {
	cat := pluginCatalog(t)
	// Reserve a port, then free it for the master started later.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	a := startAgent(t, cat, addr, t.TempDir())
	code, body := httpGet(t, a.URL()+"/api/v1/state")
	if code != 200 || !strings.Contains(body, `"connected": false`) {
		t.Fatalf("state before the master is up: %d %s", code, body)
	}
	m := startFakeMasterOn(t, addr)
	waitFor(t, "registration once the master is up", 20*time.Second, func() bool { return a.ID() == "agent-1" })
	if n := len(m.registrations()); n != 1 {
		t.Fatalf("%d registrations, want 1", n)
	}
}
