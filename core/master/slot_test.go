package master_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/plugins/allocator/drf"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-plugin"
)

// The allocator slot with in-process plugins: the launcher is the seam
// (real plugin processes are tested in cmd/corral's swap tests); the
// policies are the real DRF code, with faults switched on by name.

// inprocLauncher launches a DRF allocator per choice; the name's suffix
// picks a fault: "-initfail", "-hang", "-invalid"; or a wire: "-wire"
// puts the plugin glue and gRPC in between, "-oldwire" the same with a
// plugin side that does not intern IDs (as a plugin built before them).
type inprocLauncher struct {
	t        *testing.T
	mu       sync.Mutex
	launched []*inprocHandle
}

func (l *inprocLauncher) Launch(_ context.Context, c master.AllocatorChoice) (master.AllocatorHandle, error) {
	if strings.HasSuffix(c.Name, "-missing") {
		return nil, errors.New(`allocator plugin "` + c.Name + `" not found`)
	}
	p := drf.NewPlugin()
	if err := p.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		return nil, err
	}
	var a allocator.Allocator = p
	if strings.HasSuffix(c.Name, "-wire") || strings.HasSuffix(c.Name, "-oldwire") {
		client, server := plugin.TestPluginGRPCConn(l.t, false,
			allocator.PluginSetWith(p, allocator.WireOptions{NoInternedIDs: strings.HasSuffix(c.Name, "-oldwire")}))
		l.t.Cleanup(func() {
			server.Stop()
			_ = client.Close()
		})
		raw, err := client.Dispense(allocator.PluginName)
		if err != nil {
			return nil, err
		}
		a = raw.(allocator.Allocator)
	}
	h := &inprocHandle{name: c.Name, a: &faultAlloc{Allocator: a, name: c.Name}}
	l.mu.Lock()
	l.launched = append(l.launched, h)
	l.mu.Unlock()
	return h, nil
}

func (l *inprocLauncher) handles() []*inprocHandle {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*inprocHandle(nil), l.launched...)
}

type inprocHandle struct {
	name string
	a    *faultAlloc

	mu      sync.Mutex
	stopped bool
	calls   int
}

func (h *inprocHandle) Current() (allocator.Allocator, master.PluginInfo, error) {
	return h.a, master.PluginInfo{Name: h.name, Version: "test", Generation: 1}, nil
}
func (h *inprocHandle) ReportCall(error) {}
func (h *inprocHandle) Restarts() int    { return 0 }
func (h *inprocHandle) Faults() int      { return 0 }
func (h *inprocHandle) SHA256() string   { return "" }
func (h *inprocHandle) Stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
}
func (h *inprocHandle) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// waitStopped reports whether the slot stopped the plugin (it does so off
// the allocation loop) within a generous deadline.
func (h *inprocHandle) waitStopped() bool {
	deadline := time.Now().Add(30 * time.Second)
	for !h.isStopped() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// faultAlloc is DRF with a fault chosen by the plugin's name, and a
// record of the snapshots it was initialised from.
type faultAlloc struct {
	allocator.Allocator
	name string

	mu    sync.Mutex
	snaps []*allocator.Snapshot
}

func (f *faultAlloc) Init(ctx context.Context, snap *allocator.Snapshot) (uint64, error) {
	if strings.HasSuffix(f.name, "-initfail") {
		return 0, errors.New("init fails on purpose")
	}
	f.mu.Lock()
	f.snaps = append(f.snaps, snap)
	f.mu.Unlock()
	return f.Allocator.Init(ctx, snap)
}

func (f *faultAlloc) Allocate(ctx context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	if strings.HasSuffix(f.name, "-hang") {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	resp, err := f.Allocator.Allocate(ctx, req)
	if err == nil && strings.HasSuffix(f.name, "-invalid") {
		for i := range resp.Offers {
			resp.Offers[i].AgentID = "no-such-agent"
		}
	}
	return resp, err
}

func (f *faultAlloc) lastSnap() *allocator.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.snaps) == 0 {
		return nil
	}
	return f.snaps[len(f.snaps)-1]
}

