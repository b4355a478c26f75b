// Package executor is the contract between the agent and executor plugins.
// API v2: one executor process per agent serves many tasks, and every
// per-task call names its task (v1 ran one process per task). It gets its
// containers only through the ContainerService the agent serves to it, so
// the agent decides the limits.
package executor

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
)

// APIVersions this package speaks, newest first.
var APIVersions = []string{"v2"}

// Executor is implemented by executor plugins.
type Executor interface {
	base.Plugin
	// Launch starts one task (req.TaskID); one executor holds many.
	Launch(ctx context.Context, req *LaunchRequest, containers ContainerService) (*LaunchResponse, error)
	// Wait blocks until the task exits. It may be called again, also after
	// the agent reattaches, and returns the same result (until Forget).
	Wait(ctx context.Context, taskID string) (*ExitResult, error)
	Signal(ctx context.Context, taskID string, sig syscall.Signal) error
	// Shutdown sends SIGTERM to the task's process group, waits grace, then
	// sends SIGKILL. It returns once the task has exited.
	Shutdown(ctx context.Context, taskID string, grace time.Duration) error
	Stats(ctx context.Context, taskID string) (*Stats, error)
	// Forget drops an ended task's state once the agent has its result; a
	// running task is left alone. An unknown task is not an error.
	Forget(ctx context.Context, taskID string) error
	// Version is the executor's identity: its version, its own pid and
	// how many of its tasks are still running (an executor with none may
	// be stopped).
	Version(ctx context.Context) (*VersionInfo, error)
}

// Recoverer is implemented by executors that can take over a task another
// process of theirs launched, after that process died (the host restarts
// the plugin and calls Recover on the new one for each task). After
// Recover, Wait, Signal, Shutdown and Stats work as after Launch. Recover
// of a task this process already holds changes nothing and reports it.
//
// Recover returns ErrNoTask when there is neither a live task nor a
// recorded exit status to take over: the host then reports the task lost.
type Recoverer interface {
	Recover(ctx context.Context, req *RecoverRequest) (*RecoverResponse, error)
}

// RecoverResponse is the task taken over: its pid (0 when it had already
// ended and only its exit status was found).
type RecoverResponse struct {
	Pid        int
	StartTicks uint64
}

// RecoverRequest names the task to take over.
type RecoverRequest struct {
	ContainerID string
	TaskID      string
	SandboxDir  string
	Pid         int
}

// ErrNoTask is Recover's answer when the task left no trace to take over.
var ErrNoTask = errors.New("executor recover: no live task and no recorded exit status")

// ContainerService is what the agent offers an executor: the container's
// launch spec, and the call that places the first process in isolation.
type ContainerService interface {
	Prepare(ctx context.Context, containerID string) (*isolator.LaunchSpec, error)
	Isolate(ctx context.Context, containerID string, pid int) error
}

// Command is what to run.
type Command struct {
	Shell       bool // run Value with /bin/sh -c
	Value       string
	Arguments   []string
	Environment map[string]string
	User        string
}

// LaunchRequest starts a task's command in its container.
type LaunchRequest struct {
	ContainerID string
	TaskID      string
	Command     Command
	SandboxDir  string
	StdoutPath  string
	StderrPath  string
	Environment map[string]string // set by the agent (CORRAL_* variables)
}

// LaunchResponse identifies the started process.
type LaunchResponse struct {
	Pid int
	// StartTicks is field 22 of /proc/<pid>/stat, a guard against PID reuse.
	StartTicks uint64
}

// ExitResult is how a task ended.
type ExitResult struct {
	ExitCode int
	Signal   int    // > 0 when the process died of a signal
	Err      string // set when the command could not be started at all
}

// Stats is the task's resource usage.
type Stats struct {
	CPUUserSeconds   float64
	CPUSystemSeconds float64
	MemRSSBytes      uint64
	Timestamp        time.Time
}

// VersionInfo answers the agent's liveness and identity check after reattach.
type VersionInfo struct {
	Version string
	Pid     int // the executor process
	Tasks   int // its tasks still running
}
