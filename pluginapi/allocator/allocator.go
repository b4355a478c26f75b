// Package allocator is the contract between the master and allocator
// plugins. The plugin is a deterministic function of (snapshot, deltas,
// logical time): it proposes offers and the master disposes.
package allocator

import (
	"context"
	"fmt"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
)

// APIVersions this package speaks, newest first. v2 added task facts, role
// priority and quota, framework capabilities and minimum offers, demand,
// revoke_after and revocation proposals; the core no longer speaks v1.
var APIVersions = []string{"v2"}

// Allocator is implemented by allocator plugins.
type Allocator interface {
	base.Plugin
	// Init replaces the plugin's state with snap and returns snap.Version.
	Init(ctx context.Context, snap *Snapshot) (uint64, error)
	// Allocate applies req.Deltas on top of req.BaseVersion and returns
	// proposals. A plugin that does not hold BaseVersion returns a
	// *VersionGapError and the host calls Init again. The request is read
	// only; the response belongs to the caller once returned (the plugin
	// must not modify it afterwards).
	Allocate(ctx context.Context, req *AllocateRequest) (*AllocateResponse, error)
}

// LogicalTime is milliseconds on the master's allocation clock. Plugins must
// use it instead of the wall clock.
type LogicalTime int64

// Agent is an agent as the allocator sees it.
type Agent struct {
	ID         string
	Hostname   string
	Total      resources.Resources
	Attributes map[string]string
	Active     bool
}

// Framework is a framework as the allocator sees it.
type Framework struct {
	ID              string
	Roles           []string
	Active          bool
	SuppressedRoles []string
	// Capabilities the framework declared, such as CapabilityGPUResources.
	Capabilities []string
	// MinAllocatable maps a role to the smallest offers worth making to the
	// framework under it (alternatives: an offer must contain one). Roles
	// absent here use the policy's global minimum.
	MinAllocatable map[string][]resources.Resources
}

// CapabilityGPUResources is the framework capability that makes agents
// with scarce resources (gpus) eligible for its offers, as in Mesos.
const CapabilityGPUResources = "GPU_RESOURCES"

// Role is a role's configuration. Names are /-separated paths ("eng",
// "eng/ml"); policies apply a parent's settings to its whole subtree.
type Role struct {
	Name string
	// Weight 0 means 1.
	Weight float64
	// Priority is a strict tier: higher tiers are offered first.
	Priority int64
	// Guarantee is the quota the role's subtree is guaranteed; Limit, when
	// not empty, is what the subtree may never exceed (offers plus tasks).
	Guarantee resources.Resources
	Limit     resources.Resources
}

// Task is a running task's facts. Its resources are already part of its
// Allocation; tasks exist so that policies can choose what to revoke.
type Task struct {
	ID          string
	FrameworkID string
	Role        string
	AgentID     string
	Resources   resources.Resources
	StartedAt   LogicalTime
	// WithinGuarantee: the task is inside its role's guaranteed allocation
	// and the core will refuse to revoke it.
	WithinGuarantee bool
}

// TaskShape is Count identical pending tasks.
type TaskShape struct {
	Resources resources.Resources
	Count     int
}

// Demand is what a framework declared it still wants to launch under a
// role. No shapes means no declared demand.
type Demand struct {
	FrameworkID string
	Role        string
	Shapes      []TaskShape
}

// Allocation is what a framework holds on an agent under a role: the
// resources of its tasks plus those in its outstanding offers.
type Allocation struct {
	FrameworkID string
	Role        string
	AgentID     string
	Resources   resources.Resources
}

// Filter keeps declined resources from being re-offered until ExpiresAt.
type Filter struct {
	FrameworkID string
	Role        string
	AgentID     string
	Resources   resources.Resources
	ExpiresAt   LogicalTime
}

// Snapshot is the allocator-relevant state of the master at Version.
type Snapshot struct {
	Version     uint64
	Now         LogicalTime
	Agents      []Agent
	Frameworks  []Framework
	Roles       []Role
	Allocations []Allocation
	Filters     []Filter
	Tasks       []Task
	Demands     []Demand
}

// DeltaKind says which fields of a Delta are set.
type DeltaKind int

