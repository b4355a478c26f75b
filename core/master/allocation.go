package master

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// faultFraction: a response in which more than this share of proposals is
// invalid counts as a plugin fault.
const faultFraction = 0.5

// allocState is the allocation loop's memory of what one plugin holds.
type allocState struct {
	generation uint64 // plugin process generation last Init'ed
	inited     bool
	version    uint64 // version the plugin acknowledged
	faults     int
}

func (m *Master) allocationLoop(ctx context.Context) {
	ticker := time.NewTicker(m.cfg.AllocationInterval)
	defer ticker.Stop()
	for {
		trigger := allocator.TriggerTimer
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case trigger = <-m.trigger:
		}
		m.mu.Lock()
		recovering := m.recoveringLocked(m.now())
		m.mu.Unlock()
		if recovering {
			continue
		}
		m.runCycle(ctx, trigger)
	}
}

// pluginCall is one plugin's part in a cycle.
type pluginCall struct {
	p      *slotPlugin
	plugin allocator.Allocator
	info   PluginInfo
	req    *allocator.AllocateRequest
	resp   *allocator.AllocateResponse
	err    error
	took   time.Duration
	// proposed and invalid count the response's proposals and those the
	// books refused (for a shadow: would have refused).
	proposed, invalid int
}

// runCycle makes one Allocate call on the active plugin, and on a
// shadowing candidate beside it, and commits the active plugin's valid
// proposals.
func (m *Master) runCycle(ctx context.Context, trigger allocator.Trigger) {
	act, cand := m.advanceSlot(ctx)
	if act == nil {
		return
	}
	calls := []*pluginCall{{p: act}}
	if cand != nil && cand.shadowing() {
		calls = append(calls, &pluginCall{p: cand.slotPlugin})
	}
	for _, c := range calls {
		c.plugin, c.info, c.err = m.readyPlugin(ctx, c.p)
	}
	if calls[0].err != nil {
		m.log.Warn("allocator plugin unavailable; skipping cycle", "allocator", act.choice.Name, "error", calls[0].err)
		m.afterCycle(ctx, calls, cand)
		return
	}

	m.mu.Lock()
	now := m.logicalNow()
	for _, c := range calls {
		if c.err == nil {
			c.req = m.allocateRequestLocked(c.p, now, trigger)
		}
	}
	m.mu.Unlock()
	for _, c := range calls {
		if c.err == nil && c.req == nil {
			// The log no longer holds this plugin's deltas: Init again.
			if c.err = m.initPlugin(ctx, c.plugin, c.p); c.err == nil {
				m.mu.Lock()
				c.req = m.allocateRequestLocked(c.p, now, trigger)
				m.mu.Unlock()
			}
		}
	}

	var wg sync.WaitGroup
	for _, c := range calls {
		if c.err != nil || c.req == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			callCtx, cancel := context.WithTimeout(ctx, m.cfg.AllocatorTimeout)
			began := time.Now()
			c.resp, c.err = c.plugin.Allocate(callCtx, c.req)
			c.took = time.Since(began)
			cancel()
			m.metrics.pluginCall.WithLabelValues("allocator", c.p.choice.Name, "allocate").Observe(c.took.Seconds())
			c.p.handle.ReportCall(c.err)
			if c.err == nil && c.resp.AppliedVersion != c.req.TargetVersion {
				c.err = fmt.Errorf("acknowledged version %d, want %d", c.resp.AppliedVersion, c.req.TargetVersion)
				c.resp = nil
			}
		}()
	}
	wg.Wait()
	for _, c := range calls {
		m.noteCallError(c)
	}

	a := calls[0]
	m.mu.Lock()
	if len(calls) > 1 && calls[1].err == nil && a.err == nil {
		m.compareShadowLocked(cand, a.resp.Offers, calls[1])
	}
	if a.err == nil {
		a.p.st.version = a.req.TargetVersion
	}
	if len(calls) > 1 && calls[1].err == nil {
		calls[1].p.st.version = calls[1].req.TargetVersion
	}
	m.ackDeltasLocked(calls)
	var made, invalid, stale int
	if a.err == nil {
		made, invalid, stale = m.commitProposalsLocked(a.resp.Offers, a.req.TargetVersion)
		a.proposed, a.invalid = len(a.resp.Offers), invalid
		// Revocations are judged after this cycle's offers are committed,
		// on the books as they now stand.
		m.handleRevocationsLocked(a.resp.Revocations)
		metrics := make(map[string]float64, len(a.resp.Metrics))
		for k, v := range a.resp.Metrics {
			metrics[k] = v
		}
		m.pluginMetrics = metrics
	}
	m.mu.Unlock()
	if a.err == nil {
		m.metrics.allocationRun.Observe(a.took.Seconds())
		if stale > 0 {
			m.metrics.staleProposals.Add(float64(stale))
		}
		// Judged on the proposals the books had not overtaken.
		if n := len(a.resp.Offers) - stale; n > 0 && float64(invalid)/float64(n) > faultFraction {
			a.p.st.faults++
			m.metrics.pluginErrors.WithLabelValues("invalid_proposals").Inc()
			m.log.Warn("allocator proposed mostly invalid offers", "allocator", act.choice.Name, "invalid", invalid,
				"proposed", n, "faults", a.p.st.faults)
		}
		if made > 0 {
			m.log.Trace("allocation cycle", "offers", made, "invalid", invalid, "deltas", len(a.req.Deltas))
		}
	}
	m.afterCycle(ctx, calls, cand)
}

