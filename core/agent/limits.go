package agent

import (
	"context"

	"github.com/corral-project/corral/pluginapi/isolator"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// watchLimitations follows one isolator instance's Watch stream until the
// instance goes away (a restarted isolator gets its own call from
// recoverIsolator). A limitation ends its task, as in Mesos: the container
// is destroyed at once and the task ends TASK_FAILED with the limitation's
// reason and message.
func (a *Agent) watchLimitations(name string, iso isolator.Isolator) {
	ch, err := iso.Watch(a.taskCtx)
	if err != nil {
		a.logger.Error("isolator watch failed; limitations will only be found when tasks end", "isolator", name, "error", err)
		return
	}
	for lim := range ch {
		a.limited(name, lim)
	}
}

// limited records a limitation on its task and destroys the container.
func (a *Agent) limited(isolatorName string, lim isolator.Limitation) {
	a.mu.Lock()
	var t *task
	for _, c := range a.tasks {
		if c.containerID == lim.ContainerID && c.isolator == isolatorName {
			t = c
			break
		}
	}
	if t == nil || t.terminal {
		a.mu.Unlock()
		return
	}
	if t.limitation == nil {
		t.limitation = &lim
	}
	a.mu.Unlock()
	t.logger.Warn("container limitation; destroying the container", "container_id", lim.ContainerID,
		"reason", lim.Reason, "message", lim.Message)
	// Killing the container's processes makes the executor's Wait return;
	// launch then reports the limitation.
	go a.cleanupContainer(t)
}

// limitationAfterExit is the limitation that ended t, if any. Watch may not
// have delivered it yet when the executor reports the exit (the OOM killer
// and the poll race), so unless explained says the exit needs no other
// explanation, t is also checked against the isolator's OOM count, which
// only grows.
func (a *Agent) limitationAfterExit(t *task, explained bool) *isolator.Limitation {
	a.mu.Lock()
	lim := t.limitation
	a.mu.Unlock()
	if lim != nil || explained {
		return lim
	}
	iso, err := a.isolatorOf(t)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(a.taskCtx, pluginCallTimeout)
	defer cancel()
	us, err := iso.Usage(ctx, []string{t.containerID})
	if err != nil || len(us) != 1 || !us[0].Found || us[0].OOMKills == 0 {
		return nil
	}
	u := us[0]
	l := isolator.MemoryLimitation(t.containerID, u.MemLimitBytes, u.MemPeakBytes, u.OOMKills)
	a.mu.Lock()
	if t.limitation == nil {
		t.limitation = &l
	}
	lim = t.limitation
	a.mu.Unlock()
	return lim
}

// limitationReason maps an isolator's reason to the task status reason.
func limitationReason(lim *isolator.Limitation) corralpb.TaskStatus_Reason {
	if lim.Reason == isolator.ReasonMemory {
		return corralpb.TaskStatus_REASON_CONTAINER_LIMITATION_MEMORY
	}
	return corralpb.TaskStatus_REASON_CONTAINER_LIMITATION
}
