package allocator

import (
	"fmt"
	"math/bits"
	"sync"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"google.golang.org/protobuf/encoding/protowire"
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
	// Host side only. The master commits and recovers offers mostly in
	// the order it got them, so a lookup first tries the offers just
	// after the last one found (next); index, the first offer per key,
	// is built only when that fails.
	indexed bool
	index   map[offerKey]int
	next    int
}

// seqWindow is how many offers after the last one found a lookup tries
// before it turns to the index: recovered declines skip the offers that
// were kept in between.
const seqWindow = 16

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
	m.mu.Lock()
	defer m.mu.Unlock()
	so.indexed = indexed
	if indexed && len(m.recent) >= recentResponses && m.recent[0].index != nil {
		// The index of the response about to be forgotten is kept for
		// reuse: a busy cycle indexes thousands of offers, and growing a
		// fresh map for them every cycle was a tenth of the host's share
		// of a plugin cycle (and megabytes of new heap to fault in).
		so.index = m.recent[0].index
		m.recent[0].index = nil
		clear(so.index)
	}
	m.recent = append(m.recent, so)
	if len(m.recent) > recentResponses {
		// Shift down in place: the backing array is reused, not regrown.
		n := copy(m.recent, m.recent[len(m.recent)-recentResponses:])
		clear(m.recent[n:])
		m.recent = m.recent[:n]
	}
}

// ref finds a as an offer of a remembered response, newest first. The
// caller holds m.mu.
func (m *offerMemory) ref(a *Allocation) (id uint64, index uint32, ok bool) {
	if a == nil {
		return 0, 0, false
	}
	for i := len(m.recent) - 1; i >= 0; i-- {
		so := m.recent[i]
		if !so.indexed {
			continue
		}
		n := len(so.offers)
		for w := 0; w < min(seqWindow, n); w++ {
			j := (so.next + w) % n
			if o := &so.offers[j]; o.AgentID == a.AgentID && o.FrameworkID == a.FrameworkID && o.Role == a.Role && o.Resources.Equal(a.Resources) {
				so.next = j + 1
				return so.id, uint32(j), true
			}
		}
		if j, ok := so.lookup(a); ok {
			so.next = j + 1
			return so.id, uint32(j), true
		}
	}
	return 0, 0, false
}

// lookup finds a's first offer through the index, building it first.
func (so *sentOffers) lookup(a *Allocation) (int, bool) {
	if len(so.index) == 0 {
		if so.index == nil {
			so.index = make(map[offerKey]int, len(so.offers))
		}
		for i, o := range so.offers {
			k := offerKey{o.FrameworkID, o.Role, o.AgentID}
			if _, dup := so.index[k]; !dup {
				so.index[k] = i
			}
		}
	}
	j, ok := so.index[offerKey{a.FrameworkID, a.Role, a.AgentID}]
	return j, ok && so.offers[j].Resources.Equal(a.Resources)
}

// resolve returns offer index of response id as an allocation. The caller
// holds m.mu.
func (m *offerMemory) find(id uint64) *sentOffers {
	for _, so := range m.recent {
		if so.id == id {
			return so
		}
	}
	return nil
}

