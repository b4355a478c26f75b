package agent

import (
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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
