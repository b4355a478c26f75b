package master_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/plugins/allocator/drf"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// scriptedAllocator serves the real DRF policy and lets a test see every
// snapshot and delta the master sends, add revocations to the next
// response and override reported metrics. It is a seam for master tests
// only: a user never runs it.
type scriptedAllocator struct {
	allocator.Allocator

	mu          sync.Mutex
	generation  uint64
	inits       []*allocator.Snapshot
	deltas      []allocator.Delta
	requests    []allocator.AllocateRequest
	revocations []allocator.Revocation
	metrics     map[string]float64
}

func newScripted(t *testing.T) *scriptedAllocator {
	t.Helper()
	p := drf.NewPlugin()
	if err := p.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	return &scriptedAllocator{Allocator: p, generation: 1}
}

func (s *scriptedAllocator) Current() (allocator.Allocator, master.PluginInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s, master.PluginInfo{Name: "scripted", Version: drf.Version, Generation: s.generation}, nil
}

// restart makes the master see a new plugin process, which it re-Inits.
func (s *scriptedAllocator) restart() {
	s.mu.Lock()
	s.generation++
	s.mu.Unlock()
}

func (s *scriptedAllocator) Init(ctx context.Context, snap *allocator.Snapshot) (uint64, error) {
	s.mu.Lock()
	s.inits = append(s.inits, snap)
	s.mu.Unlock()
	return s.Allocator.Init(ctx, snap)
}

func (s *scriptedAllocator) Allocate(ctx context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	resp, err := s.Allocator.Allocate(ctx, req)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.deltas = append(s.deltas, req.Deltas...)
	s.requests = append(s.requests, *req)
	resp.Revocations = append(resp.Revocations, s.revocations...)
	s.revocations = nil
	for k, v := range s.metrics {
		if resp.Metrics == nil {
			resp.Metrics = map[string]float64{}
		}
		resp.Metrics[k] = v
	}
	return resp, nil
}

// revoke makes the next response carry rs.
func (s *scriptedAllocator) revoke(rs ...allocator.Revocation) {
	s.mu.Lock()
	s.revocations = append(s.revocations, rs...)
	s.mu.Unlock()
}

// findDelta returns the first recorded delta match accepts.
func (s *scriptedAllocator) findDelta(match func(allocator.Delta) bool) (allocator.Delta, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deltas {
		if match(d) {
			return d, true
		}
	}
	return allocator.Delta{}, false
}

// waitDelta waits for a delta match accepts.
func (s *scriptedAllocator) waitDelta(t *testing.T, what string, match func(allocator.Delta) bool) allocator.Delta {
	t.Helper()
	var d allocator.Delta
	waitFor(t, what, func() bool {
		var ok bool
		d, ok = s.findDelta(match)
		return ok
	})
	return d
}

// waitInit waits for the plugin's first Init: changes made after it reach
// the plugin as deltas rather than folded into the snapshot.
func (s *scriptedAllocator) waitInit(t *testing.T) {
	t.Helper()
	waitFor(t, "the plugin's first Init", func() bool { return s.initCount() > 0 })
}

func (s *scriptedAllocator) initCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inits)
}

func (s *scriptedAllocator) lastInit() *allocator.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inits) == 0 {
		return nil
	}
	return s.inits[len(s.inits)-1]
}

func taskDelta(kind allocator.DeltaKind, id string) func(allocator.Delta) bool {
	return func(d allocator.Delta) bool {
		if d.Kind != kind {
			return false
		}
		if d.Task != nil {
			return d.Task.ID == id
		}
		return d.TaskID == id
	}
}

// acceptTasks launches tasks on offer o, returning the rest of the offer
// with the given filter, and checks that the agent is told to run them.
func (f *wireFramework) acceptTasks(a *wireAgent, o *corralpb.Offer, refuse float64, tasks ...*corralpb.TaskInfo) {
	f.t.Helper()
	if _, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o.Id},
		Operations: launch(tasks...), Filters: &corralpb.Filters{RefuseSeconds: ptr(refuse)}}); err != nil {
		f.t.Fatal(err)
	}
	for range tasks {
		if a.next("run task").GetRunTask() == nil {
			f.t.Fatal("agent was not told to run a task")
		}
	}
}

