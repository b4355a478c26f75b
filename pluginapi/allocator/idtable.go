package allocator

import (
	"fmt"
	"math/rand/v2"
	"sync"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
)

// Interned IDs. Every cycle's response names thousands of agents,
// frameworks and roles, each already known to both sides: as strings they
// cost the plugin their bytes on the wire and the host three allocations
// per offer to decode. So the host keeps a dictionary of every ID it has
// sent the plugin, numbers them, and sends each string once
// (IdDictionary in the request: only what was added since the plugin's
// last answer); the plugin answers with the numbers.
//
// It needs no new API version. A host that reads handles announces it
// with the request's ids field; a plugin built before ignores the field
// and answers with strings, and the host then stops sending it. A plugin
// that finds no ids in a request (a host built before) answers with
// strings. The host uses handles in its own requests only once the plugin
// answered with them. Whenever the two sides may disagree (an Init, a
// failed call) the host starts a new epoch and sends the whole dictionary
// again.

// idEncoder numbers IDs: the handle of each string (nil: none).
type idEncoder map[string]uint32

// encode returns id's wire form: its handle when it has one, otherwise
// the string itself.
func (e idEncoder) encode(id string) (string, uint32) {
	if h, ok := e[id]; ok && e != nil {
		return "", h
	}
	return id, 0
}

// idTable is the strings of an epoch, handle h at index h-1 (nil: none).
type idTable []string

// decode returns the ID a (string, handle) pair stands for.
func (t idTable) decode(s string, h uint32, what string) (string, error) {
	if h == 0 {
		return s, nil
	}
	if int(h) > len(t) {
		return "", fmt.Errorf("%s handle %d, but the ID dictionary holds %d", what, h, len(t))
	}
	return t[h-1], nil
}

// hostIDs is the host's dictionary for one plugin process.
type hostIDs struct {
	mu sync.Mutex
	// off: never announce (WireOptions.NoInternedIDs, or the plugin
	// answered a request that announced them with strings).
	off   bool
	epoch uint64
	strs  idTable
	enc   idEncoder
	// sent is how many of strs the plugin holds in this epoch: those a
	// successful response of the epoch acknowledged.
	sent int
	// interns: the plugin answered with handles, so it reads them too.
	interns bool
	// dead are IDs of removed agents and frameworks still numbered; when
	// they are most of the table it is rebuilt without them.
	dead map[string]struct{}
}

// compactAt is how many dead IDs the table tolerates before it is rebuilt
// (and only when they are half of it or more).
const compactAt = 1024

func (h *hostIDs) newEpoch() {
	if h.epoch == 0 {
		// Start anywhere: a plugin must never mistake a new host's
		// dictionary for an earlier one's.
		h.epoch = uint64(rand.Uint32()) << 16
	}
	h.epoch++
	h.sent = 0
}

// reset starts a new epoch with an empty table.
func (h *hostIDs) reset() {
	h.strs, h.enc, h.dead = nil, idEncoder{}, nil
	h.newEpoch()
}

func (h *hostIDs) add(id string) {
	if id == "" {
		return
	}
	if _, ok := h.enc[id]; ok {
		if h.dead != nil {
			delete(h.dead, id) // back again (an agent re-registered)
		}
		return
	}
	h.strs = append(h.strs, id)
	h.enc[id] = uint32(len(h.strs))
}

func (h *hostIDs) died(id string) {
	if _, ok := h.enc[id]; !ok {
		return
	}
	if h.dead == nil {
		h.dead = map[string]struct{}{}
	}
	h.dead[id] = struct{}{}
}

// noteSnapshot starts a new epoch holding snap's IDs.
func (h *hostIDs) noteSnapshot(snap *Snapshot) {
	h.reset()
	if h.off {
		return // nothing to keep for a plugin that does not intern
	}
	for i := range snap.Agents {
		h.add(snap.Agents[i].ID)
	}
	for i := range snap.Frameworks {
		h.noteFramework(&snap.Frameworks[i])
	}
	for i := range snap.Roles {
		h.add(snap.Roles[i].Name)
	}
	for i := range snap.Allocations {
		h.noteAllocation(&snap.Allocations[i])
	}
}

func (h *hostIDs) noteFramework(f *Framework) {
	h.add(f.ID)
	for _, r := range f.Roles {
		h.add(r)
	}
}

