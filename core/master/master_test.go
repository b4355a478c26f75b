package master_test

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/plugins/allocator/drf"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// TestAcceptRejectsBadInput checks every validation rule of ACCEPT: each bad
// call gets an error naming the problem, nothing reaches the agent, and the
// offer stays usable for a corrected call.
func TestAcceptRejectsBadInput(t *testing.T) {
	c := startMaster(t, master.Config{})
	f := c.subscribe("fw", "r")
	other := c.subscribe("other", "r2")
	if _, err := other.client.Suppress(context.Background(), &corralpb.SuppressRequest{Header: other.header}); err != nil {
		t.Fatal(err)
	}
	// Agents only now: added before the suppression, a cycle on a loaded
	// machine could offer one to other, which holds it (CI: timed out
	// waiting for f's offers).
	a1 := c.addAgent("", "cpus:4;mem:4096")
	a2 := c.addAgent("", "cpus:4;mem:4096")

	// With the other framework suppressed, DRF offers both agents to f.
	byAgent := map[string]*corralpb.Offer{}
	for len(byAgent) < 2 {
		for _, o := range f.offers() {
			byAgent[o.AgentId] = o
		}
	}
	var o1 *corralpb.Offer
	for _, o := range byAgent {
		o1 = o
		break
	}
	nan := &corralpb.TaskInfo{TaskId: "nan", Command: &corralpb.CommandInfo{Value: "true"},
		Resources: []*corralpb.Resource{{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: math.NaN()}}}}
	neg := &corralpb.TaskInfo{TaskId: "neg", Command: &corralpb.CommandInfo{Value: "true"},
		Resources: []*corralpb.Resource{{Name: "mem", Value: &corralpb.Resource_Scalar{Scalar: -1}}}}
	noCmd := task("nocmd", "cpus:1")
	noCmd.Command = nil

	cases := []struct {
		name   string
		req    *corralpb.AcceptRequest
		code   codes.Code
		reason string
	}{
		{"unknown offer", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{"offer-nope"}, Operations: launch(task("t", "cpus:1"))},
			codes.NotFound, "does not exist"},
		{"no offers", &corralpb.AcceptRequest{Header: f.header, Operations: launch(task("t", "cpus:1"))},
			codes.InvalidArgument, "no offer_ids"},
		{"offer listed twice", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id, o1.Id}, Operations: launch(task("t", "cpus:1"))},
			codes.InvalidArgument, "listed twice"},
		{"beyond the offer", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(task("t", "cpus:5"))},
			codes.InvalidArgument, "tasks need cpus:5"},
		{"duplicate task IDs", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(task("t", "cpus:1"), task("t", "cpus:1"))},
			codes.InvalidArgument, "appears twice"},
		{"NaN quantity", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(nan)},
			codes.InvalidArgument, "NaN"},
		{"negative quantity", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(neg)},
			codes.InvalidArgument, "negative"},
		{"empty task ID", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(task("", "cpus:1"))},
			codes.InvalidArgument, "no task_id"},
		{"task ID with slash", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(task("a/b", "cpus:1"))},
			codes.InvalidArgument, "not usable as a sandbox name"},
		{"no command", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(noCmd)},
			codes.InvalidArgument, "has no command"},
		{"no resources", &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id}, Operations: launch(task("t", "disk:1"))},
			codes.InvalidArgument, "some cpus or mem"},
		{"stale stream", &corralpb.AcceptRequest{Header: &corralpb.CallHeader{FrameworkId: f.header.FrameworkId, StreamId: "old"},
			OfferIds: []string{o1.Id}, Operations: launch(task("t", "cpus:1"))}, codes.FailedPrecondition, "subscribe again"},
		{"unknown framework", &corralpb.AcceptRequest{Header: &corralpb.CallHeader{FrameworkId: "fw-nope"},
			OfferIds: []string{o1.Id}, Operations: launch(task("t", "cpus:1"))}, codes.NotFound, "not registered"},
		{"another framework's offer", &corralpb.AcceptRequest{Header: other.header, OfferIds: []string{o1.Id}, Operations: launch(task("t", "cpus:1"))},
			codes.PermissionDenied, "another framework"},
	}
	{
		var ids []string
		for _, o := range byAgent {
			ids = append(ids, o.Id)
		}
		cases = append(cases, struct {
			name   string
			req    *corralpb.AcceptRequest
			code   codes.Code
			reason string
		}{"offers of two agents", &corralpb.AcceptRequest{Header: f.header, OfferIds: ids, Operations: launch(task("t", "cpus:1"))},
			codes.InvalidArgument, "different agents"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client.Accept(context.Background(), tc.req)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want code %v with %q", err, tc.code, tc.reason)
			}
		})
	}
	a1.none(100 * time.Millisecond)
	a2.none(0)

	// The offer survived every bad call: a correct accept launches.
	if _, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id},
		Operations: launch(task("good", "cpus:1;mem:128")), Filters: &corralpb.Filters{RefuseSeconds: ptr(0.0)}}); err != nil {
		t.Fatalf("valid accept after bad ones: %v", err)
	}
	target := a1
	if o1.AgentId == a2.id {
		target = a2
	}
	if rt := target.next("run task").GetRunTask(); rt == nil || rt.Task.TaskId != "good" {
		t.Fatalf("agent got %v, want RunTask good", rt)
	}
	// Used offers are gone, and a live task ID cannot be reused.
	_, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o1.Id},
		Operations: launch(task("good2", "cpus:1"))})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("reusing an accepted offer: got %v, want NotFound", err)
	}
	for {
		offers := f.offers()
		for _, o := range offers {
			if o.AgentId != o1.AgentId {
				continue
			}
			_, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o.Id},
				Operations: launch(task("good", "cpus:1"))})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "already in use") {
				t.Fatalf("duplicate live task ID: got %v", err)
			}
			return
		}
		ids := make([]string, len(offers))
		for i, o := range offers {
			ids[i] = o.Id
		}
		if _, err := f.client.Decline(context.Background(), &corralpb.DeclineRequest{Header: f.header, OfferIds: ids,
			Filters: &corralpb.Filters{RefuseSeconds: ptr(0.0)}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOtherCallsRejectBadInput(t *testing.T) {
	c := startMaster(t, master.Config{MaxMessageBytes: 16})
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	ctx := context.Background()
	cases := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"decline unknown offer", func() error {
			_, err := f.client.Decline(ctx, &corralpb.DeclineRequest{Header: f.header, OfferIds: []string{"offer-x"}})
			return err
		}, codes.NotFound, "does not exist"},
		{"decline NaN filter", func() error {
			_, err := f.client.Decline(ctx, &corralpb.DeclineRequest{Header: f.header, OfferIds: []string{"offer-x"},
				Filters: &corralpb.Filters{RefuseSeconds: ptr(math.NaN())}})
			return err
		}, codes.InvalidArgument, "refuse_seconds"},
		{"kill unknown task", func() error {
			_, err := f.client.Kill(ctx, &corralpb.KillRequest{Header: f.header, TaskId: "ghost"})
			return err
		}, codes.NotFound, "not a live task"},
		{"oversized message", func() error {
			_, err := f.client.Message(ctx, &corralpb.MessageRequest{Header: f.header, TaskId: "t", Data: make([]byte, 17)})
			return err
		}, codes.InvalidArgument, "exceed the limit of 16 bytes"},
		{"ack without uuid", func() error {
			_, err := f.client.Acknowledge(ctx, &corralpb.AcknowledgeRequest{Header: f.header, TaskId: "t", AgentId: "a"})
			return err
		}, codes.InvalidArgument, "uuid is required"},
		{"suppress a foreign role", func() error {
			_, err := f.client.Suppress(ctx, &corralpb.SuppressRequest{Header: f.header, Roles: []string{"nope"}})
			return err
		}, codes.InvalidArgument, "not one of the framework's roles"},
		{"request a foreign role", func() error {
			_, err := f.client.Request(ctx, &corralpb.RequestCall{Header: f.header, Role: "nope",
				Shapes: []*corralpb.TaskShape{{Resources: resources.MustParse("cpus:1").ToProto(), Count: 1}}})
			return err
		}, codes.InvalidArgument, "not one of the framework's roles"},
		{"request an empty shape", func() error {
			_, err := f.client.Request(ctx, &corralpb.RequestCall{Header: f.header, Shapes: []*corralpb.TaskShape{{Count: 2}}})
			return err
		}, codes.InvalidArgument, "shape 0 asks for no resources"},
		{"request zero tasks", func() error {
			_, err := f.client.Request(ctx, &corralpb.RequestCall{Header: f.header,
				Shapes: []*corralpb.TaskShape{{Resources: resources.MustParse("cpus:1").ToProto()}}})
			return err
		}, codes.InvalidArgument, "shape 0 has count 0"},
		{"request without header", func() error {
			_, err := f.client.Request(ctx, &corralpb.RequestCall{})
			return err
		}, codes.InvalidArgument, "header with framework_id is required"},
		{"subscribe with bad hierarchical role", func() error {
			s, err := f.client.Subscribe(ctx, &corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{Name: "x", Roles: []string{"eng//ml"}}})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument, "empty path component"},
		{"subscribe without name", func() error {
			s, err := f.client.Subscribe(ctx, &corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{}})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument, "name is required"},
		{"subscribe with bad role", func() error {
			s, err := f.client.Subscribe(ctx, &corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{Name: "x", Roles: []string{"a b"}}})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument, "whitespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want code %v with %q", err, tc.code, tc.reason)
			}
		})
	}
}

