// Package isolator is the contract between the agent and isolator plugins,
// in the shape of Mesos' isolator API. Every call is keyed by container ID and
// idempotent; isolators keep no state that the kernel and the agent's
// checkpoint cannot give back through Recover.
package isolator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	// Recover is called once after (re)start with the agent's ID ("" before
	// its first registration) and the containers the agent knows; it returns
	// containers found in the kernel that the agent does not.
	Recover(ctx context.Context, agentID string, known []ContainerState) (orphans []string, err error)
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
	AgentID     string
	// CPUQuota is the task's choice of a hard CPU quota at its cpus; nil
	// leaves it to the isolator's configuration.
	CPUQuota *bool
	// Rootfs is the task's root filesystem (a directory on the agent or an
	// OCI bundle); "" runs it on the host's. An isolator that cannot give a
	// task a filesystem of its own must refuse a request that sets it
	// (ErrRootfsUnsupported), rather than run the task on the host's.
	Rootfs string
	// Hostname is the container's hostname, for isolators that make a UTS
	// namespace; others ignore it.
	Hostname string
}

// ErrRootfsUnsupported is Prepare's error when a task asks for a root
// filesystem from an isolator that runs tasks on the host's.
var ErrRootfsUnsupported = errors.New("this isolator runs tasks on the host's filesystem and cannot give a task a rootfs (use the runc isolator: container { type = \"runc\" })")

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
	// Wrapper, if set, is the argv the first process execs in place of the
	// task's command, with the command's argv appended: the isolator's own
	// starter, which creates the container (namespaces, root filesystem)
	// around the command and is its parent until it exits, with the
	// command's exit status. The command's path is then resolved by the
	// wrapper inside the container, and the task's user is switched there
	// (PrepareRequest.User), not by the launcher. CgroupProcs is empty
	// with a wrapper: the starter stays outside the container's limits.
	Wrapper []string
	// SkipIsolate says that CgroupProcs and Rlimits are all the isolation
	// the first process needs: a launcher that applies them itself before
	// the command's exec (both task shims do) may start the command without
	// holding it at its exec and need not call Isolate. A launcher that
	// places the process any other way must still call Isolate, which then
	// moves it. False (the zero value, and what older isolators send) keeps
	// the hold and the call.
	SkipIsolate bool
}

// Clone is a deep copy of s.
func (s *LaunchSpec) Clone() *LaunchSpec {
	if s == nil {
		return nil
	}
	c := *s
	c.Environment = maps.Clone(s.Environment)
	c.Rlimits = slices.Clone(s.Rlimits)
	c.CgroupProcs = slices.Clone(s.CgroupProcs)
	c.Wrapper = slices.Clone(s.Wrapper)
	return &c
}

// Usage is a container's resource usage at Timestamp. Fields an isolator
// does not measure are zero (the process isolator has no limits, peaks or
// throttling to report).
type Usage struct {
	ContainerID      string
	Found            bool
	CPUUserSeconds   float64
	CPUSystemSeconds float64
	MemRSSBytes      uint64
	Processes        int
	Timestamp        time.Time

	MemUsageBytes       uint64 // all memory charged to the container (rss, cache, kernel)
	MemPeakBytes        uint64 // high-water mark of MemUsageBytes
	MemLimitBytes       uint64 // enforced limit, 0 if none
	CPUPeriods          uint64 // CFS quota enforcement periods elapsed
	CPUThrottledPeriods uint64 // periods in which the quota stopped the container
	CPUThrottledSeconds float64
	PidsLimit           uint64 // 0 if none
	OOMKills            uint64 // processes the kernel's OOM killer ended
}

// Limitation reasons an isolator reports.
const (
	// ReasonMemory: the container went over its memory limit and the
	// kernel's OOM killer ended some of its processes.
	ReasonMemory = "memory"
)

// MemoryLimitation is the limitation of a container whose processes the
// OOM killer ended: the message gives the limit and the peak usage, so that
// whoever reads the task's status knows by how much to raise mem.
func MemoryLimitation(containerID string, limit, peak, kills uint64) Limitation {
	return Limitation{
		ContainerID: containerID,
		Reason:      ReasonMemory,
		Message: fmt.Sprintf("memory limit exceeded: limit %s, peak usage %s; the OOM killer ended %d process(es)",
			formatBytes(limit), formatBytes(peak), kills),
	}
}

func formatBytes(b uint64) string {
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(b)/(1<<20), b)
}

// Limitation reports that a container hit a limit (OOM, disk quota, ...).
type Limitation struct {
	ContainerID string
	Reason      string
	Message     string
}
