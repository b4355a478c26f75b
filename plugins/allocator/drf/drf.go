// Package drf is corral's default allocator: weighted Dominant Resource
// Fairness in the shape of Mesos' HierarchicalDRF allocator. Each cycle it
// walks the agents and offers each one's whole available resources to the
// framework furthest below its fair share: first the role with the lowest
// weighted dominant share, then the framework with the lowest dominant share
// inside that role.
package drf

import (
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Name and Version identify the plugin.
const (
	Name    = "drf"
	Version = "0.1.0"
)

// Metric name prefixes in AllocateResponse.Metrics.
const (
	MetricRoleShare      = "share/role/"      // + role: weighted dominant share
	MetricFrameworkShare = "share/framework/" // + framework ID: dominant share
)

// Info identifies the plugin.
func Info() base.Info {
	return base.Info{Kind: base.KindAllocator, Name: Name, Version: Version, APIVersions: allocator.APIVersions}
}

// NewPlugin returns the DRF allocator plugin, configured with the defaults
// until the host calls SetConfig.
func NewPlugin() allocator.Allocator {
	return sdk.NewPlugin(Info(), Schema(), func(configJSON []byte) (sdk.Policy, error) {
		cfg, err := ParseConfig(configJSON)
		if err != nil {
			return nil, err
		}
		return New(cfg), nil
	})
}

// Policy is the DRF policy. It holds only configuration; all state is in
// the sdk.State it is given.
type Policy struct {
	cfg Config
}

var (
	_ sdk.Policy          = (*Policy)(nil)
	_ sdk.MetricsReporter = (*Policy)(nil)
)

// New returns a DRF policy.
func New(cfg Config) *Policy { return &Policy{cfg: cfg} }

// candidate is a role with the active frameworks that want offers for it.
type candidate struct {
	role       string
	share      float64
	frameworks []string
}

// Allocate proposes at most maxOffers (0: no limit) offers, one per agent at
// most, each holding the agent's whole available resources.
func (p *Policy) Allocate(s *sdk.State, now allocator.LogicalTime, maxOffers int) []allocator.Proposal {
	scratch := s.Scratch(p.cfg.FairnessExclude...)
	cands := p.candidates(s)
	if len(cands) == 0 {
		return nil
	}
	// Shares change only when an offer is made, so they are computed once
	// per cycle and refreshed for the role and framework that got an offer.
	fwShare := map[string]float64{}
	for i := range cands {
		cands[i].share = scratch.RoleShare(cands[i].role)
		for _, f := range cands[i].frameworks {
			if _, ok := fwShare[f]; !ok {
				fwShare[f] = scratch.FrameworkShare(f)
			}
		}
	}

	offers := 0
	for _, agentID := range p.agentOrder(s, now) {
		if maxOffers > 0 && offers >= maxOffers {
			break
		}
		if !s.AgentActive(agentID) {
			continue
		}
		avail := scratch.Available(agentID)
		if !p.cfg.allocatable(avail) {
			continue
		}
		sort.SliceStable(cands, func(i, j int) bool {
			if cands[i].share != cands[j].share {
				return cands[i].share < cands[j].share
			}
			return cands[i].role < cands[j].role
		})
		if ci, fw, ok := pick(s, cands, fwShare, agentID, avail, now); ok {
			prop := allocator.Proposal{FrameworkID: fw, Role: cands[ci].role, AgentID: agentID, Resources: avail}
			if err := scratch.Offer(prop); err != nil {
				// Cannot happen: avail came from the same scratch view and
				// candidates are active and subscribed. Skip rather than
				// propose something invalid.
				continue
			}
			offers++
			cands[ci].share = scratch.RoleShare(cands[ci].role)
			fwShare[fw] = scratch.FrameworkShare(fw)
		}
	}
	return scratch.Proposals()
}

// pick returns the first (role, framework) in fair-share order that no
// filter keeps from being offered avail on the agent.
func pick(s *sdk.State, cands []candidate, fwShare map[string]float64, agentID string,
	avail resources.Resources, now allocator.LogicalTime) (int, string, bool) {
	for ci := range cands {
		fws := cands[ci].frameworks
		sort.SliceStable(fws, func(i, j int) bool {
			if fwShare[fws[i]] != fwShare[fws[j]] {
				return fwShare[fws[i]] < fwShare[fws[j]]
			}
			return fws[i] < fws[j]
		})
		for _, fw := range fws {
			if !s.Filtered(fw, cands[ci].role, agentID, avail, now) {
				return ci, fw, true
			}
		}
	}
	return 0, "", false
}

// candidates lists the roles that have at least one active framework
// subscribed and not suppressed for them.
func (p *Policy) candidates(s *sdk.State) []candidate {
	byRole := map[string][]string{}
	for _, f := range s.Frameworks() {
		if !f.Active {
			continue
		}
		for _, r := range f.Roles {
			if !slices.Contains(f.SuppressedRoles, r) {
				byRole[r] = append(byRole[r], f.ID)
			}
		}
	}
	out := make([]candidate, 0, len(byRole))
	for r, fws := range byRole {
		out = append(out, candidate{role: r, frameworks: fws})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].role < out[j].role })
	return out
}

// agentOrder is the order agents are visited in this cycle.
func (p *Policy) agentOrder(s *sdk.State, now allocator.LogicalTime) []string {
	ids := s.AgentIDs()
	if p.cfg.ShuffleSeed != 0 {
		rng := rand.New(rand.NewPCG(p.cfg.ShuffleSeed, uint64(now)))
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	}
	return ids
}

// Metrics reports every role's weighted dominant share and every
// framework's dominant share in the state the cycle started from: the
// master's ledger, in which outstanding offers already count as allocated.
// The cycle's own proposals are left out; they show up once the master
// commits them.
func (p *Policy) Metrics(s *sdk.State, _ []allocator.Proposal) map[string]float64 {
	m := map[string]float64{}
	for _, r := range s.Roles() {
		m[MetricRoleShare+r.Name] = s.RoleShare(r.Name, p.cfg.FairnessExclude...)
	}
	for _, f := range s.Frameworks() {
		m[MetricFrameworkShare+f.ID] = s.FrameworkShare(f.ID, p.cfg.FairnessExclude...)
	}
	return m
}
