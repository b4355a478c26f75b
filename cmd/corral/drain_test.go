package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/examples/ntasks"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestDrainAgent: tasks on a drained agent get notice, are killed at the
// deadline (not before), nothing new lands on it, and undrain brings it
// back.
func TestDrainAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of real binaries")
	}
	addr, _ := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fw := startNtasks(t, ntasks.Config{Master: addr, Name: "long", Tasks: 2, Command: "sleep 600", CPUs: 0.1, Mem: 16})
	var agentID string
	waitState(t, addr, "both tasks running", func(s master.State) bool {
		if f := fwNamed(s, "long"); f != nil && countTasks(*f, "TASK_RUNNING") == 2 {
			agentID = f.Tasks[0].AgentID
			return true
		}
		return false
	})
	const deadline = 3 * time.Second
	began := time.Now()
	if code, out, errOut := runCLI(t, ctx, "agent", "drain", agentID, "-deadline", deadline.String(), "-master", addr); code != 0 {
		t.Fatalf("agent drain: exit %d %s %s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, ctx, "agent", "list", "-master", addr); code != 0 || !strings.Contains(out, "draining") {
		t.Errorf("agent list while draining: exit %d:\n%s", code, out)
	}
	// Both tasks were told, then killed once the deadline passed.
	waitState(t, addr, "the drained tasks killed", func(s master.State) bool {
		return len(fw.terminal()) == 2
	})
	if notices := fw.inverseOffers(); len(notices) != 2 {
		t.Errorf("the framework got %d drain notices, want 2", len(notices))
	}
	for id, u := range fw.terminal() {
		if u.at.Sub(began) < deadline {
			t.Errorf("task %s ended %v after the drain, before its deadline of %v", id, u.at.Sub(began), deadline)
		}
		if u.st.GetState() != corralpb.TaskState_TASK_KILLED || u.st.GetReason() != corralpb.TaskStatus_REASON_PREEMPTED ||
			!strings.Contains(u.st.GetMessage(), "drained for maintenance") {
			t.Errorf("task %s ended %v %v %q, want KILLED, PREEMPTED, a message naming the drain", id, u.st.GetState(), u.st.GetReason(), u.st.GetMessage())
		}
	}
	code, out, _ := runCLI(t, ctx, "agent", "show", agentID, "-json", "-master", addr)
	var a master.AgentView
	if err := json.Unmarshal([]byte(out), &a); code != 0 || err != nil || a.Drain != "drained" {
		t.Errorf("agent show after the deadline: exit %d %s", code, out)
	}
	// Nothing lands on a drained agent: a new task waits...
	execDone := make(chan int, 1)
	go func() {
		code, _, _ := runCLI(t, ctx, "exec", "-master", addr, "--", "true")
		execDone <- code
	}()
	select {
	case code := <-execDone:
		t.Fatalf("a task ran on the drained agent (corral exec exited %d)", code)
	case <-time.After(3 * time.Second):
	}
	// ...until the agent is undrained.
	if code, out, errOut := runCLI(t, ctx, "agent", "undrain", agentID, "-master", addr); code != 0 {
		t.Fatalf("agent undrain: exit %d %s %s", code, out, errOut)
	}
	select {
	case code := <-execDone:
		if code != 0 {
			t.Errorf("corral exec after undrain exited %d", code)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("no task ran after undrain")
	}
	if code, _, errOut := runCLI(t, ctx, "agent", "undrain", agentID, "-master", addr); code != 1 || !strings.Contains(errOut, "is not draining") {
		t.Errorf("second undrain: exit %d %s", code, errOut)
	}
}