func startSlotMaster(t *testing.T, cfg master.Config) (*cluster, *inprocLauncher) {
	t.Helper()
	l := &inprocLauncher{t: t}
	if cfg.Allocator.Name == "" {
		cfg.Allocator = master.AllocatorChoice{Name: "drf"}
	}
	c := startMasterDeps(t, cfg, master.Deps{Launcher: l})
	deadline := time.Now().Add(30 * time.Second)
	for c.m.AllocatorStatus().Active == nil {
		if time.Now().After(deadline) {
			t.Fatal("the allocator did not start within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c, l
}

// accept launches one task on offer o.
func (f *wireFramework) accept(a *wireAgent, o *corralpb.Offer, id, res string) {
	f.t.Helper()
	if _, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o.Id},
		Operations: launch(task(id, res))}); err != nil {
		f.t.Fatalf("accepting offer %s: %v", o.Id, err)
	}
	if got := a.next("run task").GetRunTask().GetTask().GetTaskId(); got != id {
		f.t.Fatalf("agent was told to run %q, want %q", got, id)
	}
}

func waitActive(t *testing.T, c *cluster, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.m.AllocatorStatus().Active.Name != name {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become active within 30s", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitSwap(t *testing.T, s *master.Swap) master.SwapRecord {
	t.Helper()
	select {
	case <-s.Done():
		return s.Outcome()
	case <-time.After(30 * time.Second):
		t.Fatal("the swap was not decided within 30s")
	}
	return master.SwapRecord{}
}

// TestSwapKeepsOutstandingOffers: offers made by the old plugin stay valid
// across the cut-over, count as used in the new plugin's snapshot, and the
// new plugin offers only what is left.
func TestSwapKeepsOutstandingOffers(t *testing.T) {
	c, l := startSlotMaster(t, master.Config{})
	a := c.addAgent("a1", "cpus:4;mem:4096")
	fw := c.subscribe("fw")
	held := fw.offers()[0]

	swap, err := c.m.SetAllocator(context.Background(), master.SwapRequest{Choice: master.AllocatorChoice{Name: "drf-b"}, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if out := waitSwap(t, swap); out.Event != "swap" || out.LatencyMS <= 0 {
		t.Fatalf("outcome %+v", out)
	}
	nb := l.handles()[1]
	snap := nb.a.lastSnap()
	var counted resources.Resources
	for _, al := range snap.Allocations {
		counted = counted.Add(al.Resources)
	}
	if want := resources.MustFromProto(held.Resources); !counted.Equal(want) {
		t.Errorf("the new plugin's snapshot counts %s as allocated, want the outstanding offer %s", counted, want)
	}
	if !l.handles()[0].waitStopped() {
		t.Error("the replaced plugin still runs after the probation")
	}
	// The old offer is still good: launch on it.
	fw.accept(a, held, "t1", "cpus:1;mem:128")
	if st := c.m.AllocatorStatus(); st.Active.Name != "drf-b" || st.Generation != 2 || st.Previous != nil {
		t.Errorf("status after the swap: active %q, generation %d, previous %+v", st.Active.Name, st.Generation, st.Previous)
	}
}

// TestSwapToOldWirePlugin: the master's allocator host interns IDs on the
// wire; after a hot swap to a plugin that does not (built before), offers
// keep flowing, named by strings, and a swap back interns again.
func TestSwapToOldWirePlugin(t *testing.T) {
	c, _ := startSlotMaster(t, master.Config{Allocator: master.AllocatorChoice{Name: "drf-wire"}})
	a := c.addAgent("a1", "cpus:4;mem:4096")
	fw := c.subscribe("fw")
	offered := func(who string) {
		t.Helper()
		os := fw.offers()
		if len(os) != 1 || os[0].AgentId != a.id {
			t.Fatalf("%s offered %v, want one offer on %s", who, os, a.id)
		}
		if got := resources.MustFromProto(os[0].Resources); !got.Equal(resources.MustParse("cpus:4;mem:4096")) {
			t.Fatalf("%s offered %s, want the whole agent", who, got)
		}
		fw.decline([]string{os[0].Id})
	}
	offered("drf-wire")
	for _, name := range []string{"drf-oldwire", "drf-wire"} {
		swap, err := c.m.SetAllocator(context.Background(), master.SwapRequest{Choice: master.AllocatorChoice{Name: name}, Source: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if out := waitSwap(t, swap); out.Event != "swap" {
			t.Fatalf("swap to %s: %+v", name, out)
		}
		// The declined offer comes back from the new plugin.
		offered(name)
	}
}

// TestSwapRollbackReasons: each automatic rollback, and what stays active.
func TestSwapRollbackReasons(t *testing.T) {
	for _, tc := range []struct {
		name, plugin, reason string
		setErr               bool
	}{
		{"start", "x-missing", "start", true},
		{"init", "x-initfail", "init", false},
		{"deadline", "x-hang", "deadline", false},
		{"invalid", "x-invalid", "invalid_proposals", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := master.Config{AllocatorTimeout: 100 * time.Millisecond}
			if tc.name == "invalid" {
				// Idle cycles count towards the probation, so the faulty
				// plugin must see the framework before K cycles pass: a
				// long probation (2 s at 20 ms cycles) leaves a loaded
				// machine time to subscribe it.
				cfg.RollbackCycles = 100
			}
			c, l := startSlotMaster(t, cfg)
			c.addAgent("a1", "cpus:4;mem:4096")
			swap, err := c.m.SetAllocator(context.Background(), master.SwapRequest{Choice: master.AllocatorChoice{Name: tc.plugin}})
			var fw *wireFramework
			if tc.name == "invalid" {
				// Subscribed once the faulty plugin serves, so that it
				// is the one proposing the free agent to it.
				waitActive(t, c, tc.plugin)
				fw = c.subscribe("fw")
			}
			var serr *master.SwapError
			if tc.setErr {
				if !errors.As(err, &serr) || serr.Reason != tc.reason {
					t.Fatalf("SetAllocator: %v, want a SwapError for %s", err, tc.reason)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if out := waitSwap(t, swap); out.Event != "rollback" || out.Reason != tc.reason {
					t.Fatalf("outcome %+v, want a rollback for %s", out, tc.reason)
				}
			}
			st := c.m.AllocatorStatus()
			if st.Active.Name != "drf" || st.Candidate != nil || st.Previous != nil {
				t.Errorf("after the rollback: active %q, candidate %+v, previous %+v", st.Active.Name, st.Candidate, st.Previous)
			}
			last := st.History[len(st.History)-1]
			if last.Event != "rollback" || last.Reason != tc.reason || last.Detail == "" {
				t.Errorf("last history record %+v", last)
			}
			for _, h := range l.handles()[1:] {
				if !h.waitStopped() {
					t.Errorf("the rolled-back plugin %s still runs", h.name)
				}
			}
			// The restored plugin serves.
			if fw == nil {
				fw = c.subscribe("fw")
			}
			fw.offers()
		})
	}
}

// TestShadowComparesAndAbort: a shadowing candidate sees every delta, its
// proposals are compared and never sent, and abort keeps the active one.
func TestShadowComparesAndAbort(t *testing.T) {
	c, l := startSlotMaster(t, master.Config{})
	c.addAgent("a1", "cpus:4;mem:4096")
	c.addAgent("a2", "cpus:4;mem:4096")
	swap, err := c.m.SetAllocator(context.Background(), master.SwapRequest{Choice: master.AllocatorChoice{Name: "drf-shadow"},
		Shadow: 3, Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	fw := c.subscribe("fw")
	fw.offers()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := c.m.AllocatorStatus()
		if st.Candidate != nil && st.Candidate.State == "awaiting promotion" && st.Candidate.Diff.Cycles >= 1 {
			d := st.Candidate.Diff
			if d.CandidateInvalid != 0 {
				t.Errorf("the shadow's proposals were judged invalid: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no shadow cycles: %+v", st.Candidate)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.m.AbortAllocator(); err != nil {
		t.Fatal(err)
	}
	if out := waitSwap(t, swap); out.Event != "abort" {
		t.Fatalf("outcome %+v", out)
	}
	if !l.handles()[1].waitStopped() {
		t.Error("the aborted candidate still runs")
	}
	if err := c.m.AbortAllocator(); err == nil {
		t.Error("a second abort with no candidate succeeded")
	}
	if _, err := c.m.SetAllocator(context.Background(), master.SwapRequest{Choice: master.AllocatorChoice{Name: ""}}); err == nil {
		t.Error("a swap without a name was accepted")
	}
}

// TestSwapIsDurable: the registry keeps the swapped choice with its
// config, next to run-time roles, and a new master starts with it.
func TestSwapIsDurable(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry.json")
	c, _ := startSlotMaster(t, master.Config{RegistryPath: reg})
	if _, err := c.m.SetRole("eng", master.RolePatch{Weight: ptr(2.0)}); err != nil {
		t.Fatal(err)
	}
	swap, err := c.m.SetAllocator(context.Background(), master.SwapRequest{
		Choice: master.AllocatorChoice{Name: "drf-next", Config: `min_offer = "cpus:1"`}})
	if err != nil {
		t.Fatal(err)
	}
	waitSwap(t, swap)
	c.stop()
	raw, err := os.ReadFile(reg)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Roles     map[string]json.RawMessage `json:"roles"`
		Allocator *master.AllocatorChoice    `json:"allocator"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if file.Allocator == nil || file.Allocator.Name != "drf-next" || file.Allocator.Config == "" || file.Roles["eng"] == nil {
		t.Fatalf("registry %s", raw)
	}
	c2, _ := startSlotMaster(t, master.Config{RegistryPath: reg})
	st := c2.m.AllocatorStatus()
	if st.Active.Name != "drf-next" || st.History[0].Source != "registry" {
		t.Errorf("restarted master: active %q from %q", st.Active.Name, st.History[0].Source)
	}
}

// TestReloadRoles: a reloaded file changes roles it changed, resets those
// it dropped, and leaves run-time settings alone.
func TestReloadRoles(t *testing.T) {
	c, _ := startSlotMaster(t, master.Config{Roles: map[string]master.RoleConfig{
		"a": {Weight: 1}, "b": {Weight: 2}, "c": {Weight: 3}}})
	if _, err := c.m.SetRole("c", master.RolePatch{Weight: ptr(5.0)}); err != nil {
		t.Fatal(err)
	}
	res, err := c.m.Reload(context.Background(), master.Reload{Allocator: master.AllocatorChoice{Name: "drf"},
		Roles: map[string]master.RoleConfig{"a": {Weight: 4}, "c": {Weight: 9}, "d": {Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Swap != nil {
		t.Error("an unchanged allocator was swapped")
	}
	if strings.Join(res.Roles, ",") != "a,b,d" || strings.Join(res.Kept, ",") != "c" {
		t.Errorf("changed %v kept %v, want a,b,d and c", res.Roles, res.Kept)
	}
	want := map[string]float64{"a": 4, "b": 1, "c": 5, "d": 1}
	for _, r := range c.m.Roles() {
		if w, ok := want[r.Name]; ok && r.Weight != w {
			t.Errorf("role %s weight %v, want %v", r.Name, r.Weight, w)
		}
	}
	if _, err := c.m.Reload(context.Background(), master.Reload{Roles: map[string]master.RoleConfig{"bad name!": {}}}); err == nil {
		t.Error("a reload with an invalid role name was applied")
	}
}
