package master

import (
	"fmt"
	"math"
)

// Operator actions: what an operator (API, CLI, web UI) may do to running
// work, beside what frameworks do through the scheduler API.

// NotFoundError is an operator request about something the master does
// not know.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// KillTask asks the task's agent to kill it, as if its framework had: the
// framework gets the TASK_KILLED update as usual. grace 0 uses the task's
// own kill grace period.
func (m *Master) KillTask(frameworkID, taskID string, graceSeconds float64) error {
	if graceSeconds < 0 || math.IsNaN(graceSeconds) {
		return invalidField("grace_seconds", "must be a non-negative number, got %v", graceSeconds)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frameworks[frameworkID]
	if f == nil {
		return &NotFoundError{Msg: fmt.Sprintf("framework %s is not registered", frameworkID)}
	}
	t := f.tasks[taskID]
	if t == nil {
		return &NotFoundError{Msg: fmt.Sprintf("task %s is not a live task of framework %s", taskID, frameworkID)}
	}
	a := m.agents[t.agentID]
	if a == nil || a.conn == nil {
		return &ConflictError{Msg: fmt.Sprintf("agent %s of task %s is disconnected; the task is killed when it comes back, or reported LOST",
			t.agentID, taskID)}
	}
	sendKillLocked(a, t, graceSeconds)
	m.log.Info("operator killed a task", "framework_id", frameworkID, "task_id", taskID, "agent_id", t.agentID)
	return nil
}

// AgentURL is the address of an agent's HTTP API (sandboxes, monitor).
func (m *Master) AgentURL(agentID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[agentID]
	if a == nil {
		return "", &NotFoundError{Msg: fmt.Sprintf("agent %s is not registered", agentID)}
	}
	if a.info.Url == "" {
		return "", &ConflictError{Msg: fmt.Sprintf("agent %s did not say where its HTTP API is", agentID)}
	}
	return a.info.Url, nil
}

// TeardownFramework removes a framework as if it had torn itself down: its
// offers are withdrawn, its tasks killed, and it moves to the completed
// frameworks. Its scheduler's stream is closed.
func (m *Master) TeardownFramework(frameworkID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frameworks[frameworkID]
	if f == nil {
		return &NotFoundError{Msg: fmt.Sprintf("framework %s is not registered", frameworkID)}
	}
	m.log.Info("operator tore a framework down", "framework_id", frameworkID, "tasks", len(f.tasks))
	m.removeFrameworkLocked(f)
	return nil
}

// removedFrameworkLocked is the completed framework with this ID, if this
// master removed one.
func (m *Master) removedFrameworkLocked(id string) *FrameworkView {
	for i := len(m.completedFrameworks) - 1; i >= 0; i-- {
		if m.completedFrameworks[i].ID == id {
			return &m.completedFrameworks[i]
		}
	}
	return nil
}
