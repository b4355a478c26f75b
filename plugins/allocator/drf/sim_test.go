package drf

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// sim plays the master's side of the allocator contract: it numbers deltas,
// commits every proposed offer as an Allocated delta (as the master does),
// and turns accepts, declines and finished tasks into Recovered deltas. The
// allocator under test only ever sees what a real master would send it.
type sim struct {
	t       testing.TB
	a       allocator.Allocator
	version uint64
	now     allocator.LogicalTime
	pending []allocator.Delta

	agents     map[string]allocator.Agent
	frameworks map[string]allocator.Framework
	offers     []allocator.Proposal // outstanding, in the order they were made
	tasks      map[taskKey]resources.Resources
}

type taskKey struct{ framework, role, agent string }

func newSim(t testing.TB, a allocator.Allocator, configJSON string) *sim {
	t.Helper()
	if err := a.SetConfig(context.Background(), []byte(configJSON), allocator.APIVersions[0]); err != nil {
		t.Fatalf("SetConfig(%s): %v", configJSON, err)
	}
	if _, err := a.Init(context.Background(), &allocator.Snapshot{}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return &sim{
		t: t, a: a,
		agents:     map[string]allocator.Agent{},
		frameworks: map[string]allocator.Framework{},
		tasks:      map[taskKey]resources.Resources{},
	}
}

func (s *sim) delta(d allocator.Delta) {
	d.Version = s.version + uint64(len(s.pending)) + 1
	d.At = s.now
	s.pending = append(s.pending, d)
}

func (s *sim) advance(now allocator.LogicalTime) {
	if now < s.now {
		s.t.Fatalf("time goes backwards: %d after %d", now, s.now)
	}
	s.now = now
}

func (s *sim) addAgent(id string, total resources.Resources, active bool) {
	a := allocator.Agent{ID: id, Hostname: id, Total: total, Active: active}
	s.agents[id] = a
	s.delta(allocator.Delta{Kind: allocator.AgentAdded, Agent: &a})
}

func (s *sim) updateAgent(a allocator.Agent) {
	s.agents[a.ID] = a
	s.delta(allocator.Delta{Kind: allocator.AgentUpdated, Agent: &a})
}

func (s *sim) removeAgent(id string) {
	delete(s.agents, id)
	s.offers = slices.DeleteFunc(s.offers, func(o allocator.Proposal) bool { return o.AgentID == id })
	for k := range s.tasks {
		if k.agent == id {
			delete(s.tasks, k)
		}
	}
	s.delta(allocator.Delta{Kind: allocator.AgentRemoved, AgentID: id})
}

func (s *sim) addFramework(f allocator.Framework) {
	s.frameworks[f.ID] = f
	s.delta(allocator.Delta{Kind: allocator.FrameworkAdded, Framework: &f})
}

func (s *sim) updateFramework(f allocator.Framework) {
	s.frameworks[f.ID] = f
	s.delta(allocator.Delta{Kind: allocator.FrameworkUpdated, Framework: &f})
}

func (s *sim) removeFramework(id string) {
	delete(s.frameworks, id)
	s.offers = slices.DeleteFunc(s.offers, func(o allocator.Proposal) bool { return o.FrameworkID == id })
	for k := range s.tasks {
		if k.framework == id {
			delete(s.tasks, k)
		}
	}
	s.delta(allocator.Delta{Kind: allocator.FrameworkRemoved, FrameworkID: id})
}

func (s *sim) setWeight(role string, w float64) {
	s.delta(allocator.Delta{Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: role, Weight: w}})
}

func (s *sim) suppress(fw string, roles []string) {
	s.delta(allocator.Delta{Kind: allocator.Suppressed, FrameworkID: fw, Roles: roles})
}

func (s *sim) revive(fw string, roles []string) {
	s.delta(allocator.Delta{Kind: allocator.Revived, FrameworkID: fw, Roles: roles})
}

