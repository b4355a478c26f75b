package master

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	sdkalloc "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// shadowDiff accumulates how a shadowing candidate's proposals differ from
// the active plugin's: both get the same deltas, only the active plugin's
// proposals become offers.
type shadowDiff struct {
	cycles           int
	activeOffers     int
	candidateOffers  int
	candidateInvalid int
	// otherFramework counts candidate proposals of an agent to a framework
	// the active plugin did not offer that agent to in the same cycle.
	otherFramework int
	// roles sums the resources each plugin proposed per role (active,
	// candidate).
	roles map[string]*[2]resources.Resources
	// shares are the frameworks' dominant shares were the last cycle's
	// proposals all accepted (active, candidate).
	shares map[string][2]float64
}

// ShadowDiff is the operator's view of a shadow comparison.
type ShadowDiff struct {
	Cycles           int `json:"cycles"`
	ActiveOffers     int `json:"active_offers"`
	CandidateOffers  int `json:"candidate_offers"`
	CandidateInvalid int `json:"candidate_invalid"`
	// OffersToOtherFrameworks counts candidate offers of an agent to a
	// framework the active plugin did not offer that agent to.
	OffersToOtherFrameworks int `json:"offers_to_other_frameworks"`
	// Roles are the resources each plugin offered per role over the
	// shadow cycles.
	Roles map[string]PairString `json:"roles,omitempty"`
	// ProjectedShares are each framework's dominant share if the last
	// cycle's offers of each plugin were all accepted.
	ProjectedShares map[string]PairFloat `json:"projected_shares,omitempty"`
}

// PairString and PairFloat hold one value per plugin.
type PairString struct {
	Active    string `json:"active"`
	Candidate string `json:"candidate"`
}

// PairFloat holds one value per plugin.
type PairFloat struct {
	Active    float64 `json:"active"`
	Candidate float64 `json:"candidate"`
}

func (d *shadowDiff) view() ShadowDiff {
	v := ShadowDiff{Cycles: d.cycles, ActiveOffers: d.activeOffers, CandidateOffers: d.candidateOffers,
		CandidateInvalid: d.candidateInvalid, OffersToOtherFrameworks: d.otherFramework}
	if len(d.roles) > 0 {
		v.Roles = make(map[string]PairString, len(d.roles))
		for r, p := range d.roles {
			v.Roles[r] = PairString{Active: p[0].String(), Candidate: p[1].String()}
		}
	}
	if len(d.shares) > 0 {
		v.ProjectedShares = make(map[string]PairFloat, len(d.shares))
		for f, p := range d.shares {
			v.ProjectedShares[f] = PairFloat{Active: p[0], Candidate: p[1]}
		}
	}
	return v
}

// Differs reports whether the candidate would have offered anything
// differently.
func (d ShadowDiff) Differs() bool {
	if d.OffersToOtherFrameworks > 0 || d.ActiveOffers != d.CandidateOffers {
		return true
	}
	for _, p := range d.Roles {
		if p.Active != p.Candidate {
			return true
		}
	}
	return false
}

// compareShadowLocked records how the candidate's proposals differ from
// the active plugin's in this cycle. It runs before the active proposals
// are committed, so both are judged against the same books.
func (m *Master) compareShadowLocked(c *candidate, active []allocator.Proposal, cc *pluginCall) {
	actValid, _ := m.dryRunLocked(active)
	candValid, invalid := m.dryRunLocked(cc.resp.Offers)
	cc.proposed, cc.invalid = len(cc.resp.Offers), invalid

	offered := make(map[[2]string]bool, len(actValid))
	for _, p := range actValid {
		offered[[2]string{p.AgentID, p.FrameworkID}] = true
	}
	other := 0
	for _, p := range candValid {
		if !offered[[2]string{p.AgentID, p.FrameworkID}] {
			other++
		}
	}
	m.slot.mu.Lock()
	d := &c.diff
	d.cycles++
	d.activeOffers += len(actValid)
	d.candidateOffers += len(candValid)
	d.candidateInvalid += invalid
	d.otherFramework += other
	if d.roles == nil {
		d.roles = map[string]*[2]resources.Resources{}
	}
	for i, props := range [][]allocator.Proposal{actValid, candValid} {
		for _, p := range props {
			sum := d.roles[p.Role]
			if sum == nil {
				sum = &[2]resources.Resources{}
				d.roles[p.Role] = sum
			}
			sum[i] = sum[i].Add(p.Resources)
		}
	}
	d.shares = m.projectedSharesLocked(actValid, candValid)
	m.slot.mu.Unlock()

	m.metrics.shadowCycles.Inc()
	m.metrics.shadowOffers.WithLabelValues("active").Add(float64(len(actValid)))
	m.metrics.shadowOffers.WithLabelValues("candidate").Add(float64(len(candValid)))
	m.metrics.shadowDiffering.Add(float64(other))
	for f, p := range d.shares {
		m.metrics.shadowShare.WithLabelValues(f, "active").Set(p[0])
		m.metrics.shadowShare.WithLabelValues(f, "candidate").Set(p[1])
	}
}

// dryRunLocked validates proposals as commitProposalsLocked would, without
// committing anything: it returns the valid ones and counts the rest.
func (m *Master) dryRunLocked(props []allocator.Proposal) (valid []allocator.Proposal, invalid int) {
	taken := map[string]resources.Resources{}
	for _, p := range props {
		if m.validateProposalLocked(p, taken[p.AgentID]) != "" {
			invalid++
			continue
		}
		taken[p.AgentID] = taken[p.AgentID].Add(p.Resources)
		valid = append(valid, p)
	}
	return valid, invalid
}

// projectedSharesLocked is every framework's dominant share of the
// connected agents' resources were each plugin's proposals accepted on top
// of what the framework holds now (tasks and outstanding offers).
func (m *Master) projectedSharesLocked(active, cand []allocator.Proposal) map[string][2]float64 {
	var total resources.Resources
	for _, a := range m.agents {
		if a.connected {
			total = total.Add(a.total)
		}
	}
	held := make(map[string]resources.Resources, len(m.frameworks))
	for id, f := range m.frameworks {
		var r resources.Resources
		for _, t := range f.tasks {
			r = r.Add(t.resources)
		}
		for _, o := range f.offers {
			r = r.Add(o.resources)
		}
		held[id] = r
	}
	// The SDK's share basis: dominant-share arithmetic lives in one place.
	basis := sdkalloc.NewShareBasis(total)
	out := make(map[string][2]float64, len(held))
	for i, props := range [][]allocator.Proposal{active, cand} {
		with := make(map[string]resources.Resources, len(props))
		for _, p := range props {
			with[p.FrameworkID] = with[p.FrameworkID].Add(p.Resources)
		}
		for id, r := range held {
			v := out[id]
			v[i] = basis.Of(r.Add(with[id]))
			out[id] = v
		}
	}
	return out
}
