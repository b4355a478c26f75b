package contracttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/base/basetest"
	"github.com/corral-project/corral/sdk/resources"
)

const (
	initVersion = 10
	now         = allocator.LogicalTime(100_000)
)

var agentTotal = resources.MustParse("cpus:4;mem:8192")

// Run checks the rules every allocator must follow. newImpl must return a
// fresh, unconfigured instance on every call; wrap it with InProcess to run
// the checks over gRPC.
func Run(t *testing.T, newImpl func(t *testing.T) allocator.Allocator) {
	basetest.Run(t, base.KindAllocator, allocator.APIVersions, newImpl)

	t.Run("InitReturnsVersion", func(t *testing.T) {
		a := configured(t, newImpl)
		v, err := a.Init(ctx(t), snapshot())
		if err != nil {
			t.Fatalf("Init: %v", err)
		}
		if v != initVersion {
			t.Fatalf("Init returned version %d, want %d", v, initVersion)
		}
	})

	t.Run("AllocateProposesWithinCapacity", func(t *testing.T) {
		a := configured(t, newImpl)
		snap := snapshot()
		initOrFatal(t, a, snap)
		resp := allocate(t, a, nil)
		if resp.AppliedVersion != initVersion {
			t.Errorf("AppliedVersion = %d, want %d", resp.AppliedVersion, initVersion)
		}
		if len(resp.Offers) == 0 {
			t.Fatal("no offers for one active framework and two idle agents")
		}
		checkProposals(t, snap, nil, resp.Offers)
	})

	t.Run("AllocateVersionGap", func(t *testing.T) {
		a := configured(t, newImpl)
		initOrFatal(t, a, snapshot())
		_, err := a.Allocate(ctx(t), &allocator.AllocateRequest{
			BaseVersion: initVersion + 7, TargetVersion: initVersion + 7, Now: now, Trigger: allocator.TriggerTimer,
		})
		var gap *allocator.VersionGapError
		if !errors.As(err, &gap) {
			t.Fatalf("Allocate with base version %d on state %d: err = %v, want *VersionGapError", initVersion+7, initVersion, err)
		}
		if gap.Have != initVersion || gap.Want != initVersion+7 {
			t.Errorf("VersionGapError{Have: %d, Want: %d}, want {Have: %d, Want: %d}", gap.Have, gap.Want, initVersion, initVersion+7)
		}
	})

	t.Run("SuppressedFrameworkGetsNoOffers", func(t *testing.T) {
		a := configured(t, newImpl)
		snap := snapshot()
		snap.Frameworks = append(snap.Frameworks, allocator.Framework{ID: "f2", Roles: []string{"r"}, Active: true})
		initOrFatal(t, a, snap)
		deltas := []allocator.Delta{{Version: initVersion + 1, At: now, Kind: allocator.Suppressed, FrameworkID: "f1"}}
		resp := allocate(t, a, deltas)
		for _, o := range resp.Offers {
			if o.FrameworkID == "f1" {
				t.Errorf("suppressed framework f1 got an offer: %s", describe(o))
			}
		}
		if len(resp.Offers) == 0 {
			t.Error("no offers for the unsuppressed framework f2")
		}
		checkProposals(t, snap, deltas, resp.Offers)
	})

	t.Run("RemovedAgentGetsNoOffers", func(t *testing.T) {
		a := configured(t, newImpl)
		snap := snapshot()
		initOrFatal(t, a, snap)
		deltas := []allocator.Delta{{Version: initVersion + 1, At: now, Kind: allocator.AgentRemoved, AgentID: "a1"}}
		resp := allocate(t, a, deltas)
		for _, o := range resp.Offers {
			if o.AgentID == "a1" {
				t.Errorf("removed agent a1 is in an offer: %s", describe(o))
			}
		}
		if len(resp.Offers) == 0 {
			t.Error("no offers on the remaining agent a2")
		}
		checkProposals(t, snap, deltas, resp.Offers)
	})

	t.Run("FullyAllocatedAgentGetsNoOffers", func(t *testing.T) {
		a := configured(t, newImpl)
		snap := snapshot()
		initOrFatal(t, a, snap)
		deltas := []allocator.Delta{{
			Version: initVersion + 1, At: now, Kind: allocator.Allocated,
			Allocation: &allocator.Allocation{FrameworkID: "f1", Role: "r", AgentID: "a1", Resources: agentTotal},
		}}
		resp := allocate(t, a, deltas)
		for _, o := range resp.Offers {
			if o.AgentID == "a1" {
				t.Errorf("fully allocated agent a1 is in an offer: %s", describe(o))
			}
		}
		if len(resp.Offers) == 0 {
			t.Error("no offers on the idle agent a2")
		}
		checkProposals(t, snap, deltas, resp.Offers)
	})

	t.Run("Deterministic", func(t *testing.T) {
		run := func() []string {
			a := configured(t, newImpl)
			snap := snapshot()
			snap.Agents = append(snap.Agents, allocator.Agent{ID: "a3", Hostname: "h3", Total: resources.MustParse("cpus:2;mem:1024"), Active: true})
			snap.Frameworks = append(snap.Frameworks,
				allocator.Framework{ID: "f2", Roles: []string{"r"}, Active: true},
				allocator.Framework{ID: "f3", Roles: []string{"q"}, Active: true})
			snap.Roles = append(snap.Roles, allocator.Role{Name: "q", Weight: 2})
			snap.Allocations = []allocator.Allocation{{FrameworkID: "f2", Role: "r", AgentID: "a2", Resources: resources.MustParse("cpus:1;mem:512")}}
			initOrFatal(t, a, snap)
			resp := allocate(t, a, nil)
			checkProposals(t, snap, nil, resp.Offers)
			var out []string
			for _, o := range resp.Offers {
				out = append(out, describe(o))
			}
			return out
		}
		first, second := run(), run()
		if !slices.Equal(first, second) {
			t.Fatalf("same inputs, different proposals:\nfirst:  %q\nsecond: %q", first, second)
		}
	})
}

