package agent

import (
	"context"
	"encoding/json"

	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
)

// IsolatorHost keeps one of the agent's isolator plugins running. The agent
// builds it through an IsolatorHostFactory so that the host can call back
// (onStart) every time it starts or restarts the plugin.
type IsolatorHost interface {
	// Start launches the plugin and calls onStart; it returns once the
	// first instance is ready.
	Start(ctx context.Context) error
	// Current is the live instance, or an error while it is restarting.
	Current() (isolator.Isolator, error)
	// Stop ends the plugin process.
	Stop()
}

// IsolatorHostFactory builds an IsolatorHost. onStart must be called with
// every fresh instance before it serves the agent: the agent uses it to hand
// the isolator its containers (Recover).
type IsolatorHostFactory func(onStart func(ctx context.Context, iso isolator.Isolator) error) (IsolatorHost, error)

// ExecutorHandle is one running executor plugin process.
type ExecutorHandle struct {
	Executor executor.Executor
	// Kill ends the plugin process (not the task: shut that down first).
	Kill func()
	// Detach drops the connection and leaves the process (and its task)
	// running, for a later agent to reattach to.
	Detach func()
	// Reattach is the opaque information needed to reconnect to the
	// process after an agent restart; the agent checkpoints it.
	Reattach json.RawMessage
}

// ExecutorLauncher starts one executor plugin process per task, and finds
// it again after an agent restart. logPath is where the plugin's own log
// goes (the task's sandbox).
type ExecutorLauncher interface {
	Launch(ctx context.Context, taskID, logPath string) (*ExecutorHandle, error)
	// Reattach connects to the executor a previous agent started, from
	// its handle's Reattach. It fails, leaving every process alone, if
	// the executor is gone (or its pid now belongs to another process).
	Reattach(ctx context.Context, taskID, logPath string, info json.RawMessage) (*ExecutorHandle, error)
}

// Plugins are the plugin seams the agent runs tasks through.
type Plugins struct {
	// Isolator is the default isolator, named Config.Isolator.
	Isolator IsolatorHostFactory
	// MoreIsolators are the other isolators tasks may ask for by their
	// container type, by name (Config.Isolators).
	MoreIsolators map[string]IsolatorHostFactory
	Executors     ExecutorLauncher
}
