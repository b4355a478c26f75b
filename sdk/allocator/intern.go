package allocator

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// agentEntry is what the state keeps per agent: the agent and what is free
// on it (its total minus every allocation booked there), kept current.
type agentEntry struct {
	agent *allocator.Agent
	avail resources.Resources
	// slot is the entry's index in State.agentSlots: how the expiry queue
	// names the agent in 4 bytes instead of its ID.
	slot    int32
	filters agentFilters
}

// AgentView is one agent as a policy reads it while visiting the agent:
// one lookup (State.AgentView) instead of one per question. It reads the
// state's own entry: valid until the state next changes, and read only.
type AgentView struct {
	e *agentEntry
}

// AgentView returns the agent's view; Known is false for an unknown agent.
func (s *State) AgentView(agentID string) AgentView { return AgentView{s.agents[agentID]} }

// Known reports whether the agent exists.
func (v AgentView) Known() bool { return v.e != nil }

// Active reports whether the agent is known and active (State.AgentActive).
func (v AgentView) Active() bool { return v.e != nil && v.e.agent.Active }

// Available is State.Available for the agent.
func (v AgentView) Available() resources.Resources {
	if v.e == nil {
		return resources.Resources{}
	}
	return v.e.avail
}

// Total is the agent's total resources.
func (v AgentView) Total() resources.Resources {
	if v.e == nil {
		return resources.Resources{}
	}
	return v.e.agent.Total
}

// ClientRef is a small integer standing for one (framework, role) pair in a
// State, so that a policy checking many clients on many agents compares
// and looks up integers instead of hashing strings (see
// AgentFilters.FilteredRef). A ref is valid until ClientsGeneration
// changes: the state may give a removed framework's refs to new pairs.
type ClientRef int32

// ClientRef returns the ref of the framework's client under role.
func (s *State) ClientRef(frameworkID, role string) ClientRef {
	return s.clients.intern(frameworkID, role)
}

// clientInterner numbers (framework, role) pairs. A removed framework's
// numbers are reused, so the table stays the size of the pairs that exist.
type clientInterner struct {
	refs map[demandKey]ClientRef
	keys []demandKey // by ref
	free []ClientRef
}

func (c *clientInterner) intern(framework, role string) ClientRef {
	k := demandKey{framework, role}
	if ref, ok := c.refs[k]; ok {
		return ref
	}
	if c.refs == nil {
		c.refs = map[demandKey]ClientRef{}
	}
	var ref ClientRef
	if n := len(c.free); n > 0 {
		ref = c.free[n-1]
		c.free = c.free[:n-1]
		c.keys[ref] = k
	} else {
		ref = ClientRef(len(c.keys))
		c.keys = append(c.keys, k)
	}
	c.refs[k] = ref
	return ref
}

func (c *clientInterner) lookup(framework, role string) (ClientRef, bool) {
	ref, ok := c.refs[demandKey{framework, role}]
	return ref, ok
}

// refsOf returns the refs of a framework's pairs.
func (c *clientInterner) refsOf(framework string) []ClientRef {
	var out []ClientRef
	for k, ref := range c.refs {
		if k.framework == framework {
			out = append(out, ref)
		}
	}
	return out
}

// release frees the refs of a framework's pairs.
func (c *clientInterner) release(framework string) {
	for k, ref := range c.refs {
		if k.framework == framework {
			delete(c.refs, k)
			c.keys[ref] = demandKey{}
			c.free = append(c.free, ref)
		}
	}
}