func (h *hostIDs) noteAllocation(a *Allocation) {
	h.add(a.FrameworkID)
	h.add(a.Role)
	h.add(a.AgentID)
}

// noteRemovals takes note of the agents and frameworks deltas remove,
// and rebuilds the table without the removed IDs once they are most of
// it. It runs before any of the request is encoded: a rebuild starts a
// new epoch, whose handles the whole request must use.
func (h *hostIDs) noteRemovals(deltas []Delta) {
	if h.off {
		return
	}
	for i := range deltas {
		switch d := &deltas[i]; d.Kind {
		case AgentRemoved:
			h.died(d.AgentID)
		case FrameworkRemoved:
			h.died(d.FrameworkID)
		}
	}
	if len(h.dead) >= compactAt && 2*len(h.dead) >= len(h.strs) {
		live := make(idTable, 0, len(h.strs)-len(h.dead))
		for _, s := range h.strs {
			if _, gone := h.dead[s]; !gone {
				live = append(live, s)
			}
		}
		h.reset()
		for _, s := range live {
			h.add(s)
		}
	}
}

// note adds the IDs d names, before d is encoded, so that they can go as
// handles in the same request. Deltas sent as offer references need none:
// the plugin named their IDs itself (offerref.go), and noting thousands
// of them per cycle was a fifth of the host's part of a cycle.
func (h *hostIDs) note(d *Delta) {
	if h.off {
		return
	}
	switch {
	case d.Agent != nil:
		h.add(d.Agent.ID)
	case d.Framework != nil:
		h.noteFramework(d.Framework)
	case d.Role != nil:
		h.add(d.Role.Name)
	case d.Allocation != nil:
		h.noteAllocation(d.Allocation)
	}
}

// announce returns the request's dictionary: the strings the plugin does
// not hold yet in this epoch (nil when interning is off).
func (h *hostIDs) announce() *allocatorpb.IdDictionary {
	if h.off {
		return nil
	}
	return &allocatorpb.IdDictionary{Epoch: h.epoch, Base: uint32(h.sent), Added: h.strs[h.sent:]}
}

// encoder returns what the request's own IDs may be encoded with: the
// dictionary once the plugin showed it reads handles, else nil.
func (h *hostIDs) encoder() idEncoder {
	if h.off || !h.interns {
		return nil
	}
	return h.enc
}

// answered takes note of a response to a request that carried dict (nil:
// none) and returns the table its handles resolve in.
func (h *hostIDs) answered(dict *allocatorpb.IdDictionary, epoch uint64) (idTable, error) {
	switch {
	case epoch == 0:
		if dict != nil && !h.interns {
			h.off = true // a plugin that does not intern
		}
		return nil, nil
	case dict == nil || epoch != dict.Epoch:
		return nil, fmt.Errorf("response uses ID dictionary epoch %d, the request sent %v", epoch, dict.GetEpoch())
	}
	h.interns = true
	n := int(dict.Base) + len(dict.Added)
	h.sent = n
	return h.strs[:n], nil
}

// pluginIDs is the plugin side's copy of the host's dictionary.
type pluginIDs struct {
	mu    sync.Mutex
	off   bool // WireOptions.NoInternedIDs: behave as a plugin built before
	epoch uint64
	strs  idTable
	enc   idEncoder
}

// apply adds a request's dictionary; a request of a new epoch starts
// over. It fails when the request does not follow what this side holds.
func (p *pluginIDs) apply(d *allocatorpb.IdDictionary) error {
	if d.GetEpoch() == 0 {
		return fmt.Errorf("ID dictionary with epoch 0")
	}
	if d.GetEpoch() != p.epoch {
		if d.GetBase() != 0 {
			return fmt.Errorf("ID dictionary epoch %d starts at %d; this plugin does not hold that epoch", d.GetEpoch(), d.GetBase())
		}
		p.epoch, p.strs, p.enc = d.GetEpoch(), nil, idEncoder{}
	} else if int(d.GetBase()) != len(p.strs) {
		return fmt.Errorf("ID dictionary epoch %d adds at %d, this plugin holds %d", d.GetEpoch(), d.GetBase(), len(p.strs))
	}
	for _, s := range d.GetAdded() {
		p.strs = append(p.strs, s)
		if _, dup := p.enc[s]; !dup {
			p.enc[s] = uint32(len(p.strs))
		}
	}
	return nil
}