// TestStatusUpdatesRelayedAndAcknowledged follows one task: the agent's
// updates reach the framework with their uuid, the acknowledgement reaches
// the agent, and a terminal update returns the resources to the pool.
func TestStatusUpdatesRelayedAndAcknowledged(t *testing.T) {
	c := startMaster(t, master.Config{})
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	f.launchOne(a, "t1", "cpus:1;mem:256")
	for i, state := range []corralpb.TaskState{corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FINISHED} {
		uuid := []byte{byte(i + 1), 2, 3}
		a.update(f.header.FrameworkId, "t1", state, uuid)
		st := f.update("t1")
		if st.State != state || string(st.Uuid) != string(uuid) || st.AgentId != a.id {
			t.Fatalf("framework got %v, want %v with uuid %v from %s", st, state, uuid, a.id)
		}
		if _, err := f.client.Acknowledge(context.Background(), &corralpb.AcknowledgeRequest{Header: f.header,
			AgentId: a.id, TaskId: "t1", Uuid: uuid}); err != nil {
			t.Fatal(err)
		}
		ack := a.next("ack").GetAck()
		if ack == nil || ack.TaskId != "t1" || string(ack.Uuid) != string(uuid) {
			t.Fatalf("agent got %v, want ack of %v", ack, uuid)
		}
	}
	// The whole agent is offered again once t1 finished and the remainder
	// of the first offer came back.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, o := range f.offers() {
			r := resources.MustFromProto(o.Resources)
			if r.Scalar("cpus") == 2 && r.Scalar("mem") == 1024 {
				return
			}
			_, _ = f.client.Decline(context.Background(), &corralpb.DeclineRequest{Header: f.header, OfferIds: []string{o.Id},
				Filters: &corralpb.Filters{RefuseSeconds: ptr(0.0)}})
		}
	}
	t.Fatal("the finished task's resources never came back")
}