// TestTaskFactsReachAllocator: launches add tasks, terminal updates remove
// them, and the WithinGuarantee flags follow the guarantee rule (oldest
// first, nearest guaranteed ancestor) through task and guarantee changes,
// in deltas as in the snapshot of a restarted plugin.
func TestTaskFactsReachAllocator(t *testing.T) {
	s := newScripted(t)
	c := startMasterWith(t, master.Config{Roles: map[string]master.RoleConfig{
		"eng": {Guarantee: resources.MustParse("cpus:2")},
	}}, s)
	a := c.addAgent("", "cpus:4;mem:4096")
	f := c.subscribe("fw", "eng/ml")
	fid := f.header.FrameworkId
	f.acceptTasks(a, f.offers()[0], 0, task("t1", "cpus:1;mem:64"), task("t2", "cpus:1;mem:64"), task("t3", "cpus:1;mem:64"))

	// Same start time: ties go by framework then task ID, so t1 and t2
	// fill eng's guarantee of 2 cpus and t3 is outside it.
	for id, want := range map[string]bool{"t1": true, "t2": true, "t3": false} {
		d := s.waitDelta(t, "TaskAdded "+id, taskDelta(allocator.TaskAdded, id))
		tk := d.Task
		if tk.WithinGuarantee != want || tk.FrameworkID != fid || tk.Role != "eng/ml" || tk.AgentID != a.id ||
			!tk.Resources.Equal(resources.MustParse("cpus:1;mem:64")) || tk.StartedAt > d.At {
			t.Errorf("TaskAdded %s = %+v at %d, want within=%v of %s/eng/ml on %s", id, *tk, d.At, want, fid, a.id)
		}
	}

	// t1 ends: it leaves the books and t3 moves inside the guarantee.
	a.update(fid, "t1", corralpb.TaskState_TASK_FINISHED, []byte{1})
	f.update("t1")
	s.waitDelta(t, "TaskRemoved t1", func(d allocator.Delta) bool {
		return d.Kind == allocator.TaskRemoved && d.TaskID == "t1" && d.FrameworkID == fid
	})
	s.waitDelta(t, "t3 within the guarantee", func(d allocator.Delta) bool {
		return taskDelta(allocator.TaskUpdated, "t3")(d) && d.Task.WithinGuarantee
	})

	// A smaller guarantee: only the oldest (t2) stays protected.
	if _, err := c.m.SetRole("eng", master.RolePatch{Guarantee: ptr(resources.MustParse("cpus:1"))}); err != nil {
		t.Fatal(err)
	}
	s.waitDelta(t, "RoleUpdated eng", func(d allocator.Delta) bool {
		return d.Kind == allocator.RoleUpdated && d.Role.Name == "eng" && d.Role.Guarantee.Equal(resources.MustParse("cpus:1"))
	})
	s.waitDelta(t, "t3 outside the guarantee", func(d allocator.Delta) bool {
		return taskDelta(allocator.TaskUpdated, "t3")(d) && !d.Task.WithinGuarantee
	})
	if _, ok := s.findDelta(taskDelta(allocator.TaskUpdated, "t2")); ok {
		t.Error("t2 was reported as changed, but it stayed within the guarantee throughout")
	}

	// eng/ml's own guarantee takes over from eng's for its tasks.
	if _, err := c.m.SetRole("eng/ml", master.RolePatch{Guarantee: ptr(resources.MustParse("cpus:3"))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both tasks within eng/ml's guarantee in the operator view", func() bool {
		fw := c.m.Snapshot().Frameworks[0]
		return len(fw.Tasks) == 2 && fw.Tasks[0].WithinGuarantee && fw.Tasks[1].WithinGuarantee
	})

	// A new plugin process gets every live task in its snapshot.
	s.restart()
	waitFor(t, "re-Init", func() bool { return s.initCount() >= 2 })
	snap := s.lastInit()
	if len(snap.Tasks) != 2 || snap.Tasks[0].ID != "t2" || snap.Tasks[1].ID != "t3" ||
		!snap.Tasks[0].WithinGuarantee || !snap.Tasks[1].WithinGuarantee {
		t.Errorf("snapshot tasks = %+v, want t2 and t3 within the guarantee", snap.Tasks)
	}
	var roles []string
	for _, r := range snap.Roles {
		roles = append(roles, r.Name+"="+r.Guarantee.String())
	}
	if got := strings.Join(roles, " "); got != "eng=cpus:1 eng/ml=cpus:3" {
		t.Errorf("snapshot roles = %s", got)
	}

	// A framework torn down takes its tasks with it.
	if _, err := f.client.Teardown(context.Background(), &corralpb.TeardownRequest{Header: f.header}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t2", "t3"} {
		s.waitDelta(t, "TaskRemoved "+id, taskDelta(allocator.TaskRemoved, id))
	}
}

