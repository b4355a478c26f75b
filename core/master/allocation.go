package master

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// faultFraction: a response in which more than this share of proposals is
// invalid counts as a plugin fault.
const faultFraction = 0.5

// allocState is the allocation loop's memory of what the plugin holds.
type allocState struct {
	generation uint64 // plugin process generation last Init'ed
	inited     bool
	version    uint64 // version the plugin acknowledged
	faults     int
}

func (m *Master) allocationLoop(ctx context.Context) {
	ticker := time.NewTicker(m.cfg.AllocationInterval)
	defer ticker.Stop()
	var st allocState
	for {
		trigger := allocator.TriggerTimer
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case trigger = <-m.trigger:
		}
		m.runCycle(ctx, &st, trigger)
	}
}

// runCycle makes one Allocate call and commits the valid proposals.
func (m *Master) runCycle(ctx context.Context, st *allocState, trigger allocator.Trigger) {
	if m.alloc == nil {
		return
	}
	plugin, info, err := m.alloc.Current()
	if err != nil {
		m.log.Warn("allocator plugin unavailable; skipping cycle", "error", err)
		return
	}
	if !st.inited || st.generation != info.Generation {
		if err := m.initPlugin(ctx, plugin, st); err != nil {
			m.log.Error("allocator Init failed", "plugin", info.Name, "error", err)
			return
		}
		st.generation = info.Generation
	}

	m.mu.Lock()
	deltas, ok := m.deltas.since(st.version)
	target := m.deltas.version
	now := m.logicalNow()
	m.mu.Unlock()
	if !ok {
		if err := m.initPlugin(ctx, plugin, st); err != nil {
			m.log.Error("allocator re-Init failed", "plugin", info.Name, "error", err)
			return
		}
		m.mu.Lock()
		deltas, _ = m.deltas.since(st.version)
		target = m.deltas.version
		m.mu.Unlock()
	}

	req := &allocator.AllocateRequest{
		BaseVersion:   st.version,
		Deltas:        deltas,
		TargetVersion: target,
		Now:           now,
		Trigger:       trigger,
		RevokeAfter:   allocator.LogicalTime(m.cfg.RevokeAfter / time.Millisecond),
	}
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.AllocatorTimeout)
	began := time.Now()
	resp, err := plugin.Allocate(callCtx, req)
	cancel()
	m.metrics.pluginCall.WithLabelValues("allocate").Observe(time.Since(began).Seconds())
	if err != nil {
		var gap *allocator.VersionGapError
		if errors.As(err, &gap) {
			m.log.Info("allocator lost its state; re-initialising", "have", gap.Have, "want", gap.Want)
			st.inited = false
			m.requestAllocation(allocator.TriggerEvent)
			return
		}
		m.metrics.pluginErrors.WithLabelValues("allocate").Inc()
		// The plugin may or may not have applied the deltas; only a fresh
		// Init makes its state certain again.
		st.inited = false
		m.log.Warn("allocator call failed; the cycle is abandoned", "error", err, "timeout", m.cfg.AllocatorTimeout)
		return
	}
	if resp.AppliedVersion != target {
		st.inited = false
		m.log.Warn("allocator acknowledged the wrong version; re-initialising", "applied", resp.AppliedVersion, "target", target)
		return
	}
	st.version = target
	m.mu.Lock()
	m.deltas.ack(target)
	made, invalid := m.commitProposalsLocked(resp.Offers)
	// Revocations are judged after this cycle's offers are committed, on
	// the books as they now stand.
	m.handleRevocationsLocked(resp.Revocations)
	metrics := make(map[string]float64, len(resp.Metrics))
	for k, v := range resp.Metrics {
		metrics[k] = v
	}
	m.pluginMetrics = metrics
	m.mu.Unlock()
	m.metrics.allocationRun.Observe(time.Since(began).Seconds())
	if n := len(resp.Offers); n > 0 && float64(invalid)/float64(n) > faultFraction {
		st.faults++
		m.metrics.pluginErrors.WithLabelValues("invalid_proposals").Inc()
		m.log.Warn("allocator proposed mostly invalid offers", "invalid", invalid, "proposed", n, "faults", st.faults)
	}
	if made > 0 {
		m.log.Trace("allocation cycle", "offers", made, "invalid", invalid, "deltas", len(deltas))
	}
}

// initPlugin streams the current snapshot to the plugin.
func (m *Master) initPlugin(ctx context.Context, plugin allocator.Allocator, st *allocState) error {
	m.mu.Lock()
	snap := m.snapshotLocked()
	m.deltas.reset()
	m.mu.Unlock()
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.AllocatorTimeout)
	defer cancel()
	began := time.Now()
	v, err := plugin.Init(callCtx, snap)
	m.metrics.pluginCall.WithLabelValues("init").Observe(time.Since(began).Seconds())
	if err != nil {
		m.metrics.pluginErrors.WithLabelValues("init").Inc()
		st.inited = false
		return err
	}
	if v != snap.Version {
		st.inited = false
		return errors.New("allocator Init acknowledged another version than it was sent")
	}
	st.inited = true
	st.version = snap.Version
	return nil
}