// allocateRequestLocked is p's request for this cycle, or nil when the
// delta log no longer holds what p is missing.
func (m *Master) allocateRequestLocked(p *slotPlugin, now allocator.LogicalTime, trigger allocator.Trigger) *allocator.AllocateRequest {
	deltas, ok := m.deltas.since(p.st.version)
	if !ok {
		return nil
	}
	return &allocator.AllocateRequest{
		BaseVersion:   p.st.version,
		Deltas:        deltas,
		TargetVersion: m.deltas.version,
		Now:           now,
		Trigger:       trigger,
		RevokeAfter:   allocator.LogicalTime(m.cfg.RevokeAfter / time.Millisecond),
	}
}

// ackDeltasLocked drops the deltas every initialised plugin now holds.
func (m *Master) ackDeltasLocked(calls []*pluginCall) {
	var low uint64
	first := true
	for _, c := range calls {
		if !c.p.st.inited {
			continue // it will Init from a snapshot
		}
		if first || c.p.st.version < low {
			low, first = c.p.st.version, false
		}
	}
	if !first {
		m.deltas.ack(low)
	}
}

// noteCallError logs a failed Allocate and makes the plugin's state
// certain again: after an error the plugin may or may not have applied
// the deltas, so only a fresh Init will do.
func (m *Master) noteCallError(c *pluginCall) {
	if c.err == nil || c.req == nil {
		return
	}
	var gap *allocator.VersionGapError
	switch {
	case errors.As(c.err, &gap):
		m.log.Info("allocator lost its state; re-initialising", "allocator", c.p.choice.Name, "have", gap.Have, "want", gap.Want)
		m.requestAllocation(allocator.TriggerEvent)
	case pluginhost.IsDeadline(c.err):
		m.metrics.pluginErrors.WithLabelValues("allocate").Inc()
		m.metrics.allocatorDeadlineMisses.Inc()
		m.log.Warn("allocator missed its deadline; the cycle is abandoned", "allocator", c.p.choice.Name,
			"timeout", m.cfg.AllocatorTimeout)
	default:
		m.metrics.pluginErrors.WithLabelValues("allocate").Inc()
		m.log.Warn("allocator call failed; the cycle is abandoned", "allocator", c.p.choice.Name, "error", c.err)
	}
	c.p.st.inited = false
}

