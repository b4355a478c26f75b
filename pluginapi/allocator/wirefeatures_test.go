package allocator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// sharesPlugin makes three offers every cycle (one on an agent the host
// never named in the third) and reports metrics that
// change a little from one cycle to the next: share/f<n> for n up to
// 3, the cycle's own share/f<cycle%3> changed, and "dropped" only in
// even cycles. It records the deltas it is given.
type sharesPlugin struct {
	Allocator
	mu     sync.Mutex
	cycles int
	deltas [][]Delta
}

func (p *sharesPlugin) Init(_ context.Context, snap *Snapshot) (uint64, error) {
	return snap.Version, nil
}

func (p *sharesPlugin) metricsOf(cycle int) map[string]float64 {
	m := map[string]float64{}
	for n := range 3 {
		m[fmt.Sprint("share/f", n)] = float64(n) / 10
	}
	m[fmt.Sprint("share/f", cycle%3)] = float64(cycle)
	if cycle%2 == 0 {
		m["dropped"] = 1
	}
	return m
}

func (p *sharesPlugin) Allocate(_ context.Context, req *AllocateRequest) (*AllocateResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var kept []Delta
	for _, d := range req.Deltas {
		a := *d.Allocation
		d.Allocation = &a
		kept = append(kept, d)
	}
	p.deltas = append(p.deltas, kept)
	p.cycles++
	resp := &AllocateResponse{AppliedVersion: req.TargetVersion, Metrics: p.metricsOf(p.cycles)}
	agents := []string{"a1", "a2", "a1"}
	if p.cycles == 3 {
		agents[2] = "a9" // not in the host's dictionary: no columns
	}
	for _, a := range agents {
		resp.Offers = append(resp.Offers, Proposal{FrameworkID: "f1", Role: "r1", AgentID: a, Resources: resources.MustParse("cpus:2")})
	}
	return resp, nil
}

// answer is the master's part: every offer of resp is committed, then
// declined with a filter of refuse seconds.
func answer(resp *AllocateResponse, base uint64, refuse float64) []Delta {
	var out []Delta
	for _, kind := range []DeltaKind{Allocated, Recovered} {
		for _, o := range resp.Offers {
			d := Delta{Kind: kind, Allocation: &Allocation{FrameworkID: o.FrameworkID, Role: o.Role, AgentID: o.AgentID, Resources: o.Resources}}
			if kind == Recovered {
				d.RefuseSeconds = refuse
			}
			out = append(out, d)
		}
	}
	return out
}

