package allocator

import (
	"fmt"
	"slices"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Scratch is a policy's working view of a State during one cycle: the
// state's allocations plus the proposals made so far in the cycle. Offering
// through a Scratch keeps one call from promising the same resources twice
// without touching the State itself, which must only ever change through
// the master's deltas.
type Scratch struct {
	s       *State
	exclude []string

	byAgent     map[string]resources.Resources
	byRole      map[string]resources.Resources
	byFramework map[string]resources.Resources
	proposals   []allocator.Proposal
}

// Scratch starts an empty scratch view of s. Shares computed through it
// ignore the resource names in exclude.
func (s *State) Scratch(exclude ...string) *Scratch {
	return &Scratch{
		s:           s,
		exclude:     slices.Clone(exclude),
		byAgent:     map[string]resources.Resources{},
		byRole:      map[string]resources.Resources{},
		byFramework: map[string]resources.Resources{},
	}
}

// State returns the underlying state.
func (v *Scratch) State() *State { return v.s }

// Available is the agent's available resources minus this cycle's
// proposals on it.
func (v *Scratch) Available(agentID string) resources.Resources {
	avail := v.s.Available(agentID)
	if extra, ok := v.byAgent[agentID]; ok {
		avail = avail.Subtract(extra)
	}
	return avail
}

// RoleShare is the role's weighted dominant share including this cycle's
// proposals.
func (v *Scratch) RoleShare(role string) float64 {
	alloc := v.s.RoleAllocated(role)
	if extra, ok := v.byRole[role]; ok {
		alloc = alloc.Add(extra)
	}
	return DominantShare(alloc, v.s.clusterTotal, v.exclude...) / v.s.Weight(role)
}

// FrameworkShare is the framework's dominant share including this cycle's
// proposals.
func (v *Scratch) FrameworkShare(frameworkID string) float64 {
	alloc := v.s.FrameworkAllocated(frameworkID)
	if extra, ok := v.byFramework[frameworkID]; ok {
		alloc = alloc.Add(extra)
	}
	return DominantShare(alloc, v.s.clusterTotal, v.exclude...)
}

// Offer records p as proposed. It fails, recording nothing, when p is
// empty, names an unknown or inactive agent or framework, a role the
// framework is not subscribed to, or more than is still available.
func (v *Scratch) Offer(p allocator.Proposal) error {
	if err := v.s.validProposal(p, v.s.agents[p.AgentID], v.byAgent[p.AgentID]); err != nil {
		return err
	}
	v.byAgent[p.AgentID] = v.byAgent[p.AgentID].Add(p.Resources)
	v.byRole[p.Role] = v.byRole[p.Role].Add(p.Resources.Scalars())
	v.byFramework[p.FrameworkID] = v.byFramework[p.FrameworkID].Add(p.Resources.Scalars())
	v.proposals = append(v.proposals, p)
	return nil
}

// validProposal checks p against the state, given its agent's entry (nil:
// unknown) and what the cycle already proposed on the agent.
func (s *State) validProposal(p allocator.Proposal, e *agentEntry, proposedOnAgent resources.Resources) error {
	if p.Resources.IsEmpty() {
		return fmt.Errorf("empty offer to framework %q on agent %q", p.FrameworkID, p.AgentID)
	}
	if e == nil || !e.agent.Active {
		return fmt.Errorf("agent %q is unknown or inactive", p.AgentID)
	}
	f, ok := s.frameworks[p.FrameworkID]
	if !ok || !f.Active {
		return fmt.Errorf("framework %q is unknown or inactive", p.FrameworkID)
	}
	if !slices.Contains(f.Roles, p.Role) {
		return fmt.Errorf("framework %q is not subscribed to role %q", p.FrameworkID, p.Role)
	}
	avail := e.avail
	if !proposedOnAgent.IsEmpty() {
		avail = avail.Subtract(proposedOnAgent)
	}
	if !avail.Contains(p.Resources) {
		return fmt.Errorf("offer of %s on agent %q exceeds available %s", p.Resources, p.AgentID, avail)
	}
	return nil
}

// proposalCheck re-validates a policy's proposals as a whole: each one
// valid and, together, never more than an agent has. It tracks only what
// validation needs, so the safety net costs little.
type proposalCheck struct {
	s *State
	// byAgent is keyed by the agent's entry: one string lookup per
	// proposal finds it, the rest are pointer lookups.
	byAgent map[*agentEntry]resources.Resources
}

func (c *proposalCheck) check(p allocator.Proposal) error {
	e := c.s.agents[p.AgentID]
	prior := c.byAgent[e]
	if err := c.s.validProposal(p, e, prior); err != nil {
		return err
	}
	if prior.IsEmpty() {
		// The usual case, one proposal per agent: nothing to add up.
		c.byAgent[e] = p.Resources
	} else {
		c.byAgent[e] = prior.Add(p.Resources)
	}
	return nil
}

// Proposals returns the offers recorded so far, in order.
func (v *Scratch) Proposals() []allocator.Proposal { return slices.Clone(v.proposals) }
