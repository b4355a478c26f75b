package agent

import (
	"context"
	"encoding/json"
	"syscall"
	"time"

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

// TaskExecutor is one task's view of the executor that runs it: the
// executor's per-task calls, bound to the task.
type TaskExecutor interface {
	Launch(ctx context.Context, req *executor.LaunchRequest, containers executor.ContainerService) (*executor.LaunchResponse, error)
	Wait(ctx context.Context) (*executor.ExitResult, error)
	Signal(ctx context.Context, sig syscall.Signal) error
	Shutdown(ctx context.Context, grace time.Duration) error
	Stats(ctx context.Context) (*executor.Stats, error)
	// Recover has the executor take the task over (or report it, if it
	// already holds it).
	Recover(ctx context.Context, req *executor.RecoverRequest) (*executor.RecoverResponse, error)
}

// ExecutorHandle is one task's hold on the executor plugin process that
// runs it (one process serves many tasks).
type ExecutorHandle struct {
	Executor TaskExecutor
	// Release ends the task's hold once the agent has its result: the
	// executor forgets the task. The process stays for the others.
	Release func()
	// KillProcess SIGKILLs the executor process, for one that stopped
	// answering: every task it held is then taken over by a new one.
	KillProcess func()
	// Detach drops the connection and leaves the process (and its tasks)
	// running, for a later agent to reattach to. Only a stopping agent
	// detaches.
	Detach func()
	// Reattach is the opaque information needed to reconnect to the
	// process after an agent restart; the agent checkpoints it per task.
	Reattach json.RawMessage
}

// ExecutorLauncher hands tasks their executor, and finds it again after an
// agent restart. logPath is where the plugin's own log goes when the
// launcher has no place of its own for it.
type ExecutorLauncher interface {
	Launch(ctx context.Context, taskID, logPath string) (*ExecutorHandle, error)
	// Reattach connects to the executor a previous agent started, from
	// its handle's Reattach. It fails, leaving every process alone, if
	// the executor is gone (or its pid now belongs to another process).
	Reattach(ctx context.Context, taskID, logPath string, info json.RawMessage) (*ExecutorHandle, error)
}

// executorSweeper is an ExecutorLauncher whose processes outlive tasks: it
// records each process it starts, and after recovery ends the recorded
// processes no recovered task uses (PluginExecutors.Sweep).
type executorSweeper interface {
	SetRecorder(rec ExecutorRecorder)
	Sweep(ctx context.Context, recorded map[string][]byte)
}

// executorCloser is an ExecutorLauncher that keeps processes of its own
// across tasks: the stopping agent tells it whether they stay (keep, for
// the next agent to reattach to) or go.
type executorCloser interface {
	Close(keep bool)
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
