package agent

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-project/corral/core/agent/statusupdate"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Health checks with real tasks: the health is reported as it changes and
// a task that keeps failing its check is killed (TASK_KILLED,
// REASON_TASK_UNHEALTHY, healthy = false).
func TestHealthChecksKillUnhealthyTasks(t *testing.T) {
	cat := pluginCatalog(t)
	m := startFakeMaster(t)
	startAgent(t, cat, m.addr, t.TempDir())
	waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })

	var failing atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	fast := func(hc *corralpb.HealthCheck) func(*corralpb.TaskInfo) {
		return func(ti *corralpb.TaskInfo) {
			hc.DelaySeconds, hc.IntervalSeconds, hc.TimeoutSeconds, hc.GracePeriodSeconds = 0.01, 0.05, 5, 0.01
			ti.HealthCheck, ti.KillGraceSeconds = hc, 1
		}
	}
	m.runTask(t, "fw", "web", "exec sleep 600", fast(&corralpb.HealthCheck{Type: corralpb.HealthCheck_HTTP, Port: uint32(port), Path: "/health"}))
	m.runTask(t, "fw", "cmd", "exec sleep 600", fast(&corralpb.HealthCheck{Type: corralpb.HealthCheck_COMMAND,
		Command: "test -e " + filepath.Join(t.TempDir(), "never"), ConsecutiveFailures: 2}))

	// The HTTP check passes: one update says so.
	sts := m.waitStates(t, "web", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_RUNNING)
	if h := sts[2].Healthy; h == nil || !*h {
		t.Fatalf("health update %v, want healthy", sts[2])
	}
	failing.Store(true)
	sts = m.waitStates(t, "web", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_RUNNING,
		corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
	if h := sts[3].Healthy; h == nil || *h {
		t.Fatalf("second health update %v, want unhealthy", sts[3])
	}
	if last := sts[4]; last.GetReason() != corralpb.TaskStatus_REASON_TASK_UNHEALTHY || last.Healthy == nil || *last.Healthy {
		t.Fatalf("terminal update %v, want KILLED, REASON_TASK_UNHEALTHY, healthy = false", last)
	}

	// The command check never passes: unhealthy, then killed.
	sts = m.waitStates(t, "cmd", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_RUNNING,
		corralpb.TaskState_TASK_KILLED)
	if h := sts[2].Healthy; h == nil || *h {
		t.Fatalf("health update %v, want unhealthy", sts[2])
	}
	if sts[3].GetReason() != corralpb.TaskStatus_REASON_TASK_UNHEALTHY {
		t.Fatalf("terminal update %v, want REASON_TASK_UNHEALTHY", sts[3])
	}
}

// Health checks on a task of a custom executor (the real
// sdk/examples/customexec): the agent runs the check, reports the health
// on the task's updates, and kills the task through its executor once the
// check gives up; the executor's TASK_KILLED goes out with
// REASON_TASK_UNHEALTHY, and the executor itself keeps running.
func TestHealthChecksOnCustomExecutor(t *testing.T) {
	cat := pluginCatalog(t)
	m := startFakeMaster(t)
	startAgent(t, cat, m.addr, t.TempDir())
	waitFor(t, "registration", 30*time.Second, func() bool { return len(m.registrations()) == 1 })

	flag := filepath.Join(t.TempDir(), "healthy")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	exec := &corralpb.ExecutorInfo{ExecutorId: "hc-exec", Name: "health check executor",
		Command: &corralpb.CommandInfo{Value: filepath.Join(os.Getenv("CORRAL_BIN_DIR"), "customexec")},
		Resources: []*corralpb.Resource{
			{Name: "cpus", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: 0.1}},
			{Name: "mem", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: 64}},
		}}
	onExec := func(hc *corralpb.HealthCheck) func(*corralpb.TaskInfo) {
		return func(ti *corralpb.TaskInfo) {
			hc.DelaySeconds, hc.IntervalSeconds, hc.TimeoutSeconds, hc.GracePeriodSeconds = 0.01, 0.05, 5, 0.01
			ti.HealthCheck, ti.KillGraceSeconds, ti.Executor = hc, 1, exec
		}
	}
	m.runTask(t, "fw", "flaky", "exec sleep 600", onExec(&corralpb.HealthCheck{Type: corralpb.HealthCheck_COMMAND,
		Command: "test -e " + flag, ConsecutiveFailures: 2}))
	m.runTask(t, "fw", "steady", "exec sleep 600", onExec(&corralpb.HealthCheck{Type: corralpb.HealthCheck_COMMAND, Command: "true"}))

	// find waits for the first update of taskID after index from that
	// satisfies ok, and returns its index.
	find := func(taskID, what string, from int, ok func(*corralpb.TaskStatus) bool) (int, *corralpb.TaskStatus) {
		t.Helper()
		var idx int
		var hit *corralpb.TaskStatus
		waitFor(t, taskID+": "+what, 60*time.Second, func() bool {
			sts, _ := m.statuses(taskID)
			for i := from; i < len(sts); i++ {
				if ok(sts[i]) {
					idx, hit = i, sts[i]
					return true
				}
			}
			return false
		})
		return idx, hit
	}
	healthy := func(want bool) func(*corralpb.TaskStatus) bool {
		return func(st *corralpb.TaskStatus) bool {
			return st.GetState() == corralpb.TaskState_TASK_RUNNING && st.Healthy != nil && *st.Healthy == want
		}
	}
	i, _ := find("flaky", "running and healthy", 0, healthy(true))
	find("steady", "running and healthy", 0, healthy(true))
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	i, _ = find("flaky", "running and unhealthy", i+1, healthy(false))
	_, last := find("flaky", "killed", i+1, func(st *corralpb.TaskStatus) bool { return st.GetState() == corralpb.TaskState_TASK_KILLED })
	if last.GetReason() != corralpb.TaskStatus_REASON_TASK_UNHEALTHY || last.Healthy == nil || *last.Healthy {
		t.Fatalf("terminal update %v, want TASK_KILLED, REASON_TASK_UNHEALTHY, healthy = false", last)
	}
	if !strings.Contains(last.GetMessage(), "executor pid=") {
		t.Fatalf("terminal update %v does not come from the executor", last)
	}
	// The other task of the same executor runs on, still healthy.
	sts, _ := m.statuses("steady")
	for _, st := range sts {
		if statusupdate.IsTerminal(st.GetState()) || (st.Healthy != nil && !*st.Healthy) {
			t.Fatalf("steady task: %v", stateList(sts))
		}
	}
}