// snapshotLocked is the allocator-relevant state now. Outstanding offers
// count as allocated, so a new plugin never double-offers them.
func (m *Master) snapshotLocked() *allocator.Snapshot {
	snap := &allocator.Snapshot{Version: m.deltas.version, Now: m.logicalNow()}
	for _, id := range sortedAgentIDs(m.agents) {
		snap.Agents = append(snap.Agents, *agentView(m.agents[id]))
	}
	fids := make([]string, 0, len(m.frameworks))
	for id := range m.frameworks {
		fids = append(fids, id)
	}
	sort.Strings(fids)
	type key struct{ f, r, a string }
	alloc := map[key]resources.Resources{}
	for _, id := range fids {
		f := m.frameworks[id]
		snap.Frameworks = append(snap.Frameworks, *frameworkView(f))
		for _, t := range f.tasks {
			k := key{t.frameworkID, t.role, t.agentID}
			alloc[k] = alloc[k].Add(t.resources)
		}
		for _, o := range f.offers {
			k := key{o.frameworkID, o.role, o.agentID}
			alloc[k] = alloc[k].Add(o.resources)
		}
		snap.Filters = append(snap.Filters, activeFilters(slices.Clone(f.filters), snap.Now)...)
		for _, r := range sortedDemandRoles(f) {
			snap.Demands = append(snap.Demands, allocator.Demand{FrameworkID: id, Role: r, Shapes: f.demands[r]})
		}
	}
	keys := make([]key, 0, len(alloc))
	for k := range alloc {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.f != b.f {
			return a.f < b.f
		}
		if a.r != b.r {
			return a.r < b.r
		}
		return a.a < b.a
	})
	for _, k := range keys {
		snap.Allocations = append(snap.Allocations, allocator.Allocation{FrameworkID: k.f, Role: k.r, AgentID: k.a, Resources: alloc[k]})
	}
	for _, r := range sortedMapKeys(m.roles) {
		snap.Roles = append(snap.Roles, *roleFacts(r, m.roles[r]))
	}
	for _, t := range m.liveTasksLocked() {
		snap.Tasks = append(snap.Tasks, *taskFacts(t))
	}
	return snap
}

// commitProposalsLocked validates every proposal against the ledger and
// turns the valid ones into offers. It returns how many offers were made
// and how many proposals were invalid.
func (m *Master) commitProposalsLocked(props []allocator.Proposal) (made, invalid int) {
	byFramework := map[string][]*corralpb.Offer{}
	for _, p := range props {
		if reason := m.validateProposalLocked(p); reason != "" {
			invalid++
			m.log.Debug("dropping invalid allocator proposal", "framework", p.FrameworkID, "agent", p.AgentID,
				"resources", p.Resources.String(), "reason", reason)
			continue
		}
		a := m.agents[p.AgentID]
		f := m.frameworks[p.FrameworkID]
		o := &offerEntry{
			id: newID("offer"), frameworkID: p.FrameworkID, role: p.Role, agentID: p.AgentID,
			resources: p.Resources, createdAt: m.now(),
		}
		a.used = a.used.Add(p.Resources)
		m.offers[o.id] = o
		f.offers[o.id] = o
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.Allocated, Allocation: &allocator.Allocation{
			FrameworkID: p.FrameworkID, Role: p.Role, AgentID: p.AgentID, Resources: p.Resources}})
		byFramework[p.FrameworkID] = append(byFramework[p.FrameworkID], &corralpb.Offer{
			Id: o.id, FrameworkId: o.frameworkID, AgentId: o.agentID, Hostname: a.info.Hostname,
			Resources: o.resources.ToProto(), Attributes: a.info.Attributes, Role: o.role, AgentUrl: a.info.Url,
		})
		made++
	}
	for fid, offers := range byFramework {
		m.metrics.offersMade.Add(float64(len(offers)))
		m.frameworks[fid].sub.send(&corralpb.Event{Event: &corralpb.Event_Offers_{Offers: &corralpb.Event_Offers{Offers: offers}}})
	}
	return made, invalid
}

// validateProposalLocked says why a proposal cannot become an offer, or "".
func (m *Master) validateProposalLocked(p allocator.Proposal) string {
	a := m.agents[p.AgentID]
	switch {
	case a == nil:
		return "unknown agent"
	case !a.connected:
		return "agent is disconnected"
	}
	f := m.frameworks[p.FrameworkID]
	switch {
	case f == nil:
		return "unknown framework"
	case !f.connected || f.sub == nil:
		return "framework is not connected"
	case !f.roles[p.Role]:
		return "framework is not subscribed to role " + p.Role
	case f.suppressed[p.Role]:
		return "framework suppressed offers for role " + p.Role
	case p.Resources.IsEmpty():
		return "empty offer"
	}
	if !a.total.Subtract(a.used).Contains(p.Resources) {
		return "resources exceed what is available on the agent"
	}
	return ""
}

func sortedAgentIDs(m map[string]*agentEntry) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func sortedDemandRoles(f *frameworkEntry) []string {
	out := make([]string, 0, len(f.demands))
	for r := range f.demands {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}
