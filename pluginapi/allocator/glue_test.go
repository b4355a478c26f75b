package allocator_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-plugin"
)

// recorder is a test double: it records what crosses the wire and answers
// with canned values, so the tests see exactly what the adapters deliver.
type recorder struct {
	mu       sync.Mutex
	version  uint64
	snap     *allocator.Snapshot
	req      *allocator.AllocateRequest
	config   string
	apiVer   string
	resp     *allocator.AllocateResponse
	allocErr error
}

func (r *recorder) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindAllocator, Name: "recorder", Version: "0.1.0", APIVersions: []string{"v2", "v1"}}, nil
}

func (r *recorder) ConfigSchema(context.Context) (*base.Schema, error) {
	return &base.Schema{Attributes: []base.Attribute{
		{Name: "fairness", Type: "string", Required: true, DefaultJSON: `"drf"`, Description: "policy"},
		{Name: "weights", Type: "map(string)"},
	}}, nil
}

func (r *recorder) SetConfig(_ context.Context, cfg []byte, v string) error {
	if !strings.HasPrefix(string(cfg), "{") {
		return fmt.Errorf("config %q is not an object", cfg)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.config, r.apiVer = string(cfg), v
	return nil
}

func (r *recorder) Init(_ context.Context, snap *allocator.Snapshot) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap, r.version = snap, snap.Version
	return snap.Version, nil
}

func (r *recorder) Allocate(_ context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.BaseVersion != r.version {
		return nil, fmt.Errorf("cycle refused: %w", &allocator.VersionGapError{Have: r.version, Want: req.BaseVersion})
	}
	// The glue reuses the delta slice once Allocate returns (see
	// AllocateRequest): what is kept for the test's checks is a copy.
	kept := *req
	kept.Deltas = slices.Clone(req.Deltas)
	r.req = &kept
	if r.allocErr != nil {
		return nil, r.allocErr
	}
	return r.resp, nil
}

