package allocator

import (
	"fmt"
	"maps"
	"math"
	"sync"
)

// Metric changes. A policy reports every role's and every framework's
// share each cycle (AllocateResponse.Metrics), thousands of entries of
// which a cycle changes a few: sent whole they were a third of a busy
// response at 10k agents × 1k frameworks, a map the plugin marshalled and
// the host rebuilt string by string every cycle. So the host keeps the
// last complete metrics and says which response they came from
// (AllocateRequest.metrics_base); the plugin side, which remembers what it
// sent in that response, answers with what changed and what is gone
// (AllocateResponse.metrics_base, metrics_removed). The master and the
// policy never see the difference: each response the host returns holds
// every metric.
//
// Like interned IDs, it needs no new API version: a plugin built before
// ignores metrics_base and sends everything (its response has no
// metrics_base), and a host built before never sets it. Whenever the two
// sides may disagree (an Init, a failed call) the host asks for
// everything again.

// sentMetrics is the plugin side's memory of the metrics it last sent.
type sentMetrics struct {
	mu     sync.Mutex
	id     uint64 // the response that carried them
	values map[string]float64
}

// encode returns what response id carries of m, given the request's
// metrics_base: the changes since base when it is the response whose
// metrics are remembered, else m itself (base 0). m is remembered as the
// metrics of response id; it must not change afterwards.
func (s *sentMetrics) encode(m map[string]float64, base, id uint64) (out map[string]float64, removed []string, outBase uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, prevID := s.values, s.id
	s.values, s.id = m, id
	if base == 0 || base != prevID || prev == nil {
		return m, nil, 0
	}
	for k, v := range m {
		// Bits, not ==: a NaN that stays NaN is no change.
		if old, ok := prev[k]; !ok || math.Float64bits(old) != math.Float64bits(v) {
			if out == nil {
				out = map[string]float64{}
			}
			out[k] = v
		}
	}
	for k := range prev {
		if _, ok := m[k]; !ok {
			removed = append(removed, k)
		}
	}
	return out, removed, base
}

// mergeMetrics returns the complete metrics of the response dec, applying
// its changes to those the client holds, and keeps them for the next
// request. The caller holds c.ids.mu.
func (c *client) mergeMetrics(dec decodedResponse) (map[string]float64, error) {
	m := dec.resp.Metrics
	if dec.metricsBase == 0 {
		if len(dec.metricsRemoved) > 0 {
			return nil, fmt.Errorf("response removes %d metrics from a complete set", len(dec.metricsRemoved))
		}
		// Complete: kept as they are, the caller gets a copy (a response
		// belongs to the caller, who may change it).
		c.metrics, c.metricsID = m, dec.responseID
		if len(m) == 0 || dec.responseID == 0 {
			c.metrics, c.metricsID = nil, 0
			return m, nil
		}
		return maps.Clone(m), nil
	}
	if c.metrics == nil || dec.metricsBase != c.metricsID {
		return nil, fmt.Errorf("response changes the metrics of response %d, the host holds those of %d", dec.metricsBase, c.metricsID)
	}
	for k, v := range m {
		c.metrics[k] = v
	}
	for _, k := range dec.metricsRemoved {
		delete(c.metrics, k)
	}
	c.metricsID = dec.responseID
	if len(c.metrics) == 0 || dec.responseID == 0 {
		c.metrics, c.metricsID = nil, 0
		return nil, nil
	}
	return maps.Clone(c.metrics), nil
}