// TestWireFeatures: between a host and a plugin of this build, offer
// references go as ranges with one refuse duration once the plugin
// announced that it reads them, metrics as changes from the second cycle
// on, and offers in columns when the dictionary names all their IDs; the plugin sees the same deltas and the master the same
// complete metrics as when every part goes whole, with hosts and plugins
// built before either (the options stand for them); after a re-Init the
// host asks for all metrics again.
func TestWireFeatures(t *testing.T) {
	old := WireOptions{NoCompactRefs: true, NoMetricDeltas: true, NoOfferColumns: true}
	for _, tc := range []struct {
		name         string
		host, plugin WireOptions
		compact      bool
	}{
		{"new host, new plugin", WireOptions{}, WireOptions{}, true},
		{"new host, old plugin", WireOptions{}, old, false},
		{"old host, new plugin", old, WireOptions{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			impl := &sharesPlugin{}
			c, wire := wirePair(t, impl, tc.host, tc.plugin)
			if _, err := c.Init(context.Background(), idSnap); err != nil {
				t.Fatal(err)
			}
			var deltas []Delta
			base := uint64(1)
			for i := range 5 {
				// Refuse durations alike but in the last cycle.
				refuse := 3600.0
				resp := cycle(t, c, base, deltas...)
				base += uint64(len(deltas))
				req, out := wire.last()
				if want := impl.metricsOf(i + 1); !maps.Equal(resp.Metrics, want) {
					t.Errorf("cycle %d: metrics %v, want %v", i, resp.Metrics, want)
				}
				if got := impl.deltas[i]; !deltasEqual(got, deltas) {
					t.Errorf("cycle %d: plugin got deltas %+v, want %+v", i, got, deltas)
				}
				// On the wire.
				ranged := false
				for _, d := range req.Deltas {
					if run := d.GetOfferRefs(); run != nil && run.Count > 0 {
						ranged = true
						uniform := i != 4 // see below
						if len(run.Indices) != 0 || run.Recovered && uniform && (run.RefuseAll != refuse || len(run.RefuseSeconds) != 0) ||
							run.Recovered && !uniform && (run.RefuseAll != 0 || len(run.RefuseSeconds) != 3) {
							t.Errorf("cycle %d: compact run %v", i, run)
						}
					}
				}
				if wantRanged := tc.compact && i > 0; ranged != wantRanged {
					t.Errorf("cycle %d: request with ranges %v, want %v", i, ranged, wantRanged)
				}
				wantDeltas := tc.compact && i > 0
				if (out.MetricsBase != 0) != wantDeltas || (req.MetricsBase != 0) != (wantDeltas || tc.plugin.NoMetricDeltas && i > 0) {
					t.Errorf("cycle %d: request metrics_base %d, response metrics_base %d", i, req.MetricsBase, out.MetricsBase)
				}
				if wantDeltas && (len(out.Metrics) < 2 || len(out.MetricsRemoved)+len(out.Metrics) != 3) {
					t.Errorf("cycle %d: changed metrics %v, removed %v; want two changed shares and %q added or removed",
						i, out.Metrics, out.MetricsRemoved, "dropped")
				}
				if cols := tc.compact && i != 2; (out.OfferColumns != nil) != cols || cols && len(out.Offers) != 0 {
					t.Errorf("cycle %d: %d offers as messages, columns %v; want columns %v", i, len(out.Offers), out.OfferColumns, cols)
				}
				if len(resp.Offers) != 3 || resp.Offers[2].AgentID != map[bool]string{true: "a9", false: "a1"}[i == 2] {
					t.Errorf("cycle %d: offers %+v", i, resp.Offers)
				}
				deltas = answer(resp, base, refuse)
				if i == 3 {
					deltas[len(deltas)-1].RefuseSeconds = 5 // no longer one duration
				}
			}
			// After a re-Init the next request asks for everything.
			if _, err := c.Init(context.Background(), idSnap); err != nil {
				t.Fatal(err)
			}
			resp := cycle(t, c, 1)
			if req, out := wire.last(); req.MetricsBase != 0 || out.MetricsBase != 0 || !maps.Equal(resp.Metrics, impl.metricsOf(impl.cycles)) {
				t.Errorf("after re-Init: request metrics_base %d, response %d, metrics %v", req.MetricsBase, out.MetricsBase, resp.Metrics)
			}
		})
	}
}

func deltasEqual(a, b []Delta) bool {
	return slices.EqualFunc(a, b, func(x, y Delta) bool {
		return x.Kind == y.Kind && x.RefuseSeconds == y.RefuseSeconds && x.Version == y.Version &&
			x.Allocation.AgentID == y.Allocation.AgentID && x.Allocation.Resources.Equal(y.Allocation.Resources)
	})
}

// TestMetricChangesOutOfStep: a response that changes metrics the host
// does not hold fails the call, and the next request asks for all.
func TestMetricChangesOutOfStep(t *testing.T) {
	var c client
	c.metrics, c.metricsID = map[string]float64{"a": 1}, 7
	if _, err := c.mergeMetrics(decodedResponse{resp: &AllocateResponse{Metrics: map[string]float64{"a": 2}}, metricsBase: 6, responseID: 8}); err == nil {
		t.Error("changes to the metrics of response 6 merged into those of 7")
	}
	m, err := c.mergeMetrics(decodedResponse{resp: &AllocateResponse{Metrics: map[string]float64{"b": 2}}, metricsBase: 7, responseID: 8, metricsRemoved: []string{"a"}})
	if err != nil || !maps.Equal(m, map[string]float64{"b": 2}) || c.metricsID != 8 {
		t.Errorf("merged %v (%v), host holds response %d", m, err, c.metricsID)
	}
	m["b"] = 3 // the caller's copy
	if c.metrics["b"] != 2 {
		t.Error("the caller's metrics are the host's own")
	}
	var s sentMetrics
	if out, _, b := s.encode(map[string]float64{"x": 1}, 5, 10); b != 0 || out["x"] != 1 {
		t.Errorf("a plugin remembering nothing answered base %d with %v", b, out)
	}
	if out, rm, b := s.encode(map[string]float64{"y": 1}, 10, 11); b != 10 || len(out) != 1 || !slices.Equal(rm, []string{"x"}) {
		t.Errorf("changes since 10: base %d, %v, removed %v", b, out, rm)
	}
	if _, _, b := s.encode(nil, 10, 12); b != 0 {
		t.Errorf("a request based on a response before the last got changes against base %d", b)
	}
}

