package allocator

import (
	"fmt"
	"sync"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
)

// Offer references: every cycle the master commits the plugin's proposals
// as Allocated deltas and later recovers declined ones as Recovered
// deltas, so most of a request repeats resources the plugin itself sent in
// a recent response. Both ends of the glue remember the last few
// responses' offers; the host sends (response, index) instead of the
// resources, and the plugin side expands it back before the
// implementation sees the request. It roughly halves what crosses the wire
// per cycle, and it is invisible to the master and to plugins.

// recentResponses is how many responses each side remembers. A request
// refers only to responses the host received, which the plugin side,
// having sent them, still holds unless more than this many went by.
const recentResponses = 4

type offerKey struct {
	framework, role, agent string
}

type sentOffers struct {
	id     uint64
	offers []Proposal
	index  map[offerKey]int // first offer per key, host side only
}

// offerMemory is one side's memory of recent responses.
type offerMemory struct {
	mu     sync.Mutex
	recent []*sentOffers // oldest first
}

func (m *offerMemory) remember(id uint64, offers []Proposal, indexed bool) {
	if id == 0 || len(offers) == 0 {
		return
	}
	so := &sentOffers{id: id, offers: offers}
	if indexed {
		so.index = make(map[offerKey]int, len(offers))
		for i, o := range offers {
			k := offerKey{o.FrameworkID, o.Role, o.AgentID}
			if _, dup := so.index[k]; !dup {
				so.index[k] = i
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recent = append(m.recent, so)
	if len(m.recent) > recentResponses {
		m.recent = m.recent[len(m.recent)-recentResponses:]
	}
}

// ref finds a as an offer of a remembered response, newest first.
func (m *offerMemory) ref(a *Allocation) (*allocatorpb.OfferRef, bool) {
	if a == nil {
		return nil, false
	}
	k := offerKey{a.FrameworkID, a.Role, a.AgentID}
	for i := len(m.recent) - 1; i >= 0; i-- {
		so := m.recent[i]
		if j, ok := so.index[k]; ok && so.offers[j].Resources.Equal(a.Resources) {
			return &allocatorpb.OfferRef{ResponseId: so.id, Index: uint32(j)}, true
		}
	}
	return nil, false
}

// resolve expands a reference back into the allocation it names.
func (m *offerMemory) resolve(r *allocatorpb.OfferRef) (*Allocation, error) {
	for _, so := range m.recent {
		if so.id != r.GetResponseId() {
			continue
		}
		if int(r.GetIndex()) >= len(so.offers) {
			return nil, fmt.Errorf("offer reference %d/%d: the response had %d offers", r.GetResponseId(), r.GetIndex(), len(so.offers))
		}
		o := so.offers[r.GetIndex()]
		return &Allocation{FrameworkID: o.FrameworkID, Role: o.Role, AgentID: o.AgentID, Resources: o.Resources}, nil
	}
	return nil, fmt.Errorf("offer reference to response %d, which this plugin no longer remembers", r.GetResponseId())
}

// refDelta returns the wire form of d as an offer reference, or nil when
// d is not an Allocated or Recovered delta of a remembered offer. The
// caller holds m.mu.
func (m *offerMemory) refDelta(d *Delta) *allocatorpb.Delta {
	if m == nil || len(m.recent) == 0 || (d.Kind != Allocated && d.Kind != Recovered) {
		return nil
	}
	r, ok := m.ref(d.Allocation)
	if !ok {
		return nil
	}
	p := &allocatorpb.Delta{Version: d.Version, AtMs: int64(d.At)}
	if d.Kind == Allocated {
		p.Change = &allocatorpb.Delta_AllocatedOffer{AllocatedOffer: r}
	} else {
		r.RefuseSeconds = d.RefuseSeconds
		p.Change = &allocatorpb.Delta_RecoveredOffer{RecoveredOffer: r}
	}
	return p
}
