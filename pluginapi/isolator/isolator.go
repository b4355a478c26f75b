// Package isolator is the contract between the agent and isolator plugins,
// in the shape of Mesos' isolator API. Every call is keyed by container ID and
// idempotent; isolators keep no state that the kernel and the agent's
// checkpoint cannot give back through Recover.
package isolator

import (
	"context"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
)

// APIVersions this package speaks, newest first.
var APIVersions = []string{"v1"}

// Isolator is implemented by isolator plugins.
type Isolator interface {
	base.Plugin
	Containers
	Monitor
}

// Containers manages a container's lifecycle.
type Containers interface {
	// Recover is called once after (re)start with the containers the agent
	// knows; it returns containers found in the kernel that the agent does not.
	Recover(ctx context.Context, known []ContainerState) (orphans []string, err error)
	Prepare(ctx context.Context, req PrepareRequest) (*LaunchSpec, error)
	Isolate(ctx context.Context, containerID string, pid int) error
	Update(ctx context.Context, containerID string, res resources.Resources) error
	Cleanup(ctx context.Context, containerID string) error
}

// Monitor reports usage and limitations.
type Monitor interface {
	Usage(ctx context.Context, containerIDs []string) ([]Usage, error)
	// Watch streams limitations until ctx ends.
	Watch(ctx context.Context) (<-chan Limitation, error)
}

// ContainerState is what the agent checkpointed about a container.
type ContainerState struct {
	ContainerID string
	Pid         int
	Resources   resources.Resources
}

// PrepareRequest asks for a container to be set up before its first process.
type PrepareRequest struct {
	ContainerID string
	Resources   resources.Resources
	SandboxDir  string
	User        string
}

// Rlimit is a resource limit applied to the container's first process.
type Rlimit struct {
	Name       string // nofile, nproc, core, fsize, as, cpu, stack, memlock
	Soft, Hard uint64
}

// LaunchSpec tells whoever forks the container's first process what to apply
// before exec.
type LaunchSpec struct {
	Environment map[string]string
	Rlimits     []Rlimit
	CgroupProcs []string // files the child's pid is written to before exec
	NewSession  bool
}

// Usage is a container's resource usage at Timestamp.
type Usage struct {
	ContainerID      string
	Found            bool
	CPUUserSeconds   float64
	CPUSystemSeconds float64
	MemRSSBytes      uint64
	Processes        int
	Timestamp        time.Time
}

// Limitation reports that a container hit a limit (OOM, disk quota, ...).
type Limitation struct {
	ContainerID string
	Reason      string
	Message     string
}
