package allocator

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/pluginapi/base"
)

// everything offers each active agent's whole available resources to every
// active framework's first role unless suppressed. With more than one framework that
// double-books, which the SDK must catch.
type everything struct{}

func (everything) Allocate(s *State, _ allocator.LogicalTime, _ int) []allocator.Proposal {
	var out []allocator.Proposal
	for _, id := range s.AgentIDs() {
		for _, f := range s.Frameworks() {
			if avail := s.Available(id); s.AgentActive(id) && f.Active && !s.Suppressed(f.ID, f.Roles[0]) && !avail.IsEmpty() {
				out = append(out, allocator.Proposal{FrameworkID: f.ID, Role: f.Roles[0], AgentID: id, Resources: avail})
			}
		}
	}
	return out
}

func newTestPlugin() allocator.Allocator {
	return NewPlugin(base.Info{Name: "everything", Version: "1"}, base.Schema{},
		func(cfg []byte) (Policy, error) {
			if string(cfg) != "{}" {
				return nil, fmt.Errorf("attribute %q: not supported", "x")
			}
			return everything{}, nil
		})
}

func TestContract(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) allocator.Allocator { return contracttest.InProcess(t, newTestPlugin()) })
}

func TestPluginAllocate(t *testing.T) {
	ctx := context.Background()
	p := newTestPlugin()
	if info, _ := p.PluginInfo(ctx); info.Kind != base.KindAllocator || len(info.APIVersions) == 0 {
		t.Fatalf("defaults not filled in: %+v", info)
	}
	if err := p.SetConfig(ctx, []byte("{}"), "v0"); err == nil {
		t.Error("SetConfig accepted an unsupported API version")
	}
	if err := p.SetConfig(ctx, []byte(`{"x":1}`), "v1"); err == nil {
		t.Error("SetConfig accepted a config the policy rejects")
	}
	// Before Init the plugin holds no state: any request is a gap.
	_, err := p.Allocate(ctx, &allocator.AllocateRequest{})
	var gap *allocator.VersionGapError
	if !errors.As(err, &gap) {
		t.Fatalf("Allocate before Init: %v", err)
	}
	if _, err := p.Init(ctx, &allocator.Snapshot{
		Version:    3,
		Agents:     []allocator.Agent{{ID: "a", Total: mp("cpus:4;mem:4096"), Active: true}},
		Frameworks: []allocator.Framework{{ID: "f1", Roles: []string{"r"}, Active: true}, {ID: "f2", Roles: []string{"r"}, Active: true}},
	}); err != nil {
		t.Fatal(err)
	}

	resp, err := p.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: 3, TargetVersion: 3, Now: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Offers) != 1 || resp.Offers[0].FrameworkID != "f1" || resp.Metrics[MetricDroppedProposals] != 1 {
		t.Fatalf("double-booking not caught: offers %+v metrics %v", resp.Offers, resp.Metrics)
	}
	// The plugin does not book its own proposals: without the master's
	// Allocated delta the same resources are proposed again.
	resp, err = p.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: 3, TargetVersion: 3, Now: 20})
	if err != nil || len(resp.Offers) != 1 || !resp.Offers[0].Resources.Equal(mp("cpus:4;mem:4096")) {
		t.Fatalf("second cycle: %+v, %v", resp, err)
	}
	// Once the master commits the offer, nothing is left.
	resp, err = p.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: 3, TargetVersion: 4, Now: 30, Deltas: []allocator.Delta{
		{Version: 4, At: 30, Kind: allocator.Allocated, Allocation: &allocator.Allocation{FrameworkID: "f1", Role: "r", AgentID: "a", Resources: mp("cpus:4;mem:4096")}},
	}})
	if err != nil || resp.AppliedVersion != 4 || len(resp.Offers) != 0 {
		t.Fatalf("after commit: %+v, %v", resp, err)
	}
	// maxOffers is enforced even on a policy that ignores it.
	resp, err = p.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: 4, TargetVersion: 6, Now: 40, MaxOffers: 1, Deltas: []allocator.Delta{
		{Version: 5, At: 40, Kind: allocator.AgentAdded, Agent: &allocator.Agent{ID: "b", Total: mp("cpus:1"), Active: true}},
		{Version: 6, At: 40, Kind: allocator.AgentAdded, Agent: &allocator.Agent{ID: "c", Total: mp("cpus:1"), Active: true}},
	}})
	if err != nil || len(resp.Offers) != 1 || resp.Offers[0].AgentID != "b" {
		t.Fatalf("maxOffers: %+v, %v", resp, err)
	}

	// Deltas that do not reach the target leave the plugin needing Init.
	_, err = p.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: 6, TargetVersion: 8, Deltas: []allocator.Delta{
		{Version: 7, Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: "r", Weight: 2}},
	}})
	if err == nil || errors.As(err, &gap) {
		t.Fatalf("short deltas: %v, want a plain error", err)
	}
	_, err = p.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: 7, TargetVersion: 7})
	if !errors.As(err, &gap) {
		t.Fatalf("after a failed apply: %v, want a version gap", err)
	}
	if v, err := p.Init(ctx, &allocator.Snapshot{Version: 9}); err != nil || v != 9 {
		t.Fatalf("re-Init: %d, %v", v, err)
	}
	if _, err := p.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: 9, TargetVersion: 9}); err != nil {
		t.Fatalf("after re-Init: %v", err)
	}
}