func TestDeclineFilterAndRevive(t *testing.T) {
	c := startMaster(t, master.Config{})
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	o := f.offers()[0]
	declined := time.Now()
	if _, err := f.client.Decline(context.Background(), &corralpb.DeclineRequest{Header: f.header, OfferIds: []string{o.Id},
		Filters: &corralpb.Filters{RefuseSeconds: ptr(0.5)}}); err != nil {
		t.Fatal(err)
	}
	reoffer := f.offers()[0]
	// The filter is a lower bound: the re-offer cannot come earlier (the
	// allocation clock counts whole milliseconds).
	if waited := time.Since(declined); waited < 499*time.Millisecond {
		t.Fatalf("declined resources re-offered after %v, before the 0.5 s filter expired", waited)
	}

	// Suppress stops offers; revive clears filters and brings them back.
	o = reoffer
	if _, err := f.client.Decline(context.Background(), &corralpb.DeclineRequest{Header: f.header, OfferIds: []string{o.Id},
		Filters: &corralpb.Filters{RefuseSeconds: ptr(3600.0)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Suppress(context.Background(), &corralpb.SuppressRequest{Header: f.header}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-f.events:
		if ev.GetOffers() != nil {
			t.Fatalf("offer while suppressed and filtered: %v", ev)
		}
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := f.client.Revive(context.Background(), &corralpb.ReviveRequest{Header: f.header}); err != nil {
		t.Fatal(err)
	}
	f.offers() // revive cleared the hour-long filter
}

func TestOfferTimeoutRescinds(t *testing.T) {
	c := startMaster(t, master.Config{OfferTimeout: 200 * time.Millisecond})
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	o := f.offers()[0]
	ev := f.next("rescind", func(e *corralpb.Event) bool { return e.GetRescind() != nil })
	if ev.GetRescind().OfferId != o.Id {
		t.Fatalf("rescinded %s, want %s", ev.GetRescind().OfferId, o.Id)
	}
	_, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o.Id},
		Operations: launch(task("late", "cpus:1"))})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("accepting an expired offer: got %v, want NotFound", err)
	}
}