// Delta kinds.
const (
	AgentAdded       DeltaKind = iota + 1 // Agent
	AgentUpdated                          // Agent
	AgentRemoved                          // AgentID
	FrameworkAdded                        // Framework
	FrameworkUpdated                      // Framework
	FrameworkRemoved                      // FrameworkID
	RoleUpdated                           // Role
	Allocated                             // Allocation
	Recovered                             // Allocation, RefuseSeconds
	Suppressed                            // FrameworkID, Roles (empty: all)
	Revived                               // FrameworkID, Roles (empty: all)
	TaskAdded                             // Task
	TaskUpdated                           // Task (WithinGuarantee changed)
	TaskRemoved                           // FrameworkID, TaskID
	DemandUpdated                         // Demand (replaces; no shapes withdraws)
)

var deltaKindNames = map[DeltaKind]string{
	AgentAdded: "agent-added", AgentUpdated: "agent-updated", AgentRemoved: "agent-removed",
	FrameworkAdded: "framework-added", FrameworkUpdated: "framework-updated",
	FrameworkRemoved: "framework-removed", RoleUpdated: "role-updated", Allocated: "allocated",
	Recovered: "recovered", Suppressed: "suppressed", Revived: "revived",
	TaskAdded: "task-added", TaskUpdated: "task-updated", TaskRemoved: "task-removed",
	DemandUpdated: "demand-updated",
}

func (k DeltaKind) String() string {
	if s, ok := deltaKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("delta-kind(%d)", int(k))
}

// Delta is one change to allocator-relevant state.
type Delta struct {
	Version       uint64
	At            LogicalTime
	Kind          DeltaKind
	Agent         *Agent
	AgentID       string
	Framework     *Framework
	FrameworkID   string
	Role          *Role
	Roles         []string
	Allocation    *Allocation
	RefuseSeconds float64
	Task          *Task
	TaskID        string
	Demand        *Demand
}

// Trigger says why an allocation cycle runs.
type Trigger int

// Triggers.
const (
	TriggerTimer Trigger = iota + 1
	TriggerEvent
	TriggerRevive
)

// AllocateRequest is one allocation cycle. Implementations read it and
// must not modify it or what its deltas point to: the plugin glue may share
// those with its memory of recent offers (see offerref.go). Nor may they
// keep the Deltas slice once Allocate returns: the glue reuses it for the
// next request (what a delta points to may be kept).
type AllocateRequest struct {
	BaseVersion   uint64
	Deltas        []Delta
	TargetVersion uint64
	Now           LogicalTime
	Trigger       Trigger
	MaxOffers     int // 0: no limit
	// RevokeAfter is the operator's revoke_after: tasks running longer may
	// be revoked when other roles starve. 0: long-task revocation is off.
	RevokeAfter LogicalTime
}

// Proposal is one offer the plugin would like the master to make.
type Proposal struct {
	FrameworkID string
	Role        string
	AgentID     string
	Resources   resources.Resources
}

// Revocation reasons policies use.
const (
	RevokePreemption = "preemption" // a higher priority tier has unmet demand
	RevokeLongTask   = "long-task"  // past revoke_after while other roles starve
)

// Revocation asks the core to take a running task's resources back. The
// core refuses tasks within their guarantee and revocations that would take
// a role below its guarantee; otherwise it sends the framework an inverse
// offer and kills the task with reason PREEMPTED after the grace period.
type Revocation struct {
	FrameworkID string
	TaskID      string
	AgentID     string
	Reason      string
}

// AllocateResponse carries a cycle's proposals. Metrics are what the
// operator sees (for example share/role/<name>); the core does not
// recompute them.
type AllocateResponse struct {
	AppliedVersion uint64
	Offers         []Proposal
	Metrics        map[string]float64
	Revocations    []Revocation
}

// VersionGapError is returned by Allocate when the plugin does not hold the
// request's base version (it restarted, or missed a cycle).
type VersionGapError struct {
	Have, Want uint64
}

func (e *VersionGapError) Error() string {
	return fmt.Sprintf("allocator holds state version %d, request is based on %d", e.Have, e.Want)
}
