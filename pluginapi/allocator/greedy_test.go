package allocator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
)

// greedy is the simplest correct allocator: each agent's free resources go
// whole to the first (by ID) active framework with an unsuppressed role.
// It exists to show that the contract suite accepts a correct plugin.
type greedy struct {
	mu         sync.Mutex // gRPC calls arrive on different goroutines
	version    uint64
	agents     map[string]allocator.Agent
	frameworks map[string]allocator.Framework
	used       map[string]resources.Resources
}

func (g *greedy) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindAllocator, Name: "greedy", Version: "0.0.1", APIVersions: allocator.APIVersions}, nil
}

func (g *greedy) ConfigSchema(context.Context) (*base.Schema, error) { return &base.Schema{}, nil }

func (g *greedy) SetConfig(_ context.Context, cfg []byte, _ string) error {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return fmt.Errorf("greedy config: %w", err)
	}
	return nil
}

func (g *greedy) Init(_ context.Context, snap *allocator.Snapshot) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.version = snap.Version
	g.agents = map[string]allocator.Agent{}
	g.frameworks = map[string]allocator.Framework{}
	g.used = map[string]resources.Resources{}
	for _, a := range snap.Agents {
		g.agents[a.ID] = a
	}
	for _, f := range snap.Frameworks {
		g.frameworks[f.ID] = f
	}
	for _, al := range snap.Allocations {
		g.used[al.AgentID] = g.used[al.AgentID].Add(al.Resources)
	}
	return g.version, nil
}

func (g *greedy) Allocate(_ context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.BaseVersion != g.version {
		return nil, &allocator.VersionGapError{Have: g.version, Want: req.BaseVersion}
	}
	for _, d := range req.Deltas {
		g.apply(d)
	}
	g.version = req.TargetVersion
	resp := &allocator.AllocateResponse{AppliedVersion: g.version}
	fwIDs := make([]string, 0, len(g.frameworks))
	for id := range g.frameworks {
		fwIDs = append(fwIDs, id)
	}
	sort.Strings(fwIDs)
	agentIDs := make([]string, 0, len(g.agents))
	for id := range g.agents {
		agentIDs = append(agentIDs, id)
	}
	sort.Strings(agentIDs)
	for _, aid := range agentIDs {
		a := g.agents[aid]
		free := a.Total.Subtract(g.used[aid])
		if !a.Active || free.IsEmpty() {
			continue
		}
		for _, fid := range fwIDs {
			f := g.frameworks[fid]
			role := ""
			for _, r := range f.Roles {
				if !slices.Contains(f.SuppressedRoles, r) {
					role = r
					break
				}
			}
			if f.Active && role != "" {
				resp.Offers = append(resp.Offers, allocator.Proposal{FrameworkID: fid, Role: role, AgentID: aid, Resources: free})
				break
			}
		}
	}
	return resp, nil
}

func (g *greedy) apply(d allocator.Delta) {
	switch d.Kind {
	case allocator.AgentAdded, allocator.AgentUpdated:
		g.agents[d.Agent.ID] = *d.Agent
	case allocator.AgentRemoved:
		delete(g.agents, d.AgentID)
	case allocator.FrameworkAdded, allocator.FrameworkUpdated:
		g.frameworks[d.Framework.ID] = *d.Framework
	case allocator.FrameworkRemoved:
		delete(g.frameworks, d.FrameworkID)
	case allocator.Allocated:
		g.used[d.Allocation.AgentID] = g.used[d.Allocation.AgentID].Add(d.Allocation.Resources)
	case allocator.Recovered:
		g.used[d.Allocation.AgentID] = g.used[d.Allocation.AgentID].Subtract(d.Allocation.Resources)
	case allocator.Suppressed, allocator.Revived:
		f, ok := g.frameworks[d.FrameworkID]
		if !ok {
			return
		}
		roles := d.Roles
		if len(roles) == 0 {
			roles = f.Roles
		}
		var suppressed []string
		for _, r := range f.Roles {
			was := slices.Contains(f.SuppressedRoles, r)
			hit := slices.Contains(roles, r)
			if (d.Kind == allocator.Suppressed && (was || hit)) || (d.Kind == allocator.Revived && was && !hit) {
				suppressed = append(suppressed, r)
			}
		}
		f.SuppressedRoles = suppressed
		g.frameworks[d.FrameworkID] = f
	}
}