func TestRolesSetGetPersistAndReload(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "master", "registry.json") // directory made on first write
	cfg := master.Config{RegistryPath: registry, Roles: map[string]master.RoleConfig{
		"eng": {Weight: 1, Limit: resources.MustParse("cpus:10")},
		"ops": {Weight: 3},
	}}
	s := newScripted(t)
	c := startMasterWith(t, cfg, s)
	s.waitInit(t)

	v, err := c.m.SetRole("eng/ml", master.RolePatch{Weight: ptr(2.0), Priority: ptr(int64(10)),
		Guarantee: ptr(resources.MustParse("cpus:4;mem:1024")), Limit: ptr(resources.MustParse("cpus:8"))})
	if err != nil {
		t.Fatal(err)
	}
	want := master.RoleView{Name: "eng/ml", Weight: 2, Priority: 10, Guarantee: "cpus:4;mem:1024", Limit: "cpus:8", Frameworks: []string{}}
	if !roleViewEqual(v, want) {
		t.Fatalf("SetRole = %+v, want %+v", v, want)
	}
	s.waitDelta(t, "RoleUpdated eng/ml with every setting", func(d allocator.Delta) bool {
		r := d.Role
		return d.Kind == allocator.RoleUpdated && r.Name == "eng/ml" && r.Weight == 2 && r.Priority == 10 &&
			r.Guarantee.Equal(resources.MustParse("cpus:4;mem:1024")) && r.Limit.Equal(resources.MustParse("cpus:8"))
	})
	// A patch changes only what it names.
	if v, err = c.m.SetRole("ops", master.RolePatch{Priority: ptr(int64(5))}); err != nil || v.Weight != 3 || v.Priority != 5 {
		t.Fatalf("SetRole ops priority = %+v, %v; want weight 3 (from the config) and priority 5", v, err)
	}
	if got, ok := c.m.Role("eng/ml"); !ok || !roleViewEqual(got, want) {
		t.Fatalf("Role(eng/ml) = %+v, %v", got, ok)
	}
	var names []string
	for _, r := range c.m.Roles() {
		names = append(names, r.Name)
	}
	if strings.Join(names, " ") != "eng eng/ml ops" {
		t.Fatalf("Roles() = %v", names)
	}

	// Invalid changes are refused with a typed error and change nothing.
	before, err := os.ReadFile(registry)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name  string
		role  string
		patch master.RolePatch
		field string
		msg   string
	}{
		{"zero weight", "ops", master.RolePatch{Weight: ptr(0.0)}, "weight", "must be a positive number, got 0"},
		{"bad name", "eng//x", master.RolePatch{Weight: ptr(1.0)}, "name", "empty path component"},
		{"guarantee above limit", "eng/ml", master.RolePatch{Guarantee: ptr(resources.MustParse("cpus:9"))}, "guarantee",
			"guarantee cpus:9 is above the limit cpus:8 on cpus (9 > 8)"},
		{"siblings above the parent's limit", "eng/web", master.RolePatch{Guarantee: ptr(resources.MustParse("cpus:7"))}, "guarantee",
			`guarantee cpus:7 of role "eng/web" and its siblings' (eng/ml cpus:4) add up to cpus:11, above the limit cpus:10 of parent role "eng"`},
		{"parent limit below its children", "eng", master.RolePatch{Limit: ptr(resources.MustParse("cpus:3"))}, "limit",
			`limit cpus:3 of role "eng" is below the guarantees of its children (eng/ml cpus:4), which add up to cpus:4`},
		{"quota on *", "*", master.RolePatch{Limit: ptr(resources.MustParse("cpus:1"))}, "limit", `the default role "*" cannot have quota`},
		{"ranges in quota", "ops", master.RolePatch{Guarantee: ptr(resources.MustParse("ports:[1-2]"))}, "guarantee", "scalar resources only"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.m.SetRole(tc.role, tc.patch)
			var verr *master.ValidationError
			if !errors.As(err, &verr) || verr.Field != tc.field || !strings.Contains(verr.Msg, tc.msg) {
				t.Fatalf("got %v, want a ValidationError on %s containing %q", err, tc.field, tc.msg)
			}
		})
	}
	if after, _ := os.ReadFile(registry); !bytes.Equal(before, after) {
		t.Errorf("a refused change rewrote the registry:\n%s", after)
	}
	if got, _ := c.m.Role("eng/ml"); !roleViewEqual(got, want) {
		t.Errorf("a refused change altered eng/ml: %+v", got)
	}

	// A new master on the same registry: run-time changes win over the
	// configuration for the roles they touched, the rest is configuration.
	c.stop()
	cfg.Roles["ops"] = master.RoleConfig{Weight: 4}
	s2 := newScripted(t)
	c2 := startMasterWith(t, cfg, s2)
	if got, ok := c2.m.Role("eng/ml"); !ok || !roleViewEqual(got, want) {
		t.Errorf("after restart Role(eng/ml) = %+v, %v; want %+v", got, ok, want)
	}
	if got, _ := c2.m.Role("ops"); got.Weight != 3 || got.Priority != 5 {
		t.Errorf("after restart ops = %+v, want the stored weight 3 and priority 5 over the config's weight 4", got)
	}
	if got, _ := c2.m.Role("eng"); got.Limit != "cpus:10" {
		t.Errorf("after restart eng = %+v, want its configured limit", got)
	}
	c2.addAgent("", "cpus:1;mem:128") // the first cycle Inits the plugin
	waitFor(t, "Init of the restarted master's plugin", func() bool { return s2.lastInit() != nil })
	found := false
	for _, r := range s2.lastInit().Roles {
		if r.Name == "eng/ml" {
			found = r.Weight == 2 && r.Priority == 10 && r.Limit.Equal(resources.MustParse("cpus:8"))
		}
	}
	if !found {
		t.Errorf("the restarted master's snapshot lacks eng/ml's stored settings: %+v", s2.lastInit().Roles)
	}
	// Clearing a guarantee is a change too.
	if v, err := c2.m.SetRole("eng/ml", master.RolePatch{Guarantee: ptr(resources.Resources{})}); err != nil || v.Guarantee != "" {
		t.Fatalf("clearing the guarantee: %+v, %v", v, err)
	}
}

