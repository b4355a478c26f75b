package master

import (
	"context"
	"fmt"

	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/allocator"
)

// This file is the allocation loop's side of the allocator slot: the
// decisions operators asked for, and those the slot takes by itself
// (rollback), carried out at cycle boundaries.

// advanceSlot moves a candidate along before a cycle: drops it when the
// operator aborted, Inits it from a snapshot in which outstanding offers
// count as used, and cuts over when its shadow cycles are done or the
// operator promoted it. It returns the plugin to run this cycle and the
// candidate, if any.
func (m *Master) advanceSlot(ctx context.Context) (*slotPlugin, *candidate) {
	s := &m.slot
	s.mu.Lock()
	cand := s.cand
	abort := cand != nil && cand.abort
	s.mu.Unlock()
	if abort {
		m.endCandidate(cand, SwapRecord{Event: "abort", Detail: "aborted by the operator"})
		cand = nil
	}
	if cand != nil && !cand.st.inited {
		plugin, info, err := cand.handle.Current()
		if err == nil {
			err = m.initPlugin(ctx, plugin, cand.slotPlugin)
			cand.st.generation = info.Generation
		}
		if err != nil {
			m.endCandidate(cand, SwapRecord{Event: "rollback", Reason: reasonInit, Detail: fmt.Sprintf("Init: %v", err)})
			cand = nil
		} else if cand.shadowing() {
			m.log.Info("allocator candidate initialised; shadowing", "candidate", cand.label(), "cycles", cand.shadowLeft,
				"manual", cand.req.Manual)
			m.metrics.resetShadow()
		}
	}
	if cand != nil && cand.st.inited && (cand.promote || (!cand.req.Manual && cand.shadowLeft <= 0)) {
		m.cutOver(cand)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active, s.cand
}

// cutOver makes the candidate active. The replaced plugin keeps running
// through the new one's probation, so a rollback is immediate; offers stay
// in the master's ledger throughout, so none is lost or made twice.
func (m *Master) cutOver(c *candidate) {
	s := &m.slot
	s.mu.Lock()
	old := s.active
	stale := s.previous
	s.previous, s.prevStored = old, s.stored
	s.active = c.slotPlugin
	c.misses, c.window = 0, nil
	s.probation = m.cfg.RollbackCycles
	s.cand = nil
	s.generation++
	superseded := s.pending
	s.pending = c
	choice := c.choice
	s.stored = &choice
	from := ""
	if old != nil {
		from = old.label()
	}
	s.record(SwapRecord{At: m.now(), Event: "swap", From: from, To: c.label(), Source: c.req.Source,
		Shadow: c.req.Shadow - max(c.shadowLeft, 0), Generation: s.generation})
	gen := s.generation
	s.mu.Unlock()
	if stale != nil {
		m.stopAsync(stale.handle)
	}
	if superseded != nil {
		// Replaced during its probation: it did cut over.
		r := superseded.result
		if r.Event == "" {
			r = SwapRecord{At: m.now(), Event: "swap", To: superseded.label(), Detail: "replaced before its first cycle"}
		}
		superseded.decide(r)
	}
	m.metrics.allocatorSwaps.Inc()
	m.metrics.allocatorGeneration.Set(float64(gen))
	m.log.Info("allocator swapped", "from", from, "to", c.label(), "generation", gen)
	m.requestPersist()
}

// endCandidate drops the candidate with r as its history record.
func (m *Master) endCandidate(c *candidate, r SwapRecord) {
	s := &m.slot
	s.mu.Lock()
	if s.cand == c {
		s.cand = nil
	}
	r.At, r.To, r.Source, r.Generation = m.now(), c.label(), c.req.Source, s.generation
	if s.active != nil {
		r.From = s.active.label()
	}
	s.record(r)
	s.mu.Unlock()
	m.stopAsync(c.handle)
	c.decide(r)
	if r.Event == "rollback" {
		m.metrics.allocatorRollbacks.WithLabelValues(r.Reason).Inc()
		m.log.Warn("allocator candidate rolled back; the active allocator stays", "candidate", r.To,
			"active", r.From, "reason", r.Reason, "detail", r.Detail)
	} else {
		m.log.Info("allocator candidate dropped", "candidate", r.To, "event", r.Event, "detail", r.Detail)
	}
}

// rollbackActive puts the previous plugin back after the active one failed
// its probation.
func (m *Master) rollbackActive(reason, detail string) {
	s := &m.slot
	s.mu.Lock()
	bad, prev := s.active, s.previous
	if prev == nil {
		s.mu.Unlock()
		return
	}
	s.active, s.previous, s.probation = prev, nil, 0
	prev.st.inited = false // its books are stale: Init again
	prev.misses, prev.window = 0, nil
	s.stored, s.prevStored = s.prevStored, nil
	s.generation++
	rec := SwapRecord{At: m.now(), Event: "rollback", From: bad.label(), To: prev.label(), Reason: reason,
		Detail: detail, Generation: s.generation}
	s.record(rec)
	pending := s.pending
	s.pending = nil
	gen := s.generation
	s.mu.Unlock()
	m.stopAsync(bad.handle)
	if pending != nil {
		pending.decide(rec)
	}
	m.metrics.allocatorRollbacks.WithLabelValues(reason).Inc()
	m.metrics.allocatorGeneration.Set(float64(gen))
	m.log.Warn("allocator rolled back", "from", bad.label(), "to", prev.label(), "reason", reason, "detail", detail)
	m.requestPersist()
	m.requestAllocation(allocator.TriggerEvent)
}

// afterCycle does the slot's bookkeeping once a cycle's calls are done:
// cycle statistics, deadline misses, the invalid-proposal window,
// probation and rollback, the first-cycle latency of a swap.
func (m *Master) afterCycle(_ context.Context, calls []*pluginCall, cand *candidate) {
	s := &m.slot
	k := m.cfg.RollbackCycles
	var rollback, dropReason, dropDetail, rollbackDetail string
	s.mu.Lock()
	for i, c := range calls {
		p := c.p
		switch {
		case c.err == nil && c.resp != nil:
			p.misses = 0
			p.cycles++
			p.lastCycle, p.lastCycleAt = c.took, m.now()
			p.metrics = c.resp.Metrics
			p.window = append(p.window, proposalCount{c.proposed, c.invalid})
			if len(p.window) > k {
				p.window = p.window[len(p.window)-k:]
			}
		case pluginhost.IsDeadline(c.err):
			p.misses++
		}
		fresh := (i == 0 && s.previous != nil) || i == 1
		if !fresh {
			continue
		}
		reason, detail := probationFault(p, k)
		if reason == "" {
			continue
		}
		if i == 0 {
			rollback, rollbackDetail = reason, detail
		} else {
			dropReason, dropDetail = reason, detail
		}
	}
	a := calls[0]
	var finished *candidate
	var stop *slotPlugin
	if a.err == nil && a.resp != nil && rollback == "" {
		if c := s.pending; c != nil && c.slotPlugin == a.p && c.result.Event == "" {
			// The swap's first cycle: its latency. The swap is decided
			// when the probation passes.
			lat := m.now().Sub(c.requested)
			for i := len(s.history) - 1; i >= 0; i-- {
				if s.history[i].Event == "swap" && s.history[i].Generation == s.generation {
					s.history[i].LatencyMS = float64(lat.Microseconds()) / 1000
					s.history[i].StartMS = float64(c.started.Microseconds()) / 1000
					c.result = s.history[i]
					break
				}
			}
			m.metrics.allocatorSwapLatency.Observe(lat.Seconds())
		}
		if s.previous != nil {
			s.probation--
			if s.probation <= 0 {
				stop, s.previous, s.prevStored = s.previous, nil, nil
				finished, s.pending = s.pending, nil
			}
		}
	}
	if cand != nil && len(calls) > 1 && calls[1].err == nil && cand.shadowLeft > 0 {
		cand.shadowLeft--
		if cand.shadowLeft == 0 {
			m.requestAllocation(allocator.TriggerEvent) // cut over at the next boundary, now
		}
	}
	s.mu.Unlock()
	if finished != nil {
		close(finished.done) // result set at its first cycle
	}
	if stop != nil {
		m.log.Debug("allocator probation passed; stopping the replaced plugin", "allocator", a.p.choice.Name,
			"replaced", stop.choice.Name)
		m.stopAsync(stop.handle)
	}
	if rollback != "" {
		m.rollbackActive(rollback, rollbackDetail)
	}
	if dropReason != "" && cand != nil {
		m.endCandidate(cand, SwapRecord{Event: "rollback", Reason: dropReason, Detail: dropDetail})
	}
}

// probationFault says why a fresh plugin must go: k deadline misses in a
// row, or more than half of its proposals refused over its last k cycles.
func probationFault(p *slotPlugin, k int) (reason, detail string) {
	if p.misses >= k {
		return reasonTimeout, fmt.Sprintf("missed its deadline %d times in a row", p.misses)
	}
	if len(p.window) < k {
		return "", ""
	}
	var proposed, invalid int
	for _, w := range p.window {
		proposed += w.proposed
		invalid += w.invalid
	}
	if proposed > 0 && float64(invalid)/float64(proposed) > faultFraction {
		return reasonInvalid, fmt.Sprintf("%d of its %d proposals in %d cycles were invalid", invalid, proposed, k)
	}
	return "", ""
}

// stopAsync stops a plugin the slot no longer uses without holding up the
// allocation loop (a graceful go-plugin stop may take seconds); stopSlot
// waits for these.
func (m *Master) stopAsync(h AllocatorHandle) {
	m.slot.stops.Add(1)
	go func() {
		defer m.slot.stops.Done()
		h.Stop()
	}()
}

// requestPersist asks persistLoop to write the registry. The write (with
// its fsyncs) happens off the allocation loop, so a slow disk does not
// delay the new plugin's first cycle; the loop always writes the latest
// state, so two quick swaps cannot be stored out of order.
func (m *Master) requestPersist() {
	select {
	case m.slot.persist <- struct{}{}:
	default:
	}
}

// persistLoop writes the registry when asked, and once more on the way
// out if a request is pending.
func (m *Master) persistLoop(ctx context.Context) {
	for {
		select {
		case <-m.slot.persist:
			m.persistAllocator()
		case <-ctx.Done():
			select {
			case <-m.slot.persist:
				m.persistAllocator()
			default:
			}
			return
		}
	}
}

// persistAllocator writes the slot's durable choice to the registry, so a
// restarted master comes back with the policy the operator swapped in.
func (m *Master) persistAllocator() {
	if m.reg == nil {
		return
	}
	m.regMu.Lock()
	defer m.regMu.Unlock()
	m.mu.Lock()
	durable := make(map[string]RoleConfig, len(m.durableRoles))
	for r := range m.durableRoles {
		durable[r] = m.roles[r]
	}
	m.mu.Unlock()
	if err := writeRegistry(context.Background(), m.reg, registry{roles: durable, allocator: m.slot.durableChoice()}); err != nil {
		m.log.Error("storing the allocator choice in the registry failed; a restart will use the previous one",
			"registry", m.reg.String(), "error", err)
	}
}

// stopSlot stops every plugin the slot runs (master shutdown).
func (m *Master) stopSlot() {
	s := &m.slot
	s.mu.Lock()
	var hs []AllocatorHandle
	for _, p := range []*slotPlugin{s.active, s.previous} {
		if p != nil {
			hs = append(hs, p.handle)
		}
	}
	cand, pending := s.cand, s.pending
	s.cand, s.pending = nil, nil
	s.mu.Unlock()
	stopped := SwapRecord{At: m.now(), Event: "abort", Detail: "the master stopped"}
	if cand != nil {
		hs = append(hs, cand.handle)
		cand.decide(stopped)
	}
	if pending != nil {
		pending.decide(stopped)
	}
	for _, h := range hs {
		h.Stop()
	}
	s.stops.Wait()
}
