// Package binpack is an example in-house allocator for corral, small enough
// to copy as the start of your own. It packs: every task a framework has
// declared (its demand) is offered on the fullest agent it fits, so that
// the emptiest agents stay whole for large tasks. Frameworks that declared
// no demand are offered whole free agents, as Mesos does, the fullest
// first. It is not fair: use drf or quota for that. README.md beside this
// file walks through writing, testing, building, configuring and running.
package binpack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Name is what operators write in `master { allocator = "binpack" }`; the
// master then runs <plugin_dir>/corral-allocator-binpack.
const Name, Version = "binpack", "0.1.0"

// MetricWholeAgents is how many active agents nothing is allocated to or
// offered on after a cycle: what packing tries to keep high.
const MetricWholeAgents = "binpack/whole_agents"

// Config is the plugin's config: the body of `plugin "binpack" { config {
// ... } }`, which the master decodes against Schema and sends as JSON.
type Config struct {
	// PackBy is the resource that ranks agents: the fullest agent is the
	// one with the least of it free.
	PackBy string `json:"pack_by"`
}

// Schema is what the master checks the operator's config block against;
// it fills in these defaults before it calls SetConfig.
func Schema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{
		{Name: "pack_by", Type: "string", DefaultJSON: `"cpus"`, Description: "Resource that ranks agents: tasks go to the agent with the least of it free that fits them."},
	}}
}

// ParseConfig decodes and checks a config JSON object. Attributes left out
// take the same defaults as in Schema, because the SDK configures a plugin
// with "{}" when the master has not called SetConfig.
func ParseConfig(configJSON []byte) (Config, error) {
	cfg := Config{PackBy: "cpus"}
	dec := json.NewDecoder(bytes.NewReader(configJSON))
	dec.DisallowUnknownFields() // a misspelt attribute must fail, not be ignored
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, err // the SDK says whose config it was
	}
	if cfg.PackBy == "" {
		return Config{}, fmt.Errorf(`attribute "pack_by": want a resource name such as "cpus", got ""`)
	}
	return cfg, nil
}

// NewPlugin returns the plugin: the SDK mirrors the master's state, calls
// Allocate once per cycle and checks every proposal before it leaves.
func NewPlugin() allocator.Allocator {
	return sdk.NewPlugin(base.Info{Name: Name, Version: Version}, Schema(), func(configJSON []byte) (sdk.Policy, error) {
		cfg, err := ParseConfig(configJSON)
		if err != nil {
			return nil, err
		}
		return &Policy{cfg: cfg}, nil
	})
}

// Policy is the bin-packing policy. It remembers nothing between cycles,
// so it needs no sdk.Resetter: each cycle is a function of the state.
type Policy struct{ cfg Config }

var _ sdk.MetricsReporter = (*Policy)(nil)

// offerKey is one offer: a framework, one of its roles, an agent.
type offerKey struct{ fw, role, agent string }

// cycle is one Allocate call's working state.
type cycle struct {
	s       *sdk.State
	scratch *sdk.Scratch // this cycle's promises, so nothing is offered twice
	now     allocator.LogicalTime
	max     int
	packBy  string
	agents  []string             // sorted by ID, so that ties go to the lowest
	index   map[offerKey]int     // tasks for one agent merge into one offer
	props   []allocator.Proposal // in the order first made, for determinism
}

// Allocate places declared tasks first, then offers the leftovers whole.
func (p *Policy) Allocate(s *sdk.State, now allocator.LogicalTime, maxOffers int) []allocator.Proposal {
	c := &cycle{s: s, scratch: s.Scratch(), now: now, max: maxOffers, packBy: p.cfg.PackBy, agents: s.AgentIDs(), index: map[offerKey]int{}}
	var whole []offerKey // framework and role without demand (agent unset)
	for _, f := range s.Frameworks() {
		for _, role := range f.Roles {
			if !f.Active || s.Suppressed(f.ID, role) { // the core would drop these offers
				continue
			}
			shapes := s.Demand(f.ID, role)
			if len(shapes) == 0 {
				whole = append(whole, offerKey{fw: f.ID, role: role})
				continue
			}
			// Outstanding offers (allocated, not used by tasks) already cover
			// some tasks: offering those again would double the demand.
			outstanding := s.ClientAllocated(f.ID, role).Subtract(s.ClientTasks(f.ID, role))
			for _, sh := range shapes {
				for n := sh.Count; n > 0; n-- {
					if outstanding.Contains(sh.Resources) {
						outstanding = outstanding.Subtract(sh.Resources)
					} else if !c.place(f.ID, role, sh.Resources) {
						break // free space only shrinks: the rest fits nowhere either
					}
				}
			}
		}
	}
	// Leftovers go whole, fullest agent first, to one client after the
	// other, so that each gets an agent before any gets a second.
	sort.SliceStable(c.agents, func(i, j int) bool { return c.free(c.agents[i]) < c.free(c.agents[j]) })
	next := 0
	for _, id := range c.agents {
		avail := c.scratch.Available(id)
		for i := 0; i < len(whole) && !avail.IsEmpty(); i++ {
			if k := whole[(next+i)%len(whole)]; c.offer(offerKey{k.fw, k.role, id}, avail) {
				next = (next + i + 1) % len(whole)
				break
			}
		}
	}
	return c.props
}

// place offers one task of shape on the fullest agent it fits.
func (c *cycle) place(fw, role string, shape resources.Resources) bool {
	best := offerKey{}
	for _, id := range c.agents {
		k := offerKey{fw, role, id}
		if c.allowed(k, shape) && (best.agent == "" || c.free(id) < c.free(best.agent)) {
			best = k
		}
	}
	return best.agent != "" && c.offer(best, shape)
}

// free is how much of the pack_by resource the agent has left this cycle.
func (c *cycle) free(agentID string) float64 {
	return c.scratch.Available(agentID).Scalar(c.packBy)
}

// allowed says whether r can be added to offer k: the agent is active and
// has r left, the offer's new total is not covered by a decline filter
// (the core does not enforce filters: policies must), and a new offer
// stays within maxOffers.
func (c *cycle) allowed(k offerKey, r resources.Resources) bool {
	i, open := c.index[k]
	total := r
	if open {
		total = c.props[i].Resources.Add(r)
	}
	return (open || c.max == 0 || len(c.props) < c.max) && c.s.AgentActive(k.agent) &&
		c.scratch.Available(k.agent).Contains(r) && !c.s.Filtered(k.fw, k.role, k.agent, total, c.now)
}

// offer adds r to offer k if allowed, recording it on the scratch.
func (c *cycle) offer(k offerKey, r resources.Resources) bool {
	p := allocator.Proposal{FrameworkID: k.fw, Role: k.role, AgentID: k.agent, Resources: r}
	if !c.allowed(k, r) || c.scratch.Offer(p) != nil {
		return false
	}
	if i, open := c.index[k]; open {
		c.props[i].Resources = c.props[i].Resources.Add(r)
	} else {
		c.index[k] = len(c.props)
		c.props = append(c.props, p)
	}
	return true
}

// Metrics reports how many active agents are still whole after the cycle.
func (p *Policy) Metrics(s *sdk.State, proposals []allocator.Proposal) map[string]float64 {
	used := map[string]bool{}
	for _, o := range proposals {
		used[o.AgentID] = true
	}
	whole := 0
	for _, a := range s.Agents() {
		if a.Active && !used[a.ID] && s.Available(a.ID).Contains(a.Total) {
			whole++
		}
	}
	return map[string]float64{MetricWholeAgents: float64(whole)}
}
