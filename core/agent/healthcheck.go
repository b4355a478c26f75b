package agent

import (
	"context"
	"os"
	"sort"

	"github.com/corral-project/corral/core/agent/health"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// startHealthCheck runs the task's health check, if it has one, until the
// task ends: for command tasks and for tasks on custom executors alike. Each change of health goes out as a TASK_RUNNING update with
// `healthy` set; when the check gives up, the task is killed with its own
// grace and ends TASK_KILLED, REASON_TASK_UNHEALTHY.
func (a *Agent) startHealthCheck(t *task) {
	hc := t.info.GetHealthCheck()
	if hc == nil {
		return
	}
	check, err := health.FromProto(hc, t.sandbox, a.healthEnv(t))
	if err != nil {
		t.logger.Warn("health check not run", "error", err)
		return
	}
	ctx, cancel := context.WithCancel(a.taskCtx)
	a.mu.Lock()
	if t.terminal {
		a.mu.Unlock()
		cancel()
		return
	}
	t.stopHealth = cancel
	a.mu.Unlock()
	t.logger.Info("health check started", "kind", check.Kind, "delay", check.Delay, "interval", check.Interval)
	go health.Run(ctx, check, func(healthy bool, msg string) {
		a.mu.Lock()
		if t.terminal || t.killRequested {
			a.mu.Unlock()
			return
		}
		t.healthKnown, t.healthy = true, healthy
		if runsOnExecutor(t) && t.state != corralpb.TaskState_TASK_RUNNING {
			// Its executor has not reported it running yet: that update
			// carries the health known by then.
			a.mu.Unlock()
			return
		}
		st := a.newStatus(t, corralpb.TaskState_TASK_RUNNING, corralpb.TaskStatus_SOURCE_EXECUTOR,
			corralpb.TaskStatus_REASON_UNSPECIFIED, healthMessage(healthy, msg))
		a.mu.Unlock()
		t.logger.Info("task health changed", "healthy", healthy, "detail", msg)
		a.report(t, st)
	}, func(msg string) {
		a.mu.Lock()
		t.unhealthy = true
		a.mu.Unlock()
		t.logger.Warn("killing unhealthy task", "reason", msg)
		a.killTask(t, a.graceFor(t, 0))
	})
}

func healthMessage(healthy bool, detail string) string {
	if healthy {
		return "health check passed"
	}
	return "health check failed: " + detail
}

func (a *Agent) stopHealthCheck(t *task) {
	a.mu.Lock()
	stop := t.stopHealth
	t.stopHealth = nil
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// healthEnv is a command check's environment: the task's variables over a
// PATH.
func (a *Agent) healthEnv(t *task) []string {
	env := map[string]string{"PATH": defaultPath, "HOME": t.sandbox}
	if p := os.Getenv("PATH"); p != "" {
		env["PATH"] = p
	}
	for k, v := range a.taskEnv(t, t.res, t.sandbox) {
		env[k] = v
	}
	for k, v := range t.info.GetCommand().GetEnvironment() {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