func roleViewEqual(a, b master.RoleView) bool {
	return a.Name == b.Name && a.Weight == b.Weight && a.Priority == b.Priority && a.Guarantee == b.Guarantee &&
		a.Limit == b.Limit && strings.Join(a.Frameworks, ",") == strings.Join(b.Frameworks, ",")
}

// TestBadRegistryFailsStartup: a registry that cannot be read stops the
// master with an error naming the file, instead of dropping the
// operator's changes.
func TestBadRegistryFailsStartup(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":          "{roles:",
		"bad resources":     `{"roles": {"eng": {"guarantee": "cpus:x"}}}`,
		"bad role":          `{"roles": {"eng//x": {"weight": 2}}}`,
		"guarantee > limit": `{"roles": {"eng": {"guarantee": "cpus:3", "limit": "cpus:2"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.json")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := master.New(master.Config{RegistryPath: path}, master.Deps{})
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("New with a bad registry: %v, want an error naming %s", err, path)
			}
		})
	}
}

// TestSharesComeFromThePlugin: the operator sees the shares the plugin
// reported, and 0 for a role it reported nothing for.
func TestSharesComeFromThePlugin(t *testing.T) {
	s := newScripted(t)
	c := startMasterWith(t, master.Config{Roles: map[string]master.RoleConfig{"idle": {Weight: 2}}}, s)
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw", "r")
	s.mu.Lock()
	s.metrics = map[string]float64{"share/role/r": 0.125, "share/framework/" + f.header.FrameworkId: 0.375}
	s.mu.Unlock()
	waitFor(t, "the plugin's shares in the operator view", func() bool {
		st := c.m.Snapshot()
		return len(st.Frameworks) == 1 && st.Frameworks[0].DominantShare == 0.375 && len(st.Roles) == 2 &&
			st.Roles[1].Name == "r" && st.Roles[1].DominantShare == 0.125
	})
	if r, _ := c.m.Role("idle"); r.DominantShare != 0 || r.Weight != 2 {
		t.Errorf("idle role = %+v, want weight 2 and share 0", r)
	}
}

func TestRevokeAfterReachesThePlugin(t *testing.T) {
	s := newScripted(t)
	c := startMasterWith(t, master.Config{RevokeAfter: 90 * time.Second}, s)
	c.addAgent("", "cpus:1;mem:128")
	waitFor(t, "an Allocate call", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.requests) > 0
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.requests[0].RevokeAfter; got != 90000 {
		t.Fatalf("RevokeAfter = %d logical ms, want 90000", got)
	}
}

func TestSubscribeCapabilitiesAndMinAllocatable(t *testing.T) {
	s := newScripted(t)
	c := startMasterWith(t, master.Config{}, s)
	s.waitInit(t)
	minAlloc := func(alts ...string) *corralpb.MinAllocatable {
		var rs []resources.Resources
		for _, a := range alts {
			rs = append(rs, resources.MustParse(a))
		}
		return allocator.MinAllocatableToProto(rs)
	}
	f := c.subscribeInfo(&corralpb.FrameworkInfo{Name: "gpu", Roles: []string{"ml", "web"},
		Capabilities:   []string{allocator.CapabilityGPUResources},
		MinAllocatable: map[string]*corralpb.MinAllocatable{"ml": minAlloc("cpus:1;mem:512", "gpus:1")}})
	d := s.waitDelta(t, "FrameworkAdded", func(d allocator.Delta) bool {
		return d.Kind == allocator.FrameworkAdded && d.Framework.ID == f.header.FrameworkId
	})
	fw := d.Framework
	if len(fw.Capabilities) != 1 || fw.Capabilities[0] != allocator.CapabilityGPUResources {
		t.Errorf("capabilities = %v", fw.Capabilities)
	}
	if alts := fw.MinAllocatable["ml"]; len(fw.MinAllocatable) != 1 || len(alts) != 2 ||
		!alts[0].Equal(resources.MustParse("cpus:1;mem:512")) || !alts[1].Equal(resources.MustParse("gpus:1")) {
		t.Errorf("min allocatable = %v", fw.MinAllocatable)
	}

	client := corralpb.NewSchedulerClient(c.conn)
	for _, tc := range []struct {
		name string
		min  map[string]*corralpb.MinAllocatable
		want string
	}{
		{"foreign role", map[string]*corralpb.MinAllocatable{"other": minAlloc("cpus:1")},
			`min_allocatable names role "other", which is not one of the framework's roles [ml]`},
		{"empty alternative", map[string]*corralpb.MinAllocatable{"ml": {Alternatives: []*corralpb.ResourceList{{}}}},
			`min_allocatable of role "ml": alternative 0 is empty`},
		{"no alternatives", map[string]*corralpb.MinAllocatable{"ml": {}}, `min_allocatable of role "ml" lists no alternatives`},
		{"invalid alternative", map[string]*corralpb.MinAllocatable{"ml": {Alternatives: []*corralpb.ResourceList{{
			Resources: []*corralpb.Resource{{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: -1}}}}}}},
			`min_allocatable of role "ml": alternative 0:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := client.Subscribe(context.Background(), &corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{
				Name: "x", Roles: []string{"ml"}, MinAllocatable: tc.min}})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument with %q", err, tc.want)
			}
		})
	}
}

// syncBuffer is a log sink tests can read while the master writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestRevocation follows a revocation from the plugin to the kill: the
// framework gets an inverse offer, the agent gets the kill only once the
// grace period is over, the framework learns the task was preempted, and
// revocations the books do not allow (a task within its guarantee, one
// that would take its role below the guarantee, unknown tasks, a second
// revocation of the same task) are refused.
func TestRevocation(t *testing.T) {
	const grace = 300 * time.Millisecond
	s := newScripted(t)
	logs := &syncBuffer{}
	c := startMasterDeps(t, master.Config{RevokeGrace: grace, Roles: map[string]master.RoleConfig{
		"gold": {Guarantee: resources.MustParse("cpus:1.5")},
	}}, master.Deps{Allocator: s, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})})
	a := c.addAgent("", "cpus:4;mem:4096")
	gold := c.subscribe("gold", "gold")
	// g1 fills the guarantee; g2 is outside it, but the guarantee still
	// needs its cpu (2 - 1 < 1.5).
	gold.acceptTasks(a, gold.offers()[0], 3600, task("g1", "cpus:1;mem:128"), task("g2", "cpus:1;mem:128"))
	batch := c.subscribe("batch", "batch")
	batch.acceptTasks(a, batch.offers()[0], 3600, task("b1", "cpus:1;mem:128"))
	gid, bid := gold.header.FrameworkId, batch.header.FrameworkId
	waitFor(t, "g2 outside the guarantee", func() bool {
		_, ok := s.findDelta(func(d allocator.Delta) bool {
			return taskDelta(allocator.TaskAdded, "g2")(d) && !d.Task.WithinGuarantee
		})
		return ok
	})

	s.revoke(
		allocator.Revocation{FrameworkID: gid, TaskID: "g1", AgentID: a.id, Reason: allocator.RevokePreemption},
		allocator.Revocation{FrameworkID: gid, TaskID: "g2", AgentID: a.id, Reason: allocator.RevokePreemption},
		allocator.Revocation{FrameworkID: bid, TaskID: "nope", AgentID: a.id, Reason: allocator.RevokePreemption},
		allocator.Revocation{FrameworkID: bid, TaskID: "b1", AgentID: "agent-elsewhere", Reason: allocator.RevokePreemption},
		allocator.Revocation{FrameworkID: bid, TaskID: "b1", AgentID: a.id, Reason: allocator.RevokePreemption},
		allocator.Revocation{FrameworkID: bid, TaskID: "b1", AgentID: a.id, Reason: allocator.RevokeLongTask},
	)
	ev := batch.next("inverse offer", func(e *corralpb.Event) bool { return e.GetInverseOffers() != nil })
	arrived := time.Now()
	ios := ev.GetInverseOffers().InverseOffers
	if len(ios) != 1 {
		t.Fatalf("inverse offers = %v, want one for b1", ios)
	}
	io := ios[0]
	deadline := time.UnixMilli(io.DeadlineUnixMs)
	if io.TaskId != "b1" || io.FrameworkId != bid || io.AgentId != a.id || io.Reason != allocator.RevokePreemption ||
		io.GraceSeconds != grace.Seconds() || io.Id == "" ||
		!resources.MustFromProto(io.Resources).Equal(resources.MustParse("cpus:1;mem:128")) {
		t.Fatalf("inverse offer = %v", io)
	}
	if d := deadline.Sub(arrived); d > grace {
		t.Fatalf("deadline %v after the inverse offer arrived, more than the %v grace", d, grace)
	}
	st := c.m.Snapshot()
	var b1 master.TaskView
	for _, f := range st.Frameworks {
		for _, tv := range f.Tasks {
			switch {
			case tv.ID == "b1":
				b1 = tv
			case tv.Revocation != nil:
				t.Errorf("task %s is being revoked: %+v", tv.ID, tv.Revocation)
			}
		}
	}
	if rv := b1.Revocation; rv == nil || rv.Reason != allocator.RevokePreemption || rv.DeadlineUnixMs != io.DeadlineUnixMs ||
		rv.InverseOfferID != io.Id {
		t.Fatalf("operator view of b1 = %+v, want its pending revocation", b1)
	}

	msg := a.next("kill of b1")
	k := msg.GetKillTask()
	if k == nil {
		t.Fatalf("agent got %v while waiting for the kill", msg)
	}
	if k.TaskId != "b1" || k.FrameworkId != bid {
		t.Fatalf("agent told to kill %s of %s; only b1 was validly revoked", k.TaskId, k.FrameworkId)
	}
	if at := a.arrival(msg); at.Before(deadline) {
		t.Fatalf("kill arrived at %s, %v before the grace period ended", at.Format(time.StampMilli), deadline.Sub(at))
	} else {
		t.Logf("kill arrived %v after the deadline", at.Sub(deadline))
	}

	a.update(bid, "b1", corralpb.TaskState_TASK_KILLED, []byte{7})
	up := batch.update("b1")
	if up.State != corralpb.TaskState_TASK_KILLED || up.Reason != corralpb.TaskStatus_REASON_PREEMPTED ||
		!strings.Contains(up.Message, "revoked by the allocator for preemption after the grace period") || string(up.Uuid) != "\x07" {
		t.Fatalf("terminal update = %v, want TASK_KILLED with REASON_PREEMPTED", up)
	}

	for _, want := range []string{
		"task is within its role's guarantee",
		"revoking it would leave role gold below its guarantee on cpus (1 of 1.5)",
		"not a live task of the framework",
		"task runs on agent " + a.id,
		"task is already being revoked",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log of a revocation refused because %q", want)
		}
	}
	reg := c.m.Registry()
	if n := metricValue(t, reg, "corral_master_revocations_total", map[string]string{"reason": "preemption"}); n != 1 {
		t.Errorf("revocations_total{preemption} = %v, want 1", n)
	}
	if n := metricValue(t, reg, "corral_master_revocations_invalid_total", nil); n != 5 {
		t.Errorf("revocations_invalid_total = %v, want 5", n)
	}
	// The gold framework never heard of a revocation.
	for {
		select {
		case ev := <-gold.events:
			if ev.GetInverseOffers() != nil {
				t.Fatalf("gold got an inverse offer: %v", ev)
			}
			continue
		default:
		}
		break
	}
	for _, f := range c.m.Snapshot().Frameworks {
		if f.ID == bid && (len(f.Tasks) != 0 || len(f.Completed) != 1 || f.Completed[0].Revocation == nil || !f.Completed[0].Revocation.Killed) {
			t.Errorf("batch framework after the preemption: %+v", f)
		}
	}
}

// fakeClock is the master's injected clock for tests that must decide
// exactly when time passes.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestRevocationDroppedWhenTaskEndsFirst: a task that ends during its grace
// period is not killed, and its end is not reported as a preemption.
func TestRevocationDroppedWhenTaskEndsFirst(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := newScripted(t)
	c := startMasterDeps(t, master.Config{RevokeGrace: time.Minute}, master.Deps{Allocator: s, Now: clock.Now})
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw", "r")
	f.acceptTasks(a, f.offers()[0], 3600, task("t1", "cpus:1;mem:64"))
	s.revoke(allocator.Revocation{FrameworkID: f.header.FrameworkId, TaskID: "t1", AgentID: a.id, Reason: allocator.RevokeLongTask})
	io := f.next("inverse offer", func(e *corralpb.Event) bool { return e.GetInverseOffers() != nil }).GetInverseOffers().InverseOffers[0]
	if io.GraceSeconds != 60 || io.DeadlineUnixMs != clock.Now().Add(time.Minute).UnixMilli() {
		t.Fatalf("inverse offer %v, want a minute's grace on the master's clock", io)
	}

	a.update(f.header.FrameworkId, "t1", corralpb.TaskState_TASK_FINISHED, []byte{1})
	if up := f.update("t1"); up.State != corralpb.TaskState_TASK_FINISHED || up.Reason == corralpb.TaskStatus_REASON_PREEMPTED {
		t.Fatalf("update %v, want a plain TASK_FINISHED", up)
	}
	// Past the deadline, with a heartbeat to prove the timer loop ran on
	// the new time (heartbeats and grace deadlines are handled in the same
	// pass): no kill may follow.
	clock.advance(time.Hour)
	f.next("heartbeat after the deadline", func(e *corralpb.Event) bool { return e.GetHeartbeat() != nil })
	a.none(200 * time.Millisecond)
	for _, tv := range c.m.Snapshot().Frameworks[0].Completed {
		if tv.Revocation != nil {
			t.Errorf("finished task still shows a revocation: %+v", tv.Revocation)
		}
	}
}

// TestRevokedTaskEnteringItsGuaranteeIsSpared: a task revoked outside its
// role's guarantee that moves inside it during the grace period (an older
// task ended) is not killed when the grace ends.
func TestRevokedTaskEnteringItsGuaranteeIsSpared(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := newScripted(t)
	c := startMasterDeps(t, master.Config{RevokeGrace: time.Minute, Roles: map[string]master.RoleConfig{
		"r": {Guarantee: resources.MustParse("cpus:2")},
	}}, master.Deps{Allocator: s, Now: clock.Now})
	a := c.addAgent("", "cpus:4;mem:1024")
	f := c.subscribe("fw", "r")
	fid := f.header.FrameworkId
	f.acceptTasks(a, f.offers()[0], 3600, task("a", "cpus:1;mem:64"), task("b", "cpus:1;mem:64"), task("c", "cpus:1;mem:64"))
	// c is outside the guarantee, and revoking it leaves a and b: allowed.
	s.revoke(allocator.Revocation{FrameworkID: fid, TaskID: "c", AgentID: a.id, Reason: allocator.RevokeLongTask})
	f.next("inverse offer", func(e *corralpb.Event) bool { return e.GetInverseOffers() != nil })

	a.update(fid, "a", corralpb.TaskState_TASK_FINISHED, []byte{1})
	f.update("a")
	s.waitDelta(t, "c within the guarantee", func(d allocator.Delta) bool {
		return taskDelta(allocator.TaskUpdated, "c")(d) && d.Task.WithinGuarantee
	})
	clock.advance(time.Hour)
	f.next("heartbeat after the deadline", func(e *corralpb.Event) bool { return e.GetHeartbeat() != nil })
	a.none(200 * time.Millisecond)
	for _, tv := range c.m.Snapshot().Frameworks[0].Tasks {
		if tv.Revocation != nil || (tv.ID == "c" && !tv.WithinGuarantee) {
			t.Errorf("task %+v after the deadline, want c spared and within the guarantee", tv)
		}
	}
}

// A re-initialized plugin gets the decline filters back from the snapshot,
// so a framework is not offered again what it declined for an hour.
func TestFiltersSurvivePluginRestart(t *testing.T) {
	s := newScripted(t)
	c := startMasterWith(t, master.Config{}, s)
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	o := f.offers()[0]
	if _, err := f.client.Decline(context.Background(), &corralpb.DeclineRequest{Header: f.header, OfferIds: []string{o.Id},
		Filters: &corralpb.Filters{RefuseSeconds: ptr(3600.0)}}); err != nil {
		t.Fatal(err)
	}
	s.restart()
	waitFor(t, "a new Init carrying the decline filter", func() bool {
		snap := s.lastInit()
		s.mu.Lock()
		inits := len(s.inits)
		s.mu.Unlock()
		return snap != nil && inits == 2 && len(snap.Filters) == 1 && snap.Filters[0].AgentID == o.AgentId &&
			snap.Filters[0].ExpiresAt-snap.Now > 3590_000
	})
	// Three cycles after the Init, nothing was offered again.
	s.mu.Lock()
	seen := len(s.requests)
	s.mu.Unlock()
	waitFor(t, "three allocation cycles after the restart", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.requests) >= seen+3
	})
	for {
		select {
		case ev := <-f.events:
			if ev.GetOffers() != nil {
				t.Fatalf("declined resources offered again after the plugin restart: %v", ev)
			}
			continue
		default:
		}
		break
	}
}