func TestReconcile(t *testing.T) {
	c := startMaster(t, master.Config{})
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	f.launchOne(a, "t1", "cpus:1")
	a.update(f.header.FrameworkId, "t1", corralpb.TaskState_TASK_RUNNING, []byte{1})
	f.update("t1")

	// Implicit: every live task.
	if _, err := f.client.Reconcile(context.Background(), &corralpb.ReconcileRequest{Header: f.header}); err != nil {
		t.Fatal(err)
	}
	st := f.update("t1")
	if st.State != corralpb.TaskState_TASK_RUNNING || st.Reason != corralpb.TaskStatus_REASON_RECONCILIATION || len(st.Uuid) != 0 {
		t.Fatalf("implicit reconciliation: %v", st)
	}
	// Explicit: a known and an unknown task.
	if _, err := f.client.Reconcile(context.Background(), &corralpb.ReconcileRequest{Header: f.header,
		Tasks: []*corralpb.ReconcileRequest_Task{{TaskId: "ghost"}}}); err != nil {
		t.Fatal(err)
	}
	if st := f.update("ghost"); st.State != corralpb.TaskState_TASK_LOST {
		t.Fatalf("unknown task reconciled as %v, want TASK_LOST", st.State)
	}
}

func TestDisconnectedAgentTasksBecomeLost(t *testing.T) {
	c := startMaster(t, master.Config{AgentReregisterTimeout: 300 * time.Millisecond})
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	f.launchOne(a, "t1", "cpus:1")
	a.cancel() // the agent goes away and never comes back
	st := f.update("t1")
	if st.State != corralpb.TaskState_TASK_LOST || st.Reason != corralpb.TaskStatus_REASON_AGENT_REMOVED {
		t.Fatalf("got %v, want TASK_LOST after the re-registration timeout", st)
	}
	if n := len(c.m.Snapshot().Agents); n != 0 {
		t.Fatalf("%d agents left after removal", n)
	}
}