func connect(t *testing.T, impl allocator.Allocator) (allocator.Allocator, *plugin.GRPCServer) {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, allocator.PluginSet(impl))
	t.Cleanup(func() {
		server.Stop()
		_ = client.Close()
	})
	raw, err := client.Dispense(allocator.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(allocator.Allocator), server
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestBaseRoundTrip(t *testing.T) {
	a, _ := connect(t, &recorder{})
	info, err := a.PluginInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != base.KindAllocator || info.Name != "recorder" || info.Version != "0.1.0" || !slices.Equal(info.APIVersions, []string{"v2", "v1"}) {
		t.Errorf("PluginInfo = %+v", info)
	}
	schema, err := a.ConfigSchema(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []base.Attribute{
		{Name: "fairness", Type: "string", Required: true, DefaultJSON: `"drf"`, Description: "policy"},
		{Name: "weights", Type: "map(string)"},
	}
	if !slices.Equal(schema.Attributes, want) {
		t.Errorf("ConfigSchema = %+v, want %+v", schema.Attributes, want)
	}
	if err := a.SetConfig(ctx(t), []byte(`{"fairness":"drf"}`), "v1"); err != nil {
		t.Fatal(err)
	}
	err = a.SetConfig(ctx(t), []byte("nope"), "v1")
	if err == nil || !strings.Contains(err.Error(), `config "nope" is not an object`) {
		t.Errorf("SetConfig(nope) = %v, want the plugin's message", err)
	}
	if errors.Is(err, base.ErrPluginUnavailable) {
		t.Errorf("a plugin's own error must not read as unavailable: %v", err)
	}
}

func TestInitLargeSnapshotIsReassembled(t *testing.T) {
	rec := &recorder{}
	a, _ := connect(t, rec)
	snap := &allocator.Snapshot{Version: 77, Now: 123456}
	for i := range 2*allocator.InitChunkSize + 17 {
		snap.Agents = append(snap.Agents, allocator.Agent{
			ID: fmt.Sprintf("a%04d", i), Hostname: fmt.Sprintf("h%d", i),
			Total:      resources.MustParse("cpus:8;mem:16384;ports:[31000-32000]"),
			Attributes: map[string]string{"rack": fmt.Sprint(i % 7)}, Active: i%5 != 0,
		})
		snap.Allocations = append(snap.Allocations, allocator.Allocation{
			FrameworkID: "f1", Role: "r", AgentID: fmt.Sprintf("a%04d", i), Resources: resources.MustParse("cpus:0.5"),
		})
	}
	snap.Frameworks = []allocator.Framework{{ID: "f1", Roles: []string{"r", "s"}, Active: true, SuppressedRoles: []string{"s"},
		Capabilities:   []string{allocator.CapabilityGPUResources},
		MinAllocatable: map[string][]resources.Resources{"r": {resources.MustParse("cpus:1"), resources.MustParse("mem:64")}}}}
	snap.Roles = []allocator.Role{{Name: "r", Weight: 2.5, Priority: 3,
		Guarantee: resources.MustParse("cpus:4;mem:1024"), Limit: resources.MustParse("cpus:8")}}
	snap.Tasks = []allocator.Task{{ID: "t1", FrameworkID: "f1", Role: "r", AgentID: "a0001",
		Resources: resources.MustParse("cpus:0.5"), StartedAt: 1000, WithinGuarantee: true}}
	snap.Demands = []allocator.Demand{{FrameworkID: "f1", Role: "r",
		Shapes: []allocator.TaskShape{{Resources: resources.MustParse("cpus:1;mem:64"), Count: 3}}}}
	snap.Filters = []allocator.Filter{{FrameworkID: "f1", Role: "r", AgentID: "a0001", Resources: resources.MustParse("mem:10"), ExpiresAt: 130000}}

	v, err := a.Init(ctx(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	if v != 77 {
		t.Errorf("Init returned %d, want 77", v)
	}
	rec.mu.Lock()
	got := rec.snap
	rec.mu.Unlock()
	if got.Version != 77 || got.Now != 123456 {
		t.Errorf("snapshot version %d now %d", got.Version, got.Now)
	}
	if len(got.Agents) != len(snap.Agents) || len(got.Allocations) != len(snap.Allocations) {
		t.Fatalf("got %d agents, %d allocations; sent %d, %d", len(got.Agents), len(got.Allocations), len(snap.Agents), len(snap.Allocations))
	}
	for i := range snap.Agents {
		if !agentEqual(&got.Agents[i], &snap.Agents[i]) {
			t.Fatalf("agent %d: got %+v, sent %+v", i, got.Agents[i], snap.Agents[i])
		}
		if !allocationEqual(&got.Allocations[i], &snap.Allocations[i]) {
			t.Fatalf("allocation %d: got %+v, sent %+v", i, got.Allocations[i], snap.Allocations[i])
		}
	}
	if !frameworkEqual(&got.Frameworks[0], &snap.Frameworks[0]) || !equal(got.Roles, snap.Roles) || !equal(got.Tasks, snap.Tasks) || !equal(got.Demands, snap.Demands) {
		t.Errorf("frameworks %+v roles %+v", got.Frameworks, got.Roles)
	}
	f := got.Filters[0]
	if len(got.Filters) != 1 || f.FrameworkID != "f1" || f.Role != "r" || f.AgentID != "a0001" || f.ExpiresAt != 130000 || !f.Resources.Equal(resources.MustParse("mem:10")) {
		t.Errorf("filters = %+v", got.Filters)
	}
}

func TestAllocateRoundTripEveryDelta(t *testing.T) {
	agent := &allocator.Agent{ID: "a9", Hostname: "h9", Total: resources.MustParse("cpus:2;mem:1024;zones:{x,y}"), Attributes: map[string]string{"os": "linux"}, Active: true}
	fw := &allocator.Framework{ID: "f9", Roles: []string{"r"}, Active: true}
	alloc := &allocator.Allocation{FrameworkID: "f9", Role: "r", AgentID: "a9", Resources: resources.MustParse("cpus:1")}
	deltas := []allocator.Delta{
		{Kind: allocator.AgentAdded, Agent: agent},
		{Kind: allocator.AgentUpdated, Agent: agent},
		{Kind: allocator.AgentRemoved, AgentID: "a8"},
		{Kind: allocator.FrameworkAdded, Framework: fw},
		{Kind: allocator.FrameworkUpdated, Framework: fw},
		{Kind: allocator.FrameworkRemoved, FrameworkID: "f8"},
		{Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: "r", Weight: 3}},
		{Kind: allocator.Allocated, Allocation: alloc},
		{Kind: allocator.Recovered, Allocation: alloc, RefuseSeconds: 5.5},
		{Kind: allocator.Suppressed, FrameworkID: "f9", Roles: []string{"r"}},
		{Kind: allocator.Revived, FrameworkID: "f9"},
		{Kind: allocator.RoleUpdated, Role: &allocator.Role{Name: "eng/ml", Weight: 2, Priority: 10,
			Guarantee: resources.MustParse("cpus:8;mem:16384"), Limit: resources.MustParse("cpus:32")}},
		{Kind: allocator.TaskAdded, Task: &allocator.Task{ID: "t9", FrameworkID: "f9", Role: "r", AgentID: "a9",
			Resources: resources.MustParse("cpus:1"), StartedAt: 4000}},
		{Kind: allocator.TaskUpdated, Task: &allocator.Task{ID: "t9", FrameworkID: "f9", Role: "r", AgentID: "a9",
			Resources: resources.MustParse("cpus:1"), StartedAt: 4000, WithinGuarantee: true}},
		{Kind: allocator.TaskRemoved, FrameworkID: "f9", TaskID: "t9"},
		{Kind: allocator.DemandUpdated, Demand: &allocator.Demand{FrameworkID: "f9", Role: "r",
			Shapes: []allocator.TaskShape{{Resources: resources.MustParse("cpus:3;mem:1024"), Count: 2}}}},
		{Kind: allocator.DemandUpdated, Demand: &allocator.Demand{FrameworkID: "f9", Role: "r"}},
		{Kind: allocator.FrameworkUpdated, Framework: &allocator.Framework{ID: "f9", Roles: []string{"r"}, Active: true,
			Capabilities: []string{"GPU_RESOURCES"}, MinAllocatable: map[string][]resources.Resources{"r": {resources.MustParse("cpus:2")}}}},
	}
	for i := range deltas {
		deltas[i].Version = uint64(11 + i)
		deltas[i].At = allocator.LogicalTime(1000 * i)
	}
	rec := &recorder{resp: &allocator.AllocateResponse{
		AppliedVersion: 28,
		Offers: []allocator.Proposal{
			{FrameworkID: "f9", Role: "r", AgentID: "a9", Resources: resources.MustParse("cpus:1;mem:512;ports:[31000-31010]")},
			{FrameworkID: "f1", Role: "s", AgentID: "a1", Resources: resources.MustParse("gpus:1")},
		},
		Metrics: map[string]float64{"dominant_share.r": 0.25},
		Revocations: []allocator.Revocation{
			{FrameworkID: "f1", TaskID: "t1", AgentID: "a1", Reason: allocator.RevokePreemption},
			{FrameworkID: "f2", TaskID: "t2", AgentID: "a2", Reason: allocator.RevokeLongTask},
		},
	}}
	a, _ := connect(t, rec)
	if _, err := a.Init(ctx(t), &allocator.Snapshot{Version: 10}); err != nil {
		t.Fatal(err)
	}
	req := &allocator.AllocateRequest{BaseVersion: 10, Deltas: deltas, TargetVersion: 28, Now: 99, Trigger: allocator.TriggerRevive, MaxOffers: 7, RevokeAfter: 3600000}
	resp, err := a.Allocate(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}

	rec.mu.Lock()
	got := rec.req
	rec.mu.Unlock()
	if got.BaseVersion != 10 || got.TargetVersion != 28 || got.Now != 99 || got.Trigger != allocator.TriggerRevive || got.MaxOffers != 7 || got.RevokeAfter != 3600000 {
		t.Errorf("request header = %+v", got)
	}
	if len(got.Deltas) != len(deltas) {
		t.Fatalf("got %d deltas, sent %d", len(got.Deltas), len(deltas))
	}
	for i := range deltas {
		if !deltaEqual(&got.Deltas[i], &deltas[i]) {
			t.Errorf("delta %d (%v): got %s, sent %s", i, deltas[i].Kind, dumpDelta(&got.Deltas[i]), dumpDelta(&deltas[i]))
		}
	}

	if !equal(resp.Revocations, rec.resp.Revocations) {
		t.Errorf("revocations: got %+v, sent %+v", resp.Revocations, rec.resp.Revocations)
	}
	if resp.AppliedVersion != 28 || len(resp.Offers) != 2 || resp.Metrics["dominant_share.r"] != 0.25 {
		t.Fatalf("response = %+v", resp)
	}
	for i, o := range rec.resp.Offers {
		g := resp.Offers[i]
		if g.FrameworkID != o.FrameworkID || g.Role != o.Role || g.AgentID != o.AgentID || !g.Resources.Equal(o.Resources) {
			t.Errorf("offer %d: got %+v, want %+v", i, g, o)
		}
	}
}

func TestVersionGapCrossesWire(t *testing.T) {
	a, _ := connect(t, &recorder{})
	if _, err := a.Init(ctx(t), &allocator.Snapshot{Version: 5}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Allocate(ctx(t), &allocator.AllocateRequest{BaseVersion: 9, TargetVersion: 9})
	var gap *allocator.VersionGapError
	if !errors.As(err, &gap) {
		t.Fatalf("err = %v (%T), want *VersionGapError", err, err)
	}
	if gap.Have != 5 || gap.Want != 9 {
		t.Errorf("gap = %+v, want Have 5 Want 9", gap)
	}
}

func TestPluginErrorAndUnavailable(t *testing.T) {
	rec := &recorder{allocErr: errors.New("state corrupted")}
	a, server := connect(t, rec)
	if _, err := a.Init(ctx(t), &allocator.Snapshot{Version: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Allocate(ctx(t), &allocator.AllocateRequest{BaseVersion: 1, TargetVersion: 1})
	var gap *allocator.VersionGapError
	if err == nil || !strings.Contains(err.Error(), "state corrupted") || errors.As(err, &gap) || errors.Is(err, base.ErrPluginUnavailable) {
		t.Fatalf("err = %v, want the plugin's message and nothing else", err)
	}

	server.Stop()
	_, err = a.Allocate(ctx(t), &allocator.AllocateRequest{BaseVersion: 1, TargetVersion: 1})
	if !errors.Is(err, base.ErrPluginUnavailable) {
		t.Fatalf("after the plugin stopped: err = %v, want ErrPluginUnavailable", err)
	}
	if _, err := a.PluginInfo(ctx(t)); !errors.Is(err, base.ErrPluginUnavailable) {
		t.Fatalf("PluginInfo after the plugin stopped: err = %v, want ErrPluginUnavailable", err)
	}
}

// The contract suite must accept a correct allocator; greedy is one.
func TestContractSuiteAcceptsGreedy(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) allocator.Allocator {
		return contracttest.InProcess(t, &greedy{})
	})
}

// equal compares domain values field by field: resources with their Equal
// method, nil and empty slices and maps alike (the wire does not keep the
// difference).
func equal[T any](a, b T) bool { return cmp.Equal(a, b, cmpopts.EquateEmpty()) }

func agentEqual(a, b *allocator.Agent) bool           { return equal(a, b) }
func frameworkEqual(a, b *allocator.Framework) bool   { return equal(a, b) }
func allocationEqual(a, b *allocator.Allocation) bool { return equal(a, b) }
func deltaEqual(a, b *allocator.Delta) bool           { return equal(a, b) }
func dumpDelta(d *allocator.Delta) string             { return fmt.Sprintf("%+v", *d) }

// Deltas that repeat a recent offer cross the wire as references and reach
// the plugin whole; a reference the plugin cannot resolve is an error.
func TestOfferReferences(t *testing.T) {
	offer := allocator.Proposal{FrameworkID: "f1", Role: "r", AgentID: "a1", Resources: resources.MustParse("cpus:2;mem:1024;ports:[31000-31004]")}
	rec := &recorder{resp: &allocator.AllocateResponse{AppliedVersion: 1, Offers: []allocator.Proposal{offer}}}
	a, _ := connect(t, rec)
	if _, err := a.Init(ctx(t), &allocator.Snapshot{Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(ctx(t), &allocator.AllocateRequest{BaseVersion: 1, TargetVersion: 1}); err != nil {
		t.Fatal(err)
	}
	same := &allocator.Allocation{FrameworkID: "f1", Role: "r", AgentID: "a1", Resources: offer.Resources}
	other := &allocator.Allocation{FrameworkID: "f1", Role: "r", AgentID: "a1", Resources: resources.MustParse("cpus:1")}
	deltas := []allocator.Delta{
		{Version: 2, At: 5, Kind: allocator.Allocated, Allocation: same},
		{Version: 3, At: 6, Kind: allocator.Recovered, Allocation: same, RefuseSeconds: 3600},
		{Version: 4, At: 7, Kind: allocator.Allocated, Allocation: other},
	}
	rec.resp = &allocator.AllocateResponse{AppliedVersion: 4}
	if _, err := a.Allocate(ctx(t), &allocator.AllocateRequest{BaseVersion: 1, TargetVersion: 4, Deltas: deltas}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	got := rec.req.Deltas
	rec.mu.Unlock()
	for i := range deltas {
		if !deltaEqual(&got[i], &deltas[i]) {
			t.Errorf("delta %d: got %s, sent %s", i, dumpDelta(&got[i]), dumpDelta(&deltas[i]))
		}
	}
}

// TestDeltaBufferReuse: the plugin side reuses one request's delta slice
// for the next; a second, smaller request must arrive whole and alone,
// with nothing of the first one left in it.
func TestDeltaBufferReuse(t *testing.T) {
	rec := &recorder{resp: &allocator.AllocateResponse{}}
	a, _ := connect(t, rec)
	if _, err := a.Init(ctx(t), &allocator.Snapshot{Version: 1}); err != nil {
		t.Fatal(err)
	}
	version := uint64(1)
	for _, n := range []int{50, 3, 20} {
		var deltas []allocator.Delta
		for i := range n {
			deltas = append(deltas, allocator.Delta{Version: version + uint64(i) + 1, Kind: allocator.FrameworkRemoved, FrameworkID: fmt.Sprintf("f%d-%d", n, i)})
		}
		rec.mu.Lock()
		rec.resp.AppliedVersion = version + uint64(n)
		rec.mu.Unlock()
		if _, err := a.Allocate(ctx(t), &allocator.AllocateRequest{BaseVersion: version, Deltas: deltas, TargetVersion: version + uint64(n)}); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		got := rec.req.Deltas
		rec.version = version + uint64(n)
		rec.mu.Unlock()
		if len(got) != n {
			t.Fatalf("request of %d deltas arrived with %d", n, len(got))
		}
		for i := range got {
			if got[i].FrameworkID != deltas[i].FrameworkID || got[i].Version != deltas[i].Version {
				t.Errorf("request of %d: delta %d = %s %d, sent %s %d", n, i, got[i].FrameworkID, got[i].Version, deltas[i].FrameworkID, deltas[i].Version)
			}
		}
		version += uint64(n)
	}
}
