package agent

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestReportAgentRecovery measures an agent restart after kill -9: the time
// from starting the new agent process to the master receiving its
// re-registration listing every task, all executors reattached (the agent
// reattaches before it registers). The 0-task row is the baseline of the
// same run: process start, plugin start and registration alone.
//
//	make bench-recovery                     (sizes 0 and 200)
//	make bench-recovery RECOVERY_TASKS=500  (sizes 0 and 500)
func TestReportAgentRecovery(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_RECOVERY") == "" {
		t.Skip("set CORRAL_BENCH_RECOVERY=1 (make bench-recovery) to run the agent recovery measurement")
	}
	n := 200
	if v := os.Getenv("CORRAL_BENCH_RECOVERY_TASKS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("CORRAL_BENCH_RECOVERY_TASKS=%q: %v", v, err)
		}
	}
	type row struct {
		tasks              int
		launch, reregister time.Duration
	}
	var rows []row
	for _, size := range []int{0, n} {
		m := startFakeMaster(t)
		work := t.TempDir()
		ag := startAgentProc(t, m.addr, work, "-on-shutdown", "kill")
		url := ag.waitURL(t)
		waitFor(t, "registration", 60*time.Second, func() bool { return len(m.registrations()) == 1 })
		start := time.Now()
		for i := range size {
			m.runTask(t, "fw", fmt.Sprintf("t%d", i), "exec sleep 3600")
		}
		waitFor(t, "all tasks running", 10*time.Minute, func() bool {
			for i := range size {
				sts, _ := m.statuses(fmt.Sprintf("t%d", i))
				if len(sts) == 0 || sts[len(sts)-1].GetState() != corralpb.TaskState_TASK_RUNNING {
					return false
				}
			}
			return true
		})
		launched := time.Since(start)
		pids := map[string]int{}
		for _, ts := range ag.state(t, url).Tasks {
			pids[ts.TaskID] = ts.Pid
		}
		killTasksAtEnd(t, pids)
		ag.stop(syscall.SIGKILL)

		start = time.Now()
		// Info, as in production: debug logging of 200 plugin
		// reattaches is measurable.
		ag2 := startAgentProc(t, m.addr, work, "-on-shutdown", "kill", "-log-level", "info")
		var took time.Duration
		waitForFast(t, "re-registration", 5*time.Minute, func() bool {
			regs := m.registrations()
			if len(regs) < 2 {
				return false
			}
			took = time.Since(start)
			if got := len(regs[1].GetTasks()); got != size {
				t.Fatalf("re-registered with %d tasks, want %d", got, size)
			}
			return true
		})
		ag2.waitURL(t)
		if os.Getenv("CORRAL_BENCH_RECOVERY_LOG") != "" {
			t.Logf("restarted agent's log:\n%s", ag2.output())
		}
		ag2.stop(syscall.SIGTERM)
		rows = append(rows, row{size, launched, took})
	}
	t.Logf("agent restart after kill -9: start of the new process to re-registration with every task reattached")
	t.Logf("| running tasks | launch all (first run) | restart to re-registered | vs 0 tasks |")
	t.Logf("|---|---|---|---|")
	for _, r := range rows {
		t.Logf("| %d | %v | %v | %.2fx |", r.tasks, r.launch.Round(time.Millisecond), r.reregister.Round(time.Millisecond),
			float64(r.reregister)/float64(rows[0].reregister))
	}
}

// waitForFast is waitFor with a 1 ms poll, for measuring.
func waitForFast(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