func TestAgentReregistersWithItsTasks(t *testing.T) {
	c := startMaster(t, master.Config{})
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	f.launchOne(a, "t1", "cpus:1")
	a.cancel()
	waitFor(t, "agent marked disconnected", func() bool { return !c.m.Snapshot().Agents[0].Connected })
	// Same ID, no tasks: the master must call t1 LOST.
	c.addAgent(a.id, "cpus:2;mem:1024")
	if st := f.update("t1"); st.State != corralpb.TaskState_TASK_LOST {
		t.Fatalf("task missing after re-registration: %v, want TASK_LOST", st.State)
	}
	if ag := c.m.Snapshot().Agents; len(ag) != 1 || !ag[0].Connected || ag[0].ID != a.id {
		t.Fatalf("agents after re-registration: %+v", ag)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hangingAllocator counts Allocate calls and lets the first hangs of them
// hang until the caller's deadline, like a wedged plugin process (through
// hangOnce, which wraps the real DRF plugin).
type hangingAllocator struct {
	mu    sync.Mutex
	hangs int
	calls int
}

type hangOnce struct {
	allocator.Allocator
	h *hangingAllocator
}

func (w hangOnce) Allocate(ctx context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	w.h.mu.Lock()
	w.h.calls++
	hang := w.h.calls <= w.h.hangs
	w.h.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return w.Allocator.Allocate(ctx, req)
}

// TestHungAllocatorCallIsAbandoned: a call past allocator_timeout is
// abandoned, the plugin is re-synced, and offers flow once it answers.
func TestHungAllocatorCallIsAbandoned(t *testing.T) {
	plugin := drf.NewPlugin()
	if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	h := &hangingAllocator{hangs: 2}
	c := startMasterWith(t, master.Config{AllocationInterval: 20 * time.Millisecond, AllocatorTimeout: 100 * time.Millisecond},
		wrappedAllocator{fixedAllocator{plugin}, func(a allocator.Allocator) allocator.Allocator { return hangOnce{a, h} }})
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	began := time.Now()
	if len(f.offers()) == 0 {
		t.Fatal("no offers")
	}
	h.mu.Lock()
	calls := h.calls
	h.mu.Unlock()
	if calls < 3 {
		t.Fatalf("offer arrived after %d Allocate calls; the two hung calls should have come first", calls)
	}
	t.Logf("first offer %v after subscribing, past two hung calls", time.Since(began))
}

// TestSlowInitIsNotCutAtTheCycleDeadline: Init carries the whole cluster
// and has its own deadline (allocator_init_timeout), so a plugin whose
// Init takes longer than one Allocate may (a leader that took back 100k
// tasks, on a loaded machine) is initialised once and serves, instead of
// being cut off and started over forever.
func TestSlowInitIsNotCutAtTheCycleDeadline(t *testing.T) {
	plugin := drf.NewPlugin()
	if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	const cycleDeadline = 100 * time.Millisecond
	s := &slowInitAllocator{delay: 4 * cycleDeadline}
	c := startMasterWith(t, master.Config{AllocationInterval: 20 * time.Millisecond, AllocatorTimeout: cycleDeadline},
		wrappedAllocator{fixedAllocator{plugin}, func(a allocator.Allocator) allocator.Allocator { return slowInit{a, s} }})
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	if len(f.offers()) == 0 {
		t.Fatal("no offers")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inits != 1 || s.cut != 0 {
		t.Errorf("Init called %d times, %d of them cut off by their deadline; want once, whole", s.inits, s.cut)
	}
}

// slowInitAllocator makes Init take delay (a large snapshot) before it
// does the work, through slowInit, which wraps the real DRF plugin.
type slowInitAllocator struct {
	delay time.Duration

	mu         sync.Mutex
	inits, cut int
}

type slowInit struct {
	allocator.Allocator
	s *slowInitAllocator
}

func (w slowInit) Init(ctx context.Context, snap *allocator.Snapshot) (uint64, error) {
	w.s.mu.Lock()
	w.s.inits++
	w.s.mu.Unlock()
	select {
	case <-time.After(w.s.delay): // the work a large snapshot takes
	case <-ctx.Done():
		w.s.mu.Lock()
		w.s.cut++
		w.s.mu.Unlock()
		return 0, ctx.Err()
	}
	return w.Allocator.Init(ctx, snap)
}

// TestRecoveredFrameworkWaitsForItsScheduler: after a master failover the
// agents report tasks of frameworks whose schedulers have not found the new
// master yet. A failover timeout of 0 (the default) must not remove such a
// framework before its scheduler could re-subscribe; the agents'
// re-registration window bounds the wait instead.
func TestRecoveredFrameworkWaitsForItsScheduler(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	plugin := drf.NewPlugin()
	if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	// DefaultFailoverTimeout -1: frameworks that set none get Mesos's 0,
	// the case the re-registration window exists for.
	c := startMasterDeps(t, master.Config{AgentReregisterTimeout: time.Minute, DefaultFailoverTimeout: -1},
		master.Deps{Allocator: fixedAllocator{plugin}, Now: clock})

	// The agent re-registers after the failover with a task of fw-old.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := agentproto.NewAgentGatewayClient(c.conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := &corralpb.FrameworkInfo{Id: "fw-old", Name: "old", Roles: []string{"*"}}
	task := &corralpb.TaskInfo{TaskId: "t1", Name: "t1", AgentId: "agent-1", Resources: resources.MustParse("cpus:1").ToProto()}
	info := &corralpb.AgentInfo{Id: "agent-1", Hostname: "h", Resources: resources.MustParse("cpus:2;mem:1024").ToProto(), Url: "http://127.0.0.1:1"}
	if err := stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Register{Register: &agentproto.Register{
		Agent: info, Tasks: []*agentproto.RunningTask{{Framework: old, Task: task, State: corralpb.TaskState_TASK_RUNNING}}}}}); err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetRegistered() == nil {
		t.Fatalf("registration: %v %v", first, err)
	}

	// A framework that did subscribe to this master, with a 1 s timeout,
	// is the witness that the master's timer has run past the new time.
	witness := c.subscribeInfo(&corralpb.FrameworkInfo{Name: "witness", FailoverTimeoutSeconds: 1})
	witnessID := witness.header.FrameworkId
	witness.cancel()
	framework := func(id string) *master.FrameworkView {
		for _, f := range c.m.Snapshot().Frameworks {
			if f.ID == id {
				return &f
			}
		}
		return nil
	}
	known := func(id string) bool { return framework(id) != nil }
	waitFor(t, "the witness to disconnect", func() bool { f := framework(witnessID); return f != nil && !f.Connected })
	advance(5 * time.Second)
	waitFor(t, "the disconnected witness framework to be removed", func() bool { return !known(witnessID) })
	if !known("fw-old") {
		t.Fatal("the recovered framework was removed 5 s after the failover, before its scheduler could re-subscribe")
	}

	// Past the re-registration window it goes, and its task with it.
	advance(time.Minute)
	waitFor(t, "the recovered framework to be removed after the window", func() bool { return !known("fw-old") })
}

// TestAgentIDTakeoverRefused: a process that presents a live agent's ID
// without the secret the master bound to it is refused with a message
// that says so, and the live agent keeps its stream, resources and tasks.
// The real agent, restarting with its secret, gets its ID back.
func TestAgentIDTakeoverRefused(t *testing.T) {
	c := startMaster(t, master.Config{})
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	f.launchOne(a, "t1", "cpus:1")
	secret, _ := c.secrets.Load(a.id)
	if s, _ := secret.(string); len(s) < 32 {
		t.Fatalf("the master bound agent %s to secret %q, want at least 128 random bits", a.id, s)
	}

	for _, presented := range []string{"", "wrong", strings.Repeat("0", 32)} {
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := agentproto.NewAgentGatewayClient(c.conn).Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info := &corralpb.AgentInfo{Id: a.id, Hostname: "intruder", Resources: resources.MustParse("cpus:64;mem:65536").ToProto(), Url: "http://127.0.0.1:2"}
		if err := stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Register{Register: &agentproto.Register{Agent: info, Secret: presented}}}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		cancel()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), a.id) || !strings.Contains(err.Error(), "secret") {
			t.Fatalf("registration as %s with secret %q: %v; want PermissionDenied naming the agent and its secret", a.id, presented, err)
		}
	}
	ag := c.m.Snapshot().Agents
	if len(ag) != 1 || !ag[0].Connected || ag[0].Hostname != "host-" || ag[0].Total != "cpus:2;mem:1024" {
		t.Fatalf("the live agent changed after refused takeovers: %+v", ag)
	}
	a.none(200 * time.Millisecond) // no kill, no re-registration noise
	for _, fw := range c.m.Snapshot().Frameworks {
		for _, task := range fw.Tasks {
			if task.State != corralpb.TaskState_TASK_STAGING.String() && task.State != corralpb.TaskState_TASK_RUNNING.String() {
				t.Fatalf("task %s is %s after refused takeovers", task.ID, task.State)
			}
		}
	}

	// An ID that is not an ID is refused before anything else.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := agentproto.NewAgentGatewayClient(c.conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := &corralpb.AgentInfo{Id: "not an id; rm -rf /", Resources: resources.MustParse("cpus:1").ToProto()}
	if err := stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Register{Register: &agentproto.Register{Agent: bad}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("registration with ID %q: %v, want InvalidArgument", bad.Id, err)
	}

	// The real agent restarts: same ID, its secret, its task.
	a.cancel()
	waitFor(t, "agent marked disconnected", func() bool { return !c.m.Snapshot().Agents[0].Connected })
	back := c.addAgent(a.id, "cpus:2;mem:1024")
	if back.id != a.id {
		t.Fatalf("re-registered as %s, want %s", back.id, a.id)
	}
}