// TestCompactRun: only consecutive indices become a range, ascending ones
// a bitmap when it is the smaller, and only one non-zero refuse duration
// throughout becomes refuse_all; the plugin side expands them, and
// refuses a run in two forms at once and one past the response.
func TestCompactRun(t *testing.T) {
	for _, tc := range []struct {
		indices       []uint32
		refuse        []float64
		first, count  uint32
		all           float64
		keptIdx, kept int
	}{
		{[]uint32{4, 5, 6}, []float64{60, 60, 60}, 4, 3, 60, 0, 0},
		{[]uint32{6, 4, 7}, []float64{60, 60, 5}, 0, 0, 0, 3, 3},
		{[]uint32{4, 6, 7, 300}, nil, 0, 0, 0, 4, 0}, // a bitmap of 37 bytes is larger
		{[]uint32{4, 6, 7, 12}, []float64{60, 60, 60, 60}, 4, 0, 60, 0, 0},
		{[]uint32{4}, nil, 0, 0, 0, 1, 0},
	} {
		run := &allocatorpb.OfferRefRun{Indices: slices.Clone(tc.indices), RefuseSeconds: slices.Clone(tc.refuse)}
		compactRun(run, true)
		if run.First != tc.first || run.Count != tc.count || run.RefuseAll != tc.all || len(run.Indices) != tc.keptIdx || len(run.RefuseSeconds) != tc.kept {
			t.Errorf("%v %v compacted to %v", tc.indices, tc.refuse, run)
		}
	}
	run := &allocatorpb.OfferRefRun{Indices: []uint32{4, 6, 7, 12}}
	if compactRun(run, false); len(run.Indices) != 4 || len(run.Members) != 0 {
		t.Errorf("without WIRE_REF_BITMAPS, 4, 6, 7, 12 compacted to %v", run)
	}
	compactRun(run, true)
	if !slices.Equal(run.Members, []byte{0b1101, 0b1}) {
		t.Errorf("bitmap of 4, 6, 7, 12 from 4: %08b", run.Members)
	}
	var m offerMemory
	var sent []Proposal
	for i := range 16 {
		sent = append(sent, Proposal{AgentID: fmt.Sprint("a", i)})
	}
	m.remember(8, sent, false)
	out, err := m.expandRun(nil, &allocatorpb.Delta{Version: 3}, &allocatorpb.OfferRefRun{ResponseId: 8, First: run.First, Members: run.Members})
	if err != nil || len(out) != 4 || out[0].Allocation.AgentID != "a4" || out[1].Allocation.AgentID != "a6" || out[3].Allocation.AgentID != "a12" || out[3].Version != 6 {
		t.Errorf("bitmap expanded to %+v (%v)", out, err)
	}
	if _, err := m.expandRun(nil, &allocatorpb.Delta{Version: 3}, &allocatorpb.OfferRefRun{ResponseId: 8, First: 10, Members: run.Members}); err == nil {
		t.Error("a bitmap past the response's offers expanded")
	}
	m.remember(9, []Proposal{{AgentID: "a"}, {AgentID: "b"}}, false)
	for _, run := range []*allocatorpb.OfferRefRun{
		{ResponseId: 9, First: 1, Count: 2},
		{ResponseId: 9, Count: 1, Indices: []uint32{0}},
		{ResponseId: 9, Members: []byte{1}, Indices: []uint32{0}},
	} {
		if _, err := m.expandRun(nil, &allocatorpb.Delta{Version: 3}, run); err == nil {
			t.Errorf("run %v expanded", run)
		}
	}
	out, err = m.expandRun(nil, &allocatorpb.Delta{Version: 3}, &allocatorpb.OfferRefRun{ResponseId: 9, Recovered: true, First: 0, Count: 2, RefuseAll: 30})
	if err != nil || len(out) != 2 || out[1].Allocation.AgentID != "b" || out[1].RefuseSeconds != 30 || out[1].Version != 4 {
		t.Errorf("range 0..1 of response 9 expanded to %+v (%v)", out, err)
	}
}