// compressDeltas converts deltas to the wire, turning runs of Allocated or
// Recovered deltas that repeat remembered offers into OfferRefRuns. The
// caller holds m.mu (m may be nil: no compression). IDs enc holds go as
// handles; note (nil: none) is called with each delta sent whole, before
// it is encoded. Runs go in the compact forms the plugin reads (reads,
// WireFeature bits) where they can (compactRun).
func (m *offerMemory) compressDeltas(deltas []Delta, enc idEncoder, note func(*Delta), reads uint64) ([]*allocatorpb.Delta, error) {
	out := make([]*allocatorpb.Delta, 0, len(deltas))
	var run *allocatorpb.OfferRefRun
	var runNext uint64 // the version the open run would cover next
	var runAt LogicalTime
	for i := range deltas {
		d := &deltas[i]
		if m != nil && len(m.recent) > 0 && (d.Kind == Allocated || d.Kind == Recovered) {
			if id, index, ok := m.ref(d.Allocation); ok {
				recovered := d.Kind == Recovered
				if run == nil || run.ResponseId != id || run.Recovered != recovered || d.Version != runNext || d.At != runAt {
					run = &allocatorpb.OfferRefRun{ResponseId: id, Recovered: recovered}
					out = append(out, &allocatorpb.Delta{Version: d.Version, AtMs: int64(d.At),
						Change: &allocatorpb.Delta_OfferRefs{OfferRefs: run}})
				}
				if recovered && (d.RefuseSeconds != 0 || len(run.RefuseSeconds) > 0) {
					for len(run.RefuseSeconds) < len(run.Indices) {
						run.RefuseSeconds = append(run.RefuseSeconds, 0)
					}
					run.RefuseSeconds = append(run.RefuseSeconds, d.RefuseSeconds)
				}
				run.Indices = append(run.Indices, index)
				runNext, runAt = d.Version+1, d.At
				continue
			}
		}
		run = nil
		if note != nil {
			note(d)
		}
		p, err := deltaToProto(d, enc)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if reads&uint64(allocatorpb.WireFeature_WIRE_REF_RANGES) != 0 {
		bitmaps := reads&uint64(allocatorpb.WireFeature_WIRE_REF_BITMAPS) != 0
		for _, p := range out {
			if run := p.GetOfferRefs(); run != nil {
				compactRun(run, bitmaps)
			}
		}
	}
	return out, nil
}

// compactRun rewrites run in the compact forms WIRE_REF_RANGES allows (and
// with bitmaps WIRE_REF_BITMAPS): the
// master commits a cycle's offers in the order they came and recovers the
// declined ones mostly so, each with the same filter, so at scale a run is
// thousands of consecutive indices and as many copies of one refuse
// duration (an 8-byte double each, two thirds of a busy request), which
// then cross the wire as three numbers.
func compactRun(run *allocatorpb.OfferRefRun, bitmaps bool) {
	idx := run.Indices
	if len(idx) > 1 && uint64(idx[0])+uint64(len(idx)) <= 1<<32 {
		consecutive := true
		for i, v := range idx {
			if v != idx[0]+uint32(i) {
				consecutive = false
				break
			}
		}
		if consecutive {
			run.First, run.Count, run.Indices = idx[0], uint32(len(idx)), nil
		} else if bitmaps {
			membersOf(run)
		}
	}
	if rs := run.RefuseSeconds; len(rs) > 1 && rs[0] != 0 {
		for _, v := range rs {
			if v != rs[0] {
				return
			}
		}
		run.RefuseAll, run.RefuseSeconds = rs[0], nil
	}
}

// maxRunOffers bounds the room a request's offer references reserve
// before they are checked: more than a response of base.MaxMessageSize
// can hold (each offer takes at least a few bytes).
const maxRunOffers = 1 << 22

// membersOf rewrites run's indices as a bitmap when they ascend and the
// bitmap is the smaller: a cycle's declined offers, say, which are most
// of its offers but not all.
func membersOf(run *allocatorpb.OfferRefRun) {
	idx := run.Indices
	size := 0 // of the packed varints
	for i, v := range idx {
		if i > 0 && v <= idx[i-1] {
			return
		}
		size += protowire.SizeVarint(uint64(v))
	}
	span := int(idx[len(idx)-1]-idx[0]) + 1
	if (span+7)/8 >= size {
		return
	}
	members := make([]byte, (span+7)/8)
	for _, v := range idx {
		i := v - idx[0]
		members[i/8] |= 1 << (i % 8)
	}
	run.First, run.Members, run.Indices = idx[0], members, nil
}

// runLen is the number of offers run names, in any form.
func runLen(run *allocatorpb.OfferRefRun) int {
	if n := run.GetCount(); n > 0 {
		return int(n)
	}
	if m := run.GetMembers(); len(m) > 0 {
		n := 0
		for _, b := range m {
			n += bits.OnesCount8(b)
		}
		return n
	}
	return len(run.GetIndices())
}

// expandRun appends the deltas an OfferRefRun stands for to out. The
// caller holds m.mu (m nil: references cannot be resolved).
func (m *offerMemory) expandRun(out []Delta, p *allocatorpb.Delta, run *allocatorpb.OfferRefRun) ([]Delta, error) {
	if m == nil {
		return nil, fmt.Errorf("delta version %d refers to offers, which only the plugin glue can resolve", p.GetVersion())
	}
	n := runLen(run)
	forms := 0
	for _, used := range []bool{run.GetCount() > 0, len(run.GetMembers()) > 0, len(run.GetIndices()) > 0} {
		if used {
			forms++
		}
	}
	if forms > 1 {
		return nil, fmt.Errorf("delta version %d: offer references in %d forms at once (range, bitmap, indices)", p.GetVersion(), forms)
	}
	rs := run.GetRefuseSeconds()
	if len(rs) != 0 && len(rs) != n {
		return nil, fmt.Errorf("delta version %d: %d refuse durations for %d offers", p.GetVersion(), len(rs), n)
	}
	so := m.find(run.GetResponseId())
	if so == nil {
		return nil, fmt.Errorf("delta version %d: offer reference to response %d, which this plugin no longer remembers",
			p.GetVersion(), run.GetResponseId())
	}
	kind, at := Allocated, LogicalTime(p.GetAtMs())
	if run.GetRecovered() {
		kind = Recovered
	}
	indices, first, ranged := run.GetIndices(), uint64(run.GetFirst()), run.GetCount() > 0
	members, bit := run.GetMembers(), uint64(0)
	refuseAll := run.GetRefuseAll()
	for i := range n {
		var index uint64
		switch {
		case ranged:
			index = first + uint64(i)
		case len(members) > 0:
			for members[bit/8]>>(bit%8)&1 == 0 {
				bit++
			}
			index = first + bit
			bit++
		default:
			index = uint64(indices[i])
		}
		if index >= uint64(len(so.offers)) {
			return nil, fmt.Errorf("delta version %d: offer reference %d/%d: the response had %d offers",
				p.GetVersion()+uint64(i), run.GetResponseId(), index, len(so.offers))
		}
		// A Proposal and an Allocation are the same four fields: the
		// delta points at the remembered offer itself instead of a copy
		// (requests are read only, see AllocateRequest).
		d := Delta{Version: p.GetVersion() + uint64(i), At: at, Kind: kind, Allocation: (*Allocation)(&so.offers[index])}
		if len(rs) > 0 {
			d.RefuseSeconds = rs[i]
		} else if kind == Recovered {
			d.RefuseSeconds = refuseAll
		}
		out = append(out, d)
	}
	return out, nil
}