// TestFrameworkCallRateLimit: past its burst, a framework's calls are
// refused with ResourceExhausted naming the limit; other frameworks are
// not affected.
func TestFrameworkCallRateLimit(t *testing.T) {
	c := startMaster(t, master.Config{FrameworkCallRate: 0.01, FrameworkCallBurst: 5})
	busy, calm := c.subscribe("busy"), c.subscribe("calm")
	for i := 0; i < 5; i++ {
		if _, err := busy.client.Reconcile(context.Background(), &corralpb.ReconcileRequest{Header: busy.header}); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	_, err := busy.client.Reconcile(context.Background(), &corralpb.ReconcileRequest{Header: busy.header})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "0.01 calls per second") {
		t.Fatalf("call past the burst: %v; want ResourceExhausted naming the limit", err)
	}
	if _, err := calm.client.Reconcile(context.Background(), &corralpb.ReconcileRequest{Header: calm.header}); err != nil {
		t.Fatalf("another framework's call: %v", err)
	}
}

// TestFailoverKnowsTasksThatEndedMeanwhile: after a master failover an
// agent re-registers with a running task and one that finished while its
// FINISHED update was still unacknowledged. Reconciliation answers the real
// end (not LOST, which would give the task two terminal states once the
// resent FINISHED arrives), and the finished task holds no resources.
func TestFailoverKnowsTasksThatEndedMeanwhile(t *testing.T) {
	c := startMaster(t, master.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := agentproto.NewAgentGatewayClient(c.conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fw := &corralpb.FrameworkInfo{Id: "fw-old", Name: "old", Roles: []string{"*"}}
	task := func(id string) *corralpb.TaskInfo {
		return &corralpb.TaskInfo{TaskId: id, Name: id, AgentId: "agent-1", Resources: resources.MustParse("cpus:1").ToProto()}
	}
	info := &corralpb.AgentInfo{Id: "agent-1", Hostname: "h", Resources: resources.MustParse("cpus:2;mem:1024").ToProto(), Url: "http://127.0.0.1:1"}
	if err := stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Register{Register: &agentproto.Register{Agent: info, Tasks: []*agentproto.RunningTask{
		{Framework: fw, Task: task("running"), State: corralpb.TaskState_TASK_RUNNING},
		{Framework: fw, Task: task("done"), State: corralpb.TaskState_TASK_FINISHED},
	}}}}); err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetRegistered() == nil {
		t.Fatalf("registration: %v %v", first, err)
	}
	if used := c.m.Snapshot().Agents[0].Used; used != "cpus:1" {
		t.Fatalf("agent used %q after re-registration, want cpus:1 (the finished task holds nothing)", used)
	}
	f := c.subscribeInfo(&corralpb.FrameworkInfo{Id: "fw-old", Name: "old", Roles: []string{"*"}})
	if _, err := f.client.Reconcile(context.Background(), &corralpb.ReconcileRequest{Header: f.header, Tasks: []*corralpb.ReconcileRequest_Task{
		{TaskId: "done", AgentId: "agent-1"}, {TaskId: "running", AgentId: "agent-1"}}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]corralpb.TaskState{}
	for range 2 {
		st := f.next("reconciliation", func(e *corralpb.Event) bool { return e.GetUpdate() != nil }).GetUpdate().Status
		got[st.TaskId] = st.State
	}
	if got["done"] != corralpb.TaskState_TASK_FINISHED || got["running"] != corralpb.TaskState_TASK_RUNNING {
		t.Fatalf("reconciliation after failover: %v; want done FINISHED and running RUNNING", got)
	}
}
