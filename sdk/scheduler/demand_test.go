package scheduler

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// fmtRequest renders a RequestCall as "stream role [shape xN, ...]".
func fmtRequest(r *corralpb.RequestCall) string {
	var shapes []string
	for _, s := range r.GetShapes() {
		res, err := resources.FromProto(s.GetResources())
		if err != nil {
			return "invalid: " + err.Error()
		}
		shapes = append(shapes, fmt.Sprintf("%s x%d", res, s.GetCount()))
	}
	return fmt.Sprintf("%s %q [%s]", r.GetHeader().GetStreamId(), r.GetRole(), strings.Join(shapes, ", "))
}

func fmtRequests(rs []*corralpb.RequestCall) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, fmtRequest(r))
	}
	return out
}

func TestShapesToProto(t *testing.T) {
	tests := []struct {
		name    string
		shapes  []TaskShape
		want    string // fmtRequest of the shapes, or the error
		wantErr string
	}{
		{name: "none withdraws", want: `"" []`},
		{name: "two shapes, zero quantities dropped", shapes: []TaskShape{
			{Resources: map[string]float64{"mem": 4096, "cpus": 1, "disk": 0}, Count: 3},
			{Resources: map[string]float64{"cpus": 3, "mem": 1024}, Count: 2},
		}, want: `"" [cpus:1;mem:4096 x3, cpus:3;mem:1024 x2]`},
		{name: "count 0 is dropped", shapes: []TaskShape{
			{Resources: map[string]float64{"cpus": 1}, Count: 0},
			{Resources: map[string]float64{"gpus": 1}, Count: 1},
		}, want: `"" [gpus:1 x1]`},
		{name: "only count 0 withdraws", shapes: []TaskShape{{Resources: map[string]float64{"cpus": 1}}}, want: `"" []`},
		{name: "negative count", shapes: []TaskShape{{Resources: map[string]float64{"cpus": 1}, Count: -1}},
			wantErr: "shape 0: count -1 is out of range"},
		{name: "no resources", shapes: []TaskShape{{Resources: map[string]float64{"cpus": 0}, Count: 1}},
			wantErr: "shape 0 asks for no resources"},
		{name: "negative quantity", shapes: []TaskShape{{Resources: map[string]float64{"cpus": 1}, Count: 1}, {Resources: map[string]float64{"mem": -1}, Count: 1}},
			wantErr: `shape 1: resource "mem": quantity -1 is negative`},
		{name: "NaN", shapes: []TaskShape{{Resources: map[string]float64{"cpus": math.NaN()}, Count: 1}},
			wantErr: `shape 0: resource "cpus": quantity is NaN`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shapesToProto(tt.shapes)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmtRequest(&corralpb.RequestCall{Shapes: got}); s != " "+tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
}

// demandRecorder also notes how many RequestCalls the master had seen when
// each Subscribed callback ran, to check that Run re-declares first.
type demandRecorder struct {
	*recorder
	mu              sync.Mutex
	requestsAtSubsc []int
	inverse         []string
}

func (r *demandRecorder) Subscribed(ctx context.Context, d Driver, id string, reconnected bool) {
	r.mu.Lock()
	r.requestsAtSubsc = append(r.requestsAtSubsc, len(r.m.requestLog()))
	r.mu.Unlock()
	r.recorder.Subscribed(ctx, d, id, reconnected)
}

func (r *demandRecorder) InverseOffers(_ context.Context, _ Driver, offers []*corralpb.InverseOffer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range offers {
		r.inverse = append(r.inverse, fmt.Sprintf("%s %s %g", o.GetTaskId(), o.GetReason(), o.GetGraceSeconds()))
	}
}

func (r *demandRecorder) seen() ([]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requestsAtSubsc), slices.Clone(r.inverse)
}

func TestRequestDeclaresAndRedeclaresAfterReconnect(t *testing.T) {
	m := newFakeMaster(t, nil)
	rec := &demandRecorder{recorder: &recorder{m: m}}
	startRun(t, m, rec, func(c *Config) {
		c.Framework.Roles = []string{"a", "b", "c"}
	})
	first := m.nextSession(t)
	waitFor(t, "subscribed", func() bool { return rec.currentDriver() != nil })
	d := rec.currentDriver()
	ctx := context.Background()

	small := map[string]float64{"cpus": 1, "mem": 4096}
	big := map[string]float64{"cpus": 3, "mem": 1024}
	for _, step := range []struct {
		role   string
		shapes []TaskShape
	}{
		{"a", []TaskShape{{small, 5}}},
		{"a", []TaskShape{{small, 4}, {big, 1}}}, // replaces the first
		{"b", []TaskShape{{big, 2}}},
		{"b", nil},                     // withdrawn: not re-sent
		{"c", []TaskShape{{small, 1}}}, // suppressed below: not re-sent
	} {
		if err := d.Request(ctx, step.role, step.shapes...); err != nil {
			t.Fatalf("Request(%s): %v", step.role, err)
		}
	}
	if err := d.Suppress(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// A local validation error sends nothing and keeps the record.
	if err := d.Request(ctx, "a", TaskShape{Resources: small, Count: -2}); err == nil || !strings.HasPrefix(err.Error(), "request: shape 0") {
		t.Fatalf("Request with a negative count = %v, want a local error", err)
	}
	want := []string{
		`stream-1 "a" [cpus:1;mem:4096 x5]`,
		`stream-1 "a" [cpus:1;mem:4096 x4, cpus:3;mem:1024 x1]`,
		`stream-1 "b" [cpus:3;mem:1024 x2]`,
		`stream-1 "b" []`,
		`stream-1 "c" [cpus:1;mem:4096 x1]`,
	}
	if got := fmtRequests(m.requestLog()); !slices.Equal(got, want) {
		t.Fatalf("requests:\n got %q\nwant %q", got, want)
	}

	first.end <- status.Error(codes.Unavailable, "master restarting")
	second := m.nextSession(t)
	if got := second.req.GetSuppressedRoles(); !slices.Equal(got, []string{"c"}) {
		t.Errorf("re-subscribe suppressed roles = %q, want [c]", got)
	}
	waitFor(t, "second Subscribed callback", func() bool { n, _ := rec.seen(); return len(n) == 2 })
	want = append(want, `stream-2 "a" [cpus:1;mem:4096 x4, cpus:3;mem:1024 x1]`)
	if got := fmtRequests(m.requestLog()); !slices.Equal(got, want) {
		t.Errorf("requests after reconnect:\n got %q\nwant %q", got, want)
	}
	if n, _ := rec.seen(); n[1] != len(want) {
		t.Errorf("Subscribed ran after %d requests, want %d: demand must be re-declared before the callback", n[1], len(want))
	}
}

func TestRequestRoleDefaultsToTheOnlyRole(t *testing.T) {
	m := newFakeMaster(t, nil)
	rec := &recorder{m: m}
	startRun(t, m, rec) // roles ["*"]
	first := m.nextSession(t)
	waitFor(t, "subscribed", func() bool { return rec.currentDriver() != nil })
	ctx := context.Background()
	if err := rec.currentDriver().Request(ctx, "", TaskShape{Resources: map[string]float64{"cpus": 2}, Count: 1}); err != nil {
		t.Fatal(err)
	}
	// Withdrawing under the explicit name must drop what "" declared.
	if err := rec.currentDriver().Request(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	first.end <- status.Error(codes.Unavailable, "restart")
	m.nextSession(t)
	waitFor(t, "re-subscribed", func() bool { return slices.Contains(rec.entries(), "subscribed fw-1 true") })
	want := []string{`stream-1 "" [cpus:2 x1]`, `stream-1 "*" []`}
	if got := fmtRequests(m.requestLog()); !slices.Equal(got, want) {
		t.Errorf("requests:\n got %q\nwant %q (nothing re-sent)", got, want)
	}
}

func TestRequestWhileDisconnected(t *testing.T) {
	d := newDriver(nil, "fw-1", nil, nil)
	err := d.Request(context.Background(), "*", TaskShape{Resources: map[string]float64{"cpus": 1}, Count: 1})
	if err == nil || !strings.Contains(err.Error(), ErrNotSubscribed.Error()) {
		t.Fatalf("err = %v, want ErrNotSubscribed", err)
	}
	if len(d.demand) != 0 {
		t.Errorf("a refused declaration was recorded: %v", d.demand)
	}
}

func inverseEvent(taskIDs ...string) *corralpb.Event {
	var ios []*corralpb.InverseOffer
	for _, id := range taskIDs {
		ios = append(ios, &corralpb.InverseOffer{Id: "io-" + id, FrameworkId: "fw-1", AgentId: "a1", TaskId: id,
			GraceSeconds: 30, Reason: "preempted by role prod"})
	}
	return &corralpb.Event{Event: &corralpb.Event_InverseOffers_{InverseOffers: &corralpb.Event_InverseOffers{InverseOffers: ios}}}
}

func TestInverseOffersReachHandler(t *testing.T) {
	m := newFakeMaster(t, nil)
	rec := &demandRecorder{recorder: &recorder{m: m}}
	startRun(t, m, rec)
	sess := m.nextSession(t)
	sess.events <- inverseEvent("t1", "t2")
	sess.events <- rescindEvent("o-1") // a later event: the inverse offers were handled before it
	waitFor(t, "rescind", func() bool { return slices.Contains(rec.entries(), "rescind o-1") })
	_, got := rec.seen()
	if want := []string{"t1 preempted by role prod 30", "t2 preempted by role prod 30"}; !slices.Equal(got, want) {
		t.Errorf("inverse offers = %q, want %q", got, want)
	}
}

// syncBuffer is written by Run's goroutine and read by the test.
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

func TestInverseOffersLoggedWithoutHandler(t *testing.T) {
	m := newFakeMaster(t, nil)
	rec := &recorder{m: m}
	var logs syncBuffer
	startRun(t, m, rec, func(c *Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &logs})
	})
	sess := m.nextSession(t)
	sess.events <- inverseEvent("t7")
	sess.events <- rescindEvent("o-1")
	waitFor(t, "rescind", func() bool { return slices.Contains(rec.entries(), "rescind o-1") })
	out := logs.String()
	for _, w := range []string{"task revoked by the allocator", "task_id=t7", "grace_seconds=30", `reason="preempted by role prod"`} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
}

// Capabilities and per-role minimum offers are the framework's to set in
// Config.Framework; Run must carry them on every subscription.
func TestFrameworkCapabilitiesAndMinAllocatablePassThrough(t *testing.T) {
	m := newFakeMaster(t, nil)
	rec := &recorder{m: m}
	minCPU := &corralpb.MinAllocatable{Alternatives: []*corralpb.ResourceList{
		{Resources: resources.MustParse("cpus:1").ToProto()},
		{Resources: resources.MustParse("gpus:1").ToProto()},
	}}
	startRun(t, m, rec, func(c *Config) {
		c.Framework.Capabilities = []string{CapabilityGPUResources}
		c.Framework.MinAllocatable = map[string]*corralpb.MinAllocatable{"*": minCPU}
	})
	first := m.nextSession(t)
	first.end <- status.Error(codes.Unavailable, "restart")
	second := m.nextSession(t)
	for i, s := range []*session{first, second} {
		fw := s.req.GetFramework()
		if !slices.Equal(fw.GetCapabilities(), []string{"GPU_RESOURCES"}) {
			t.Errorf("subscription %d: capabilities %q", i+1, fw.GetCapabilities())
		}
		alts := fw.GetMinAllocatable()["*"].GetAlternatives()
		if len(alts) != 2 || alts[1].GetResources()[0].GetName() != "gpus" {
			t.Errorf("subscription %d: min_allocatable %v", i+1, fw.GetMinAllocatable())
		}
	}
}
