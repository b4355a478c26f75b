package allocator_test

import (
	"context"
	"fmt"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// firstFit offers each agent's available resources to the first active
// framework (by ID) that has not suppressed or filtered them.
type firstFit struct{}

func (firstFit) Allocate(s *sdk.State, now allocator.LogicalTime, maxOffers int) []allocator.Proposal {
	scratch := s.Scratch()
	for _, agentID := range s.AgentIDs() {
		if maxOffers > 0 && len(scratch.Proposals()) >= maxOffers {
			break
		}
		avail := scratch.Available(agentID)
		if !s.AgentActive(agentID) || avail.IsEmpty() {
			continue
		}
	frameworks:
		for _, f := range s.Frameworks() {
			for _, role := range f.Roles {
				if f.Active && !s.Suppressed(f.ID, role) && !s.Filtered(f.ID, role, agentID, avail, now) {
					// Offer fails only if the proposal would be invalid.
					if scratch.Offer(allocator.Proposal{FrameworkID: f.ID, Role: role, AgentID: agentID, Resources: avail}) == nil {
						break frameworks
					}
				}
			}
		}
	}
	return scratch.Proposals()
}

// An in-house allocator is a Policy plus NewPlugin; its main is
// sdk.Serve(plugin). Here the plugin is driven directly, as the master would.
func ExampleNewPlugin() {
	p := sdk.NewPlugin(base.Info{Name: "first-fit", Version: "0.1.0"}, base.Schema{},
		func([]byte) (sdk.Policy, error) { return firstFit{}, nil })

	ctx := context.Background()
	_, _ = p.Init(ctx, &allocator.Snapshot{
		Version: 1,
		Agents: []allocator.Agent{
			{ID: "a1", Total: resources.MustParse("cpus:4;mem:4096"), Active: true},
			{ID: "a2", Total: resources.MustParse("cpus:2;mem:2048"), Active: true},
		},
		Frameworks: []allocator.Framework{{ID: "batch", Roles: []string{"analytics"}, Active: true}},
	})
	resp, err := p.Allocate(ctx, &allocator.AllocateRequest{
		BaseVersion: 1, TargetVersion: 2, Now: 1000,
		Deltas: []allocator.Delta{{
			Version: 2, At: 1000, Kind: allocator.Allocated,
			Allocation: &allocator.Allocation{FrameworkID: "batch", Role: "analytics", AgentID: "a1", Resources: resources.MustParse("cpus:1;mem:1024")},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range resp.Offers {
		fmt.Printf("%s/%s on %s: %s\n", o.FrameworkID, o.Role, o.AgentID, o.Resources)
	}
	// Output:
	// batch/analytics on a1: cpus:3;mem:3072
	// batch/analytics on a2: cpus:2;mem:2048
}