// allocate runs one cycle at now, commits the proposals as outstanding
// offers and returns them with the response's metrics.
func (s *sim) allocate(now allocator.LogicalTime, maxOffers int) ([]allocator.Proposal, map[string]float64, error) {
	s.advance(now)
	target := s.version + uint64(len(s.pending))
	resp, err := s.a.Allocate(context.Background(), &allocator.AllocateRequest{
		BaseVersion: s.version, Deltas: s.pending, TargetVersion: target,
		Now: now, Trigger: allocator.TriggerTimer, MaxOffers: maxOffers,
	})
	if err != nil {
		return nil, nil, err
	}
	if resp.AppliedVersion != target {
		return nil, nil, fmt.Errorf("applied version %d, want %d", resp.AppliedVersion, target)
	}
	s.version, s.pending = target, nil
	for _, o := range resp.Offers {
		s.offers = append(s.offers, o)
		s.delta(allocator.Delta{Kind: allocator.Allocated, Allocation: &allocator.Allocation{
			FrameworkID: o.FrameworkID, Role: o.Role, AgentID: o.AgentID, Resources: o.Resources,
		}})
	}
	return resp.Offers, resp.Metrics, nil
}

// mustAllocate is allocate for Go tests.
func (s *sim) mustAllocate(now allocator.LogicalTime, maxOffers int) ([]allocator.Proposal, map[string]float64) {
	s.t.Helper()
	offers, metrics, err := s.allocate(now, maxOffers)
	if err != nil {
		s.t.Fatalf("allocate at %d: %v", now, err)
	}
	return offers, metrics
}

// takeOffer removes and returns the framework's oldest outstanding offer on
// the agent.
func (s *sim) takeOffer(fw, agent string) (allocator.Proposal, error) {
	for i, o := range s.offers {
		if o.FrameworkID == fw && o.AgentID == agent {
			s.offers = slices.Delete(s.offers, i, i+1)
			return o, nil
		}
	}
	return allocator.Proposal{}, fmt.Errorf("framework %s has no outstanding offer on agent %s", fw, agent)
}

// accept launches use out of the offer and declines the rest with
// refuseSeconds, as a Mesos ACCEPT with filters does.
func (s *sim) accept(fw, agent string, use resources.Resources, refuseSeconds float64) error {
	o, err := s.takeOffer(fw, agent)
	if err != nil {
		return err
	}
	if !o.Resources.Contains(use) {
		s.offers = append(s.offers, o)
		return fmt.Errorf("offer %s does not contain %s", o.Resources, use)
	}
	k := taskKey{fw, o.Role, agent}
	s.tasks[k] = s.tasks[k].Add(use)
	if rest := o.Resources.Subtract(use); !rest.IsEmpty() {
		s.recovered(o.FrameworkID, o.Role, agent, rest, refuseSeconds)
	}
	return nil
}

func (s *sim) decline(fw, agent string, refuseSeconds float64) error {
	o, err := s.takeOffer(fw, agent)
	if err != nil {
		return err
	}
	s.recovered(o.FrameworkID, o.Role, agent, o.Resources, refuseSeconds)
	return nil
}

// finish ends tasks holding r that the framework runs on the agent.
func (s *sim) finish(fw, agent string, r resources.Resources) error {
	for k, held := range s.tasks {
		if k.framework == fw && k.agent == agent && held.Contains(r) {
			if left := held.Subtract(r); left.IsEmpty() {
				delete(s.tasks, k)
			} else {
				s.tasks[k] = left
			}
			s.recovered(fw, k.role, agent, r, 0)
			return nil
		}
	}
	return fmt.Errorf("framework %s runs no tasks holding %s on agent %s", fw, r, agent)
}

func (s *sim) recovered(fw, role, agent string, r resources.Resources, refuseSeconds float64) {
	s.delta(allocator.Delta{Kind: allocator.Recovered, RefuseSeconds: refuseSeconds, Allocation: &allocator.Allocation{
		FrameworkID: fw, Role: role, AgentID: agent, Resources: r,
	}})
}

// taskTotal sums what the framework's tasks hold.
func (s *sim) taskTotal(fw string) resources.Resources {
	var out resources.Resources
	for k, r := range s.tasks {
		if k.framework == fw {
			out = out.Add(r)
		}
	}
	return out
}