func ctx(t *testing.T) context.Context { return basetest.Ctx(t) }

// configured returns a fresh instance set up the way the host does before
// the first Init: negotiated and given an empty config.
func configured(t *testing.T, newImpl func(t *testing.T) allocator.Allocator) allocator.Allocator {
	return basetest.Configured(t, newImpl, allocator.APIVersions)
}

// snapshot is two idle agents and one active framework in role "r".
func snapshot() *allocator.Snapshot {
	return &allocator.Snapshot{
		Version: initVersion,
		Now:     now,
		Agents: []allocator.Agent{
			{ID: "a1", Hostname: "h1", Total: agentTotal, Active: true},
			{ID: "a2", Hostname: "h2", Total: agentTotal, Active: true},
		},
		Frameworks: []allocator.Framework{{ID: "f1", Roles: []string{"r"}, Active: true}},
		Roles:      []allocator.Role{{Name: "r", Weight: 1}},
	}
}

func initOrFatal(t *testing.T, a allocator.Allocator, snap *allocator.Snapshot) {
	t.Helper()
	v, err := a.Init(ctx(t), snap)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if v != snap.Version {
		t.Fatalf("Init returned version %d, want %d", v, snap.Version)
	}
}

// allocate runs one cycle from the Init version through deltas, which must
// be numbered initVersion+1, initVersion+2, ...
func allocate(t *testing.T, a allocator.Allocator, deltas []allocator.Delta) *allocator.AllocateResponse {
	t.Helper()
	target := uint64(initVersion + len(deltas))
	resp, err := a.Allocate(ctx(t), &allocator.AllocateRequest{
		BaseVersion: initVersion, Deltas: deltas, TargetVersion: target, Now: now, Trigger: allocator.TriggerTimer,
	})
	if err != nil {
		t.Fatalf("Allocate(base %d, target %d): %v", initVersion, target, err)
	}
	if resp == nil {
		t.Fatal("Allocate returned nil response and nil error")
	}
	if resp.AppliedVersion != target {
		t.Errorf("AppliedVersion = %d, want %d", resp.AppliedVersion, target)
	}
	return resp
}

// checkProposals validates offers the way the master's ledger would: live
// agent, active framework in the proposed role, non-empty resources, and no
// agent offered more than its total minus what is allocated on it.
func checkProposals(t *testing.T, snap *allocator.Snapshot, deltas []allocator.Delta, offers []allocator.Proposal) {
	t.Helper()
	agents := map[string]allocator.Agent{}
	for _, a := range snap.Agents {
		agents[a.ID] = a
	}
	frameworks := map[string]allocator.Framework{}
	for _, f := range snap.Frameworks {
		frameworks[f.ID] = f
	}
	free := map[string]resources.Resources{}
	for id, a := range agents {
		free[id] = a.Total
	}
	for _, al := range snap.Allocations {
		free[al.AgentID] = free[al.AgentID].Subtract(al.Resources)
	}
	for _, d := range deltas {
		switch d.Kind {
		case allocator.AgentRemoved:
			delete(agents, d.AgentID)
		case allocator.FrameworkRemoved:
			delete(frameworks, d.FrameworkID)
		case allocator.Allocated:
			free[d.Allocation.AgentID] = free[d.Allocation.AgentID].Subtract(d.Allocation.Resources)
		}
	}
	for _, o := range offers {
		a, ok := agents[o.AgentID]
		if !ok || !a.Active {
			t.Errorf("offer on unknown or inactive agent: %s", describe(o))
			continue
		}
		f, ok := frameworks[o.FrameworkID]
		if !ok || !f.Active {
			t.Errorf("offer to unknown or inactive framework: %s", describe(o))
			continue
		}
		if !slices.Contains(f.Roles, o.Role) {
			t.Errorf("offer in role %q, framework %s has roles %v: %s", o.Role, f.ID, f.Roles, describe(o))
		}
		if o.Resources.IsEmpty() {
			t.Errorf("empty offer: %s", describe(o))
			continue
		}
		if !free[o.AgentID].Contains(o.Resources) {
			t.Errorf("agent %s over-proposed: %s, only %s left", o.AgentID, describe(o), free[o.AgentID])
			continue
		}
		free[o.AgentID] = free[o.AgentID].Subtract(o.Resources)
	}
}

func describe(o allocator.Proposal) string {
	return fmt.Sprintf("%s/%s@%s:%s", o.FrameworkID, o.Role, o.AgentID, o.Resources)
}