// readyPlugin returns p's live plugin, Init'ed from a snapshot if it is
// new (a new process generation) or its state is uncertain.
func (m *Master) readyPlugin(ctx context.Context, p *slotPlugin) (allocator.Allocator, PluginInfo, error) {
	plugin, info, err := p.handle.Current()
	if err != nil {
		return nil, info, err
	}
	if !p.st.inited || p.st.generation != info.Generation {
		if err := m.initPlugin(ctx, plugin, p); err != nil {
			m.log.Error("allocator Init failed", "allocator", p.choice.Name, "error", err)
			return nil, info, fmt.Errorf("Init: %w", err)
		}
		p.st.generation = info.Generation
	}
	return plugin, info, nil
}

// initPlugin streams the current snapshot to the plugin.
func (m *Master) initPlugin(ctx context.Context, plugin allocator.Allocator, p *slotPlugin) error {
	m.mu.Lock()
	snap := m.snapshotLocked()
	if m.deltas.overflow {
		// Nobody can replay from an overflowed log; whoever is behind
		// will Init too.
		m.deltas.reset()
	}
	m.mu.Unlock()
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.AllocatorInitTimeout)
	defer cancel()
	began := time.Now()
	v, err := plugin.Init(callCtx, snap)
	m.metrics.pluginCall.WithLabelValues("allocator", p.choice.Name, "init").Observe(time.Since(began).Seconds())
	p.handle.ReportCall(err)
	if err != nil {
		m.metrics.pluginErrors.WithLabelValues("init").Inc()
		if pluginhost.IsDeadline(err) {
			m.metrics.allocatorDeadlineMisses.Inc()
			m.slot.mu.Lock()
			p.misses++
			m.slot.mu.Unlock()
		}
		p.st.inited = false
		return err
	}
	if v != snap.Version {
		p.st.inited = false
		return errors.New("allocator Init acknowledged another version than it was sent")
	}
	p.st.inited = true
	p.st.version = snap.Version
	return nil
}

