package allocatortest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// fake is the allocator plugin of the testkit's own tests. It mirrors the
// master in an sdk.State fed with the Sim's snapshots and deltas, so that
// the SDK's consistency checks (versions, recovering only what is
// allocated, known tasks) also check the Sim's delta stream, and proposes
// whatever its policy returns.
type fake struct {
	mu     sync.Mutex
	state  *sdk.State
	inited bool
	inits  int
	bug    string // fakeConfig.Bug
	// gap makes the next Allocate report a version gap; gaps counts the
	// ones it reported on its own.
	gap  bool
	gaps int
	// script, when set, is the next response instead of first-fit's.
	script *allocator.AllocateResponse
}

// fakeConfig is the fake's config: Bug names a deliberate policy bug.
type fakeConfig struct {
	Bug string `json:"bug"`
}

// Deliberate bugs, for showing that the Sim and the checks catch them.
const (
	bugDoubleOffer      = "double-offer"      // every proposal twice
	bugIgnoreSuppress   = "ignore-suppress"   // suppressed roles still get offers
	bugIgnoreFilters    = "ignore-filters"    // declined resources offered again at once
	bugIgnoreLimits     = "ignore-limits"     // quota limits not applied
	bugRevokeGuaranteed = "revoke-guaranteed" // revokes tasks within their guarantee
	bugIgnoreMaxOffers  = "ignore-max-offers" // proposes more than max_offers
)

func newFake() *fake { return &fake{state: sdk.NewState()} }

func newFakePlugin(*testing.T) allocator.Allocator { return newFake() }

func (f *fake) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindAllocator, Name: "fake", Version: "0", APIVersions: allocator.APIVersions}, nil
}

func (f *fake) ConfigSchema(context.Context) (*base.Schema, error) { return &base.Schema{}, nil }

func (f *fake) SetConfig(_ context.Context, configJSON []byte, _ string) error {
	var cfg fakeConfig
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bug = cfg.Bug
	return nil
}

func (f *fake) Init(_ context.Context, snap *allocator.Snapshot) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inits++
	if err := f.state.Init(snap); err != nil {
		f.inited = false
		return 0, err
	}
	f.inited = true
	return snap.Version, nil
}

func (f *fake) Allocate(_ context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gap || !f.inited || req.BaseVersion != f.state.Version() {
		if !f.gap {
			f.gaps++ // not asked for: the Sim lost track of the version
		}
		f.gap = false
		return nil, &allocator.VersionGapError{Have: f.state.Version(), Want: req.BaseVersion}
	}
	for _, d := range req.Deltas {
		if err := f.state.Apply(d); err != nil {
			f.inited = false
			return nil, err
		}
	}
	f.state.Advance(req.Now)
	resp := f.script
	f.script = nil
	if resp == nil {
		resp = firstFit(f.bug, f.state, req)
	}
	resp.AppliedVersion = f.state.Version()
	return resp, nil
}

// firstFit offers each active agent's free resources, capped by the quota
// limits of the role and its ancestors, to the first framework by ID (and
// its first role) that is active and has not suppressed or filtered them,
// and revokes every task outside its guarantee that has run for
// req.RevokeAfter. It is deliberately unfair; bug names a deliberate bug.
func firstFit(bug string, s *sdk.State, req *allocator.AllocateRequest) *allocator.AllocateResponse {
	resp := &allocator.AllocateResponse{}
	proposed := map[string]resources.Resources{} // this cycle's proposals per role
	for _, agentID := range s.AgentIDs() {
		if req.MaxOffers > 0 && len(resp.Offers) >= req.MaxOffers && bug != bugIgnoreMaxOffers {
			break
		}
		if !s.AgentActive(agentID) {
			continue
		}
		free := s.Available(agentID)
	next:
		for _, f := range s.Frameworks() {
			for _, role := range f.Roles {
				if !f.Active || (s.Suppressed(f.ID, role) && bug != bugIgnoreSuppress) {
					continue
				}
				offer := free
				if bug != bugIgnoreLimits {
					for _, r := range resources.RoleAncestors(role) {
						offer = capToLimit(offer, s.Role(r).Limit, roleTree(s, r).Add(treeOf(proposed, r)))
					}
				}
				if offer.Scalars().IsEmpty() || (s.Filtered(f.ID, role, agentID, offer, req.Now) && bug != bugIgnoreFilters) {
					continue
				}
				resp.Offers = append(resp.Offers, allocator.Proposal{FrameworkID: f.ID, Role: role, AgentID: agentID, Resources: offer})
				proposed[role] = proposed[role].Add(offer)
				break next
			}
		}
	}
	if bug == bugDoubleOffer {
		resp.Offers = append(resp.Offers, resp.Offers...)
	}
	if req.RevokeAfter > 0 {
		for _, t := range s.Tasks() {
			if req.Now-t.StartedAt >= req.RevokeAfter && (!t.WithinGuarantee || bug == bugRevokeGuaranteed) {
				resp.Revocations = append(resp.Revocations, allocator.Revocation{
					FrameworkID: t.FrameworkID, TaskID: t.ID, AgentID: t.AgentID, Reason: allocator.RevokeLongTask})
			}
		}
	}
	return resp
}

// capToLimit trims offer so that used plus offer stays within limit on the
// scalars limit names.
func capToLimit(offer, limit, used resources.Resources) resources.Resources {
	for _, n := range limit.ScalarNames() {
		room := max(limit.Scalar(n)-used.Scalar(n), 0)
		if v := offer.Scalar(n); v > room {
			offer = offer.Subtract(resources.NewScalar(n, v-room))
		}
	}
	return offer
}

// roleTree sums the allocations of role and its descendants in the state.
func roleTree(s *sdk.State, role string) resources.Resources {
	var out resources.Resources
	for _, a := range s.Allocations() {
		if inSubtree(a.Role, role) {
			out = out.Add(a.Resources)
		}
	}
	return out
}

func treeOf(byRole map[string]resources.Resources, role string) resources.Resources {
	var out resources.Resources
	for r, v := range byRole {
		if inSubtree(r, role) {
			out = out.Add(v)
		}
	}
	return out
}
