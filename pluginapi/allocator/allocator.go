// Package allocator is the contract between the master and allocator
// plugins. The plugin is a deterministic function of (snapshot, deltas,
// logical time): it proposes offers and the master disposes.
package allocator

import (
	"context"
	"fmt"

	"github.com/corral-project/corral/core/resources"
	"github.com/corral-project/corral/pluginapi/base"
)

// APIVersions this package speaks, newest first.
var APIVersions = []string{"v1"}

// Allocator is implemented by allocator plugins.
type Allocator interface {
	base.Plugin
	// Init replaces the plugin's state with snap and returns snap.Version.
	Init(ctx context.Context, snap *Snapshot) (uint64, error)
	// Allocate applies req.Deltas on top of req.BaseVersion and returns
	// proposals. A plugin that does not hold BaseVersion returns a
	// *VersionGapError and the host calls Init again.
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
}

// Role carries a role's weight; weight 0 means 1.
type Role struct {
	Name   string
	Weight float64
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
)

var deltaKindNames = map[DeltaKind]string{
	AgentAdded: "agent-added", AgentUpdated: "agent-updated", AgentRemoved: "agent-removed",
	FrameworkAdded: "framework-added", FrameworkUpdated: "framework-updated",
	FrameworkRemoved: "framework-removed", RoleUpdated: "role-updated", Allocated: "allocated",
	Recovered: "recovered", Suppressed: "suppressed", Revived: "revived",
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
}

// Trigger says why an allocation cycle runs.
type Trigger int

// Triggers.
const (
	TriggerTimer Trigger = iota + 1
	TriggerEvent
	TriggerRevive
)

// AllocateRequest is one allocation cycle.
type AllocateRequest struct {
	BaseVersion   uint64
	Deltas        []Delta
	TargetVersion uint64
	Now           LogicalTime
	Trigger       Trigger
	MaxOffers     int // 0: no limit
}

// Proposal is one offer the plugin would like the master to make.
type Proposal struct {
	FrameworkID string
	Role        string
	AgentID     string
	Resources   resources.Resources
}

// AllocateResponse carries a cycle's proposals.
type AllocateResponse struct {
	AppliedVersion uint64
	Offers         []Proposal
	Metrics        map[string]float64
}

// VersionGapError is returned by Allocate when the plugin does not hold the
// request's base version (it restarted, or missed a cycle).
type VersionGapError struct {
	Have, Want uint64
}

func (e *VersionGapError) Error() string {
	return fmt.Sprintf("allocator holds state version %d, request is based on %d", e.Have, e.Want)
}