// snapshotLocked is the allocator-relevant state now. Outstanding offers
// count as allocated, so a new plugin never double-offers them.
func (m *Master) snapshotLocked() *allocator.Snapshot {
	snap := &allocator.Snapshot{Version: m.deltas.version, Now: m.logicalNow()}
	// Presized: a leader that just took over snapshots the whole cluster
	// (a hundred thousand tasks) while holding the books' lock.
	snap.Agents = make([]allocator.Agent, 0, len(m.agents))
	for _, id := range sortedAgentIDs(m.agents) {
		snap.Agents = append(snap.Agents, *agentView(m.agents[id]))
	}
	fids := make([]string, 0, len(m.frameworks))
	for id := range m.frameworks {
		fids = append(fids, id)
	}
	sort.Strings(fids)
	type key struct{ f, r, a string }
	// Summed in place (resources.Sum): folding Add allocated once per
	// task, a hundred thousand times after a failover.
	alloc := map[key]*resources.Sum{}
	add := func(k key, r resources.Resources) {
		s := alloc[k]
		if s == nil {
			s = &resources.Sum{}
			alloc[k] = s
		}
		s.Add(r)
	}
	for _, id := range fids {
		f := m.frameworks[id]
		snap.Frameworks = append(snap.Frameworks, *frameworkView(f))
		for _, t := range f.tasks {
			add(key{t.frameworkID, t.role, t.agentID}, t.resources)
		}
		for _, e := range f.executors {
			add(key{id, e.role, e.agentID}, e.resources)
		}
		for _, o := range f.offers {
			add(key{o.frameworkID, o.role, o.agentID}, o.resources)
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
		snap.Allocations = append(snap.Allocations, allocator.Allocation{FrameworkID: k.f, Role: k.r, AgentID: k.a, Resources: alloc[k].Resources()})
	}
	for _, r := range sortedMapKeys(m.roles) {
		snap.Roles = append(snap.Roles, *roleFacts(r, m.roles[r]))
	}
	live := m.liveTasksLocked()
	snap.Tasks = make([]allocator.Task, 0, len(live))
	for _, t := range live {
		snap.Tasks = append(snap.Tasks, *taskFacts(t))
	}
	return snap
}

// commitProposalsLocked validates every proposal against the ledger and
// turns the valid ones into offers. It returns how many offers were made,
// how many proposals were invalid, and how many of the dropped ones were
// only stale: their framework or agent changed after asOf, the delta
// version the plugin's view was at (see overtakenLocked).
func (m *Master) commitProposalsLocked(props []allocator.Proposal, asOf uint64) (made, invalid, stale int) {
	byFramework := map[string][]*corralpb.Offer{}
	for _, p := range props {
		if reason := m.validateProposalLocked(p, resources.Resources{}); reason != "" {
			if m.overtakenLocked(p, asOf) {
				// The framework suppressed or left, or the agent left,
				// while the plugin computed: the plugin's view was right.
				stale++
				m.log.Debug("dropping an allocator proposal the books overtook", "framework_id", p.FrameworkID,
					"agent_id", p.AgentID, "reason", reason)
				continue
			}
			invalid++
			m.log.Debug("dropping invalid allocator proposal", "framework_id", p.FrameworkID, "agent_id", p.AgentID,
				"resources", p.Resources.String(), "reason", reason)
			continue
		}
		a := m.agents[p.AgentID]
		f := m.frameworks[p.FrameworkID]
		o := &offerEntry{
			id: newID("offer"), frameworkID: p.FrameworkID, role: p.Role, agentID: p.AgentID,
			resources: p.Resources, createdAt: m.now(),
		}
		if d := o.createdAt.Add(m.cfg.OfferTimeout); d.Before(m.offerScanAt) {
			m.offerScanAt = d
		}
		m.addAgentUsedLocked(a, p.Resources, 1)
		m.offers[o.id] = o
		f.offers[o.id] = o
		m.tally.addRole(o.role, o.resources, 1)
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.Allocated, Allocation: &allocator.Allocation{
			FrameworkID: p.FrameworkID, Role: p.Role, AgentID: p.AgentID, Resources: p.Resources}})
		byFramework[p.FrameworkID] = append(byFramework[p.FrameworkID], &corralpb.Offer{
			Id: o.id, FrameworkId: o.frameworkID, AgentId: o.agentID, Hostname: a.info.Hostname,
			Resources: o.resources.ToProto(), Attributes: a.info.Attributes, Role: o.role, AgentUrl: a.info.Url,
		})
		made++
	}
	for fid, offers := range byFramework {
		for _, o := range offers {
			m.metrics.offersMade.WithLabelValues(o.Role).Inc()
		}
		m.frameworks[fid].sub.send(&corralpb.Event{Event: &corralpb.Event_Offers_{Offers: &corralpb.Event_Offers{Offers: offers}}})
	}
	return made, invalid, stale
}

// overtakenLocked: p's framework or agent stopped taking offers as it was
// after version asOf, the view the plugin computed p on. Such a proposal
// is dropped like an invalid one but is no fault of the plugin: a
// framework that suppresses right after taking an offer (the bench-scale
// probe, once a second) made the next cycle, computed meanwhile, look
// like a plugin proposing offers to a suppressed framework.
func (m *Master) overtakenLocked(p allocator.Proposal, asOf uint64) bool {
	if f := m.frameworks[p.FrameworkID]; f != nil && f.closedAt > asOf {
		return true
	}
	a := m.agents[p.AgentID]
	return a != nil && a.closedAt > asOf
}

// validateProposalLocked says why a proposal cannot become an offer, or "".
// taken is what earlier proposals of the same response would take on the
// agent (a dry run commits nothing).
func (m *Master) validateProposalLocked(p allocator.Proposal, taken resources.Resources) string {
	a := m.agents[p.AgentID]
	switch {
	case a == nil:
		return "unknown agent"
	case !a.connected:
		return "agent is disconnected"
	case a.drain != nil:
		return "agent is draining"
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
	if !a.total.Subtract(a.used).Subtract(taken).Contains(p.Resources) {
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
