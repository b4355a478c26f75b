package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// fakeMaster is a test double of the master's wire side: it speaks the real
// gRPC Scheduler service, checks call headers like the master does, and lets
// the test push events into each subscription and break it at will.
type fakeMaster struct {
	corralpb.UnimplementedSchedulerServer
	addr string

	heartbeatInterval float64       // announced in SUBSCRIBED
	heartbeatEvery    time.Duration // >0: actually send HEARTBEATs this often
	subscribeErr      error         // answer every Subscribe with this
	subscribeErrOnce  error         // answer the next Subscribe with this
	// ackGate, when set, holds every Acknowledge until it is closed;
	// acksWaiting counts those held now, acksWaitingMax the most at once.
	ackGate                     chan struct{}
	acksWaiting, acksWaitingMax int
	// ackErr, when set, answers each acknowledgement after recording it
	// (an error here is a master that took the ack and failed to answer).
	ackErr func(*corralpb.AcknowledgeRequest) error
	// ackHook, when set, sees each unary acknowledgement first, outside
	// the fake's lock, and may block it.
	ackHook func(*corralpb.AcknowledgeRequest)
	// batch serves AcknowledgeBatch; without it the fake is a master from
	// before the RPC, which answers Unimplemented. batchErr, when set,
	// refuses a whole batch (nil: take it).
	batch    bool
	batchErr func(*corralpb.AcknowledgeBatchRequest) error

	sessions chan *session

	mu          sync.Mutex
	subs        []*corralpb.SubscribeRequest
	requests    []*corralpb.RequestCall
	acks        []*corralpb.AcknowledgeRequest // unary or from a batch, in arrival order
	batchCalls  int                            // AcknowledgeBatch calls, answered or not
	batchSizes  []int                          // acks in each AcknowledgeBatch served
	reconciles  []*corralpb.ReconcileRequest
	teardowns   int
	heartbeats  int
	frameworkID string
	streamID    string
	streams     int
}

type session struct {
	req    *corralpb.SubscribeRequest
	events chan *corralpb.Event
	end    chan error // the handler returns what is sent here
}

func newFakeMaster(t *testing.T, configure func(m *fakeMaster)) *fakeMaster {
	t.Helper()
	m := &fakeMaster{sessions: make(chan *session, 8)}
	if configure != nil {
		configure(m)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = lis.Addr().String()
	srv := grpc.NewServer()
	corralpb.RegisterSchedulerServer(srv, m)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	t.Cleanup(func() {
		// Each mode of the ack tests took the path it is named after.
		m.mu.Lock()
		defer m.mu.Unlock()
		switch {
		case len(m.acks) == 0:
		case m.batch && len(m.batchSizes) == 0:
			t.Errorf("%d acks and none in a batch, from a master that serves AcknowledgeBatch", len(m.acks))
		case !m.batch && m.batchCalls == 0:
			t.Errorf("%d unary acks and no AcknowledgeBatch tried first", len(m.acks))
		}
	})
	return m
}

func (m *fakeMaster) Subscribe(req *corralpb.SubscribeRequest, stream grpc.ServerStreamingServer[corralpb.Event]) error {
	m.mu.Lock()
	m.subs = append(m.subs, req)
	if m.subscribeErr != nil {
		m.mu.Unlock()
		return m.subscribeErr
	}
	if err := m.subscribeErrOnce; err != nil {
		m.subscribeErrOnce = nil
		m.mu.Unlock()
		return err
	}
	fid := req.GetFramework().GetId()
	if fid == "" {
		fid = "fw-1"
	}
	m.streams++
	m.frameworkID, m.streamID = fid, fmt.Sprintf("stream-%d", m.streams)
	sub := &corralpb.Event_Subscribed{FrameworkId: fid, StreamId: m.streamID, HeartbeatIntervalSeconds: m.heartbeatInterval}
	m.mu.Unlock()

	if err := stream.Send(&corralpb.Event{Event: &corralpb.Event_Subscribed_{Subscribed: sub}}); err != nil {
		return err
	}
	sess := &session{req: req, events: make(chan *corralpb.Event, 64), end: make(chan error, 1)}
	m.sessions <- sess
	var tick <-chan time.Time
	if m.heartbeatEvery > 0 {
		tk := time.NewTicker(m.heartbeatEvery)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case ev := <-sess.events:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-tick:
			if err := stream.Send(&corralpb.Event{Event: &corralpb.Event_Heartbeat_{Heartbeat: &corralpb.Event_Heartbeat{}}}); err != nil {
				return err
			}
			m.mu.Lock()
			m.heartbeats++
			m.mu.Unlock()
		case err := <-sess.end:
			return err
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (m *fakeMaster) check(h *corralpb.CallHeader) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.GetFrameworkId() != m.frameworkID || h.GetStreamId() != m.streamID {
		return status.Errorf(codes.FailedPrecondition, "stale stream %q of framework %q", h.GetStreamId(), h.GetFrameworkId())
	}
	return nil
}

func (m *fakeMaster) Accept(_ context.Context, req *corralpb.AcceptRequest) (*corralpb.CallResponse, error) {
	if err := m.check(req.GetHeader()); err != nil {
		return nil, err
	}
	for _, id := range req.GetOfferIds() {
		if strings.HasPrefix(id, "bad") {
			return nil, status.Errorf(codes.InvalidArgument, "offer %s is not outstanding", id)
		}
	}
	return &corralpb.CallResponse{}, nil
}

func (m *fakeMaster) Acknowledge(_ context.Context, req *corralpb.AcknowledgeRequest) (*corralpb.CallResponse, error) {
	if err := m.check(req.GetHeader()); err != nil {
		return nil, err
	}
	if m.ackHook != nil {
		m.ackHook(req)
	}
	if m.ackGate != nil {
		m.mu.Lock()
		m.acksWaiting++
		m.acksWaitingMax = max(m.acksWaitingMax, m.acksWaiting)
		m.mu.Unlock()
		<-m.ackGate
		m.mu.Lock()
		m.acksWaiting--
		m.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks = append(m.acks, req)
	if m.ackErr != nil {
		if err := m.ackErr(req); err != nil {
			return nil, err
		}
	}
	return &corralpb.CallResponse{}, nil
}

func (m *fakeMaster) AcknowledgeBatch(ctx context.Context, req *corralpb.AcknowledgeBatchRequest) (*corralpb.AcknowledgeBatchResponse, error) {
	m.mu.Lock()
	m.batchCalls++
	m.mu.Unlock()
	if !m.batch {
		return m.UnimplementedSchedulerServer.AcknowledgeBatch(ctx, req)
	}
	if err := m.check(req.GetHeader()); err != nil {
		return nil, err
	}
	if m.batchErr != nil {
		if err := m.batchErr(req); err != nil {
			return nil, err
		}
	}
	n := len(req.GetAcks())
	if m.ackGate != nil {
		m.mu.Lock()
		m.acksWaiting += n
		m.acksWaitingMax = max(m.acksWaitingMax, m.acksWaiting)
		m.mu.Unlock()
		<-m.ackGate
		m.mu.Lock()
		m.acksWaiting -= n
		m.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batchSizes = append(m.batchSizes, n)
	resp := &corralpb.AcknowledgeBatchResponse{}
	for _, a := range req.GetAcks() {
		one := &corralpb.AcknowledgeRequest{Header: req.GetHeader(), AgentId: a.GetAgentId(), TaskId: a.GetTaskId(), Uuid: a.GetUuid()}
		m.acks = append(m.acks, one)
		res := &corralpb.AcknowledgeBatchResponse_Result{}
		if m.ackErr != nil {
			if st := status.Convert(m.ackErr(one)); st.Code() != codes.OK {
				res.Code, res.Message = uint32(st.Code()), st.Message()
			}
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// ackModes runs test against a master with AcknowledgeBatch and against
// one without (the SDK falls back to one Acknowledge per ack): the
// acknowledgement guarantees hold either way.
func ackModes(t *testing.T, test func(t *testing.T, batch bool)) {
	for _, batch := range []bool{false, true} {
		name := "unary"
		if batch {
			name = "batch"
		}
		t.Run(name, func(t *testing.T) { test(t, batch) })
	}
}

func (m *fakeMaster) Reconcile(_ context.Context, req *corralpb.ReconcileRequest) (*corralpb.CallResponse, error) {
	if err := m.check(req.GetHeader()); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconciles = append(m.reconciles, req)
	return &corralpb.CallResponse{}, nil
}

func (m *fakeMaster) Suppress(_ context.Context, req *corralpb.SuppressRequest) (*corralpb.CallResponse, error) {
	return &corralpb.CallResponse{}, m.check(req.GetHeader())
}

func (m *fakeMaster) Request(_ context.Context, req *corralpb.RequestCall) (*corralpb.CallResponse, error) {
	if err := m.check(req.GetHeader()); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, req)
	return &corralpb.CallResponse{}, nil
}

func (m *fakeMaster) requestLog() []*corralpb.RequestCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.requests)
}

func (m *fakeMaster) Teardown(_ context.Context, req *corralpb.TeardownRequest) (*corralpb.CallResponse, error) {
	if err := m.check(req.GetHeader()); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.teardowns++
	return &corralpb.CallResponse{}, nil
}

func (m *fakeMaster) acksFor(uuid string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range m.acks {
		if string(a.GetUuid()) == uuid {
			n++
		}
	}
	return n
}

func (m *fakeMaster) snapshot() (subs []*corralpb.SubscribeRequest, acks []*corralpb.AcknowledgeRequest, recs []*corralpb.ReconcileRequest, teardowns, heartbeats int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.subs), slices.Clone(m.acks), slices.Clone(m.reconciles), m.teardowns, m.heartbeats
}

func (m *fakeMaster) nextSession(t *testing.T) *session {
	t.Helper()
	select {
	case s := <-m.sessions:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription reached the master")
		return nil
	}
}

// recorder is a Scheduler that writes down every callback.
type recorder struct {
	m *fakeMaster

	mu         sync.Mutex
	log        []string
	driver     Driver
	violations []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *recorder) Subscribed(_ context.Context, d Driver, id string, reconnected bool) {
	r.mu.Lock()
	r.driver = d
	r.mu.Unlock()
	r.add(fmt.Sprintf("subscribed %s %v", id, reconnected))
}

func (r *recorder) Offers(_ context.Context, _ Driver, offers []*corralpb.Offer) {
	var ids []string
	for _, o := range offers {
		ids = append(ids, o.GetId())
	}
	r.add("offers " + strings.Join(ids, ","))
}

func (r *recorder) Rescinded(_ context.Context, _ Driver, id string) { r.add("rescind " + id) }

func (r *recorder) Update(_ context.Context, _ Driver, st *corralpb.TaskStatus) {
	if u := string(st.GetUuid()); u != "" && r.m.acksFor(u) != 0 {
		r.mu.Lock()
		r.violations = append(r.violations, "acked before Update returned: "+u)
		r.mu.Unlock()
	}
	r.add("update " + st.GetTaskId() + " " + st.GetState().String())
}

func (r *recorder) Error(_ context.Context, _ Driver, msg string) { r.add("error " + msg) }

func (r *recorder) Message(_ context.Context, _ Driver, agentID, taskID string, data []byte) {
	r.add(fmt.Sprintf("message %s %s %s", agentID, taskID, data))
}

func (r *recorder) Failure(_ context.Context, _ Driver, agentID, msg string) {
	r.add(fmt.Sprintf("failure %s %s", agentID, msg))
}

func (r *recorder) Disconnected(_ context.Context, err error) { r.add("disconnected: " + err.Error()) }

func (r *recorder) currentDriver() Driver {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.driver
}

// startRun runs Run in the background; the returned channel yields its
// result. Cleanup cancels it and waits, so no goroutine outlives the test.
func startRun(t *testing.T, m *fakeMaster, s Scheduler, configure ...func(*Config)) (<-chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{
		Master:       m.addr,
		Framework:    &corralpb.FrameworkInfo{Name: "test", Roles: []string{"*"}},
		Logger:       hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testWriter{t}}),
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
	}
	for _, c := range configure {
		c(&cfg)
	}
	go func() { done <- Run(ctx, cfg, s) }()
	result := make(chan error, 1)
	var once sync.Once
	var err error
	wait := func() error {
		once.Do(func() { err = <-done })
		return err
	}
	t.Cleanup(func() { cancel(); wait() })
	go func() { result <- wait() }()
	return result, cancel
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitResult(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func offersEvent(ids ...string) *corralpb.Event {
	var offers []*corralpb.Offer
	for _, id := range ids {
		offers = append(offers, &corralpb.Offer{Id: id, AgentId: "a1"})
	}
	return &corralpb.Event{Event: &corralpb.Event_Offers_{Offers: &corralpb.Event_Offers{Offers: offers}}}
}

func updateEvent(taskID string, state corralpb.TaskState, uuid string) *corralpb.Event {
	st := &corralpb.TaskStatus{TaskId: taskID, AgentId: "a1", State: state}
	if uuid != "" {
		st.Uuid = []byte(uuid)
	}
	return &corralpb.Event{Event: &corralpb.Event_Update_{Update: &corralpb.Event_Update{Status: st}}}
}

func rescindEvent(id string) *corralpb.Event {
	return &corralpb.Event{Event: &corralpb.Event_Rescind_{Rescind: &corralpb.Event_Rescind{OfferId: id}}}
}

func TestEventsDispatchedInOrderAndAckedOnce(t *testing.T) {
	ackModes(t, func(t *testing.T, batch bool) {
		m := newFakeMaster(t, func(m *fakeMaster) { m.batch = batch })
		rec := &recorder{m: m}
		result, _ := startRun(t, m, rec)
		sess := m.nextSession(t)

		for _, ev := range []*corralpb.Event{
			offersEvent("o-1", "o-2"),
			rescindEvent("o-1"),
			updateEvent("t1", corralpb.TaskState_TASK_RUNNING, "u1"),
			{Event: &corralpb.Event_Heartbeat_{Heartbeat: &corralpb.Event_Heartbeat{}}},
			{Event: &corralpb.Event_Message_{Message: &corralpb.Event_Message{AgentId: "a1", TaskId: "t1", Data: []byte("hi")}}},
			{Event: &corralpb.Event_Failure_{Failure: &corralpb.Event_Failure{AgentId: "a2", Message: "agent lost"}}},
			updateEvent("t1", corralpb.TaskState_TASK_FINISHED, "u2"),
			updateEvent("t2", corralpb.TaskState_TASK_RUNNING, ""), // reconciliation answer: no uuid, no ack
			{Event: &corralpb.Event_Error_{Error: &corralpb.Event_Error{Message: "role quota exceeded"}}},
			rescindEvent("o-2"),
		} {
			sess.events <- ev
		}
		want := []string{
			"subscribed fw-1 false",
			"offers o-1,o-2",
			"rescind o-1",
			"update t1 TASK_RUNNING",
			"message a1 t1 hi",
			"failure a2 agent lost",
			"update t1 TASK_FINISHED",
			"update t2 TASK_RUNNING",
			"error role quota exceeded",
			"rescind o-2",
		}
		waitFor(t, "all events", func() bool { return len(rec.entries()) >= len(want) })
		if got := rec.entries(); !slices.Equal(got, want) {
			t.Fatalf("events:\n got %q\nwant %q", got, want)
		}

		// Acks are pipelined (not awaited before the next event), one task's in
		// order: wait for both to reach the master.
		waitFor(t, "two acks", func() bool { _, acks, _, _, _ := m.snapshot(); return len(acks) >= 2 })
		_, acks, recs, _, _ := m.snapshot()
		var got []string
		for _, a := range acks {
			got = append(got, fmt.Sprintf("%s/%s/%s/%s", a.GetAgentId(), a.GetTaskId(), a.GetUuid(), a.GetHeader().GetStreamId()))
		}
		if want := []string{"a1/t1/u1/stream-1", "a1/t1/u2/stream-1"}; !slices.Equal(got, want) {
			t.Errorf("acks = %q, want %q", got, want)
		}
		if len(rec.violations) > 0 {
			t.Errorf("ordering violations: %q", rec.violations)
		}
		if len(recs) != 0 {
			t.Errorf("first subscription must not reconcile, got %d reconciles", len(recs))
		}

		// Teardown from another goroutine ends Run with nil.
		d := rec.currentDriver()
		if err := d.Teardown(context.Background()); err != nil {
			t.Fatalf("teardown: %v", err)
		}
		if err := waitResult(t, result); err != nil {
			t.Fatalf("Run after teardown = %v, want nil", err)
		}
		if _, _, _, n, _ := m.snapshot(); n != 1 {
			t.Errorf("teardowns = %d, want 1", n)
		}
		if err := d.Kill(context.Background(), "t1", "a1"); !errors.Is(err, ErrNotSubscribed) {
			t.Errorf("call after Run returned: err = %v, want ErrNotSubscribed", err)
		}
	})
}

func TestReconnectsWithSameFrameworkIDAndReconciles(t *testing.T) {
	ackModes(t, func(t *testing.T, batch bool) {
		m := newFakeMaster(t, func(m *fakeMaster) { m.batch = batch })
		rec := &recorder{m: m}
		startRun(t, m, rec)

		first := m.nextSession(t)
		if id := first.req.GetFramework().GetId(); id != "" {
			t.Fatalf("first subscribe carried framework id %q", id)
		}
		if first.req.GetSuppressedRoles() != nil {
			t.Fatalf("first subscribe suppressed %q", first.req.GetSuppressedRoles())
		}
		waitFor(t, "subscribed", func() bool { return rec.currentDriver() != nil })
		if err := rec.currentDriver().Suppress(context.Background()); err != nil {
			t.Fatal(err)
		}
		first.end <- status.Error(codes.Unavailable, "master restarting")

		second := m.nextSession(t)
		if id := second.req.GetFramework().GetId(); id != "fw-1" {
			t.Fatalf("re-subscribe framework id = %q, want fw-1", id)
		}
		if got := second.req.GetSuppressedRoles(); !slices.Equal(got, []string{"*"}) {
			t.Errorf("re-subscribe suppressed roles = %q, want the suppression asked for before", got)
		}
		waitFor(t, "implicit reconciliation", func() bool {
			_, _, recs, _, _ := m.snapshot()
			return len(recs) == 1
		})
		_, _, recs, _, _ := m.snapshot()
		if len(recs[0].GetTasks()) != 0 || recs[0].GetHeader().GetStreamId() != "stream-2" {
			t.Errorf("reconcile = %v, want implicit on stream-2", recs[0])
		}

		// The driver now speaks with the new stream's header.
		second.events <- updateEvent("t1", corralpb.TaskState_TASK_RUNNING, "u9")
		waitFor(t, "ack on the new stream", func() bool { return m.acksFor("u9") == 1 })

		log := rec.entries()
		if len(log) < 3 || log[0] != "subscribed fw-1 false" || !strings.HasPrefix(log[1], "disconnected: ") ||
			!strings.Contains(log[1], "master restarting") || log[2] != "subscribed fw-1 true" {
			t.Errorf("callbacks = %q", log)
		}
	})
}

func TestHeartbeatTimeoutTriggersReconnect(t *testing.T) {
	m := newFakeMaster(t, func(m *fakeMaster) { m.heartbeatInterval = 0.05 })
	rec := &recorder{m: m}
	startRun(t, m, rec)

	m.nextSession(t) // then stay silent: no heartbeat, no event
	start := time.Now()
	second := m.nextSession(t)
	if elapsed := time.Since(start); elapsed < 200*time.Millisecond {
		t.Errorf("reconnected after %v, before 5 heartbeat intervals (250ms) passed", elapsed)
	}
	if id := second.req.GetFramework().GetId(); id != "fw-1" {
		t.Errorf("re-subscribe framework id = %q, want fw-1", id)
	}
	waitFor(t, "disconnect callback", func() bool { return len(rec.entries()) >= 2 })
	if got := rec.entries()[1]; !strings.Contains(got, "heartbeat") {
		t.Errorf("disconnect reason = %q, want a heartbeat timeout", got)
	}
}

func TestHeartbeatsKeepStreamAlive(t *testing.T) {
	m := newFakeMaster(t, func(m *fakeMaster) {
		// Dead after 2s of silence: long enough that a starved goroutine
		// on a loaded machine is not taken for a dead master (0.5s was not).
		m.heartbeatInterval = 0.4
		m.heartbeatEvery = 20 * time.Millisecond
	})
	startRun(t, m, &recorder{m: m})
	m.nextSession(t)
	// 150 heartbeats take at least 3s, well past the 2s silence limit.
	waitFor(t, "150 heartbeats", func() bool {
		_, _, _, _, hb := m.snapshot()
		return hb >= 150
	})
	if subs, _, _, _, _ := m.snapshot(); len(subs) != 1 {
		t.Errorf("subscriptions = %d, want 1: heartbeats must keep the stream alive", len(subs))
	}
}

func TestCallErrorKeepsMasterMessage(t *testing.T) {
	m := newFakeMaster(t, nil)
	rec := &recorder{m: m}
	startRun(t, m, rec)
	m.nextSession(t)
	waitFor(t, "subscribed", func() bool { return rec.currentDriver() != nil })

	err := rec.currentDriver().Launch(context.Background(), []string{"bad-1"},
		[]*corralpb.TaskInfo{{TaskId: "t1", AgentId: "a1"}}, nil)
	var ce *CallError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want *CallError", err, err)
	}
	if ce.Call != "accept" || ce.Code != codes.InvalidArgument || ce.Message != "offer bad-1 is not outstanding" {
		t.Errorf("CallError = %+v", ce)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("status.Code = %v", status.Code(err))
	}
	if want := "accept: InvalidArgument: offer bad-1 is not outstanding"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	dup := &CallError{Call: "decline", Code: codes.NotFound, Message: "decline: offer o-1 does not exist"}
	if want := "decline: NotFound: offer o-1 does not exist"; dup.Error() != want {
		t.Errorf("Error() = %q, want the call named once: %q", dup.Error(), want)
	}
}

func TestPermanentRefusalEndsRun(t *testing.T) {
	m := newFakeMaster(t, func(m *fakeMaster) {
		m.subscribeErr = status.Error(codes.PermissionDenied, `role "prod" is not allowed`)
	})
	result, _ := startRun(t, m, &recorder{m: m})
	err := waitResult(t, result)
	if err == nil || !strings.Contains(err.Error(), `role "prod" is not allowed`) {
		t.Fatalf("Run = %v, want the master's refusal", err)
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("status.Code = %v, want PermissionDenied", status.Code(err))
	}
	if subs, _, _, _, _ := m.snapshot(); len(subs) != 1 {
		t.Errorf("subscribe attempts = %d, want 1 (no retry of a permanent refusal)", len(subs))
	}
}

func TestErrorEventThenCloseEndsRun(t *testing.T) {
	m := newFakeMaster(t, nil)
	result, _ := startRun(t, m, &recorder{m: m})
	sess := m.nextSession(t)
	sess.events <- &corralpb.Event{Event: &corralpb.Event_Error_{Error: &corralpb.Event_Error{Message: "framework has been removed"}}}
	// Let the error reach the client before the stream closes.
	waitFor(t, "error delivered", func() bool { return len(sess.events) == 0 })
	sess.end <- nil
	err := waitResult(t, result)
	if err == nil || !strings.Contains(err.Error(), "framework has been removed") {
		t.Fatalf("Run = %v, want an error carrying the master's message", err)
	}
}

func TestUnreachableMasterRetriesUntilCancelled(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{addr: lis.Addr().String()}
	lis.Close() // nothing listens there any more
	rec := &recorder{m: m}
	result, cancel := startRun(t, m, rec)
	waitFor(t, "three failed attempts", func() bool { return len(rec.entries()) >= 3 })
	for _, e := range rec.entries() {
		if !strings.HasPrefix(e, "disconnected: ") {
			t.Errorf("unexpected callback %q", e)
		}
	}
	cancel()
	if err := waitResult(t, result); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestTakeScalars(t *testing.T) {
	sc := func(name string, v float64, role string) *corralpb.Resource {
		return &corralpb.Resource{Name: name, Role: role, Value: &corralpb.Resource_Scalar{Scalar: v}}
	}
	str := func(rs []*corralpb.Resource) string {
		var parts []string
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%s(%s)=%g", r.GetName(), r.GetRole(), r.GetScalar()))
		}
		return strings.Join(parts, " ")
	}
	offer := []*corralpb.Resource{sc("cpus", 0.3, "web"), sc("cpus", 1, "*"), sc("mem", 128, "*")}
	tests := []struct {
		name            string
		want            map[string]float64
		ok              bool
		taken, leftover string
	}{
		{"fits in one role", map[string]float64{"cpus": 0.2, "mem": 32}, true,
			"cpus(web)=0.2 mem(*)=32", "cpus(web)=0.1 cpus(*)=1 mem(*)=96"},
		{"spans roles", map[string]float64{"cpus": 0.5}, true,
			"cpus(web)=0.3 cpus(*)=0.2", "cpus(*)=0.8 mem(*)=128"},
		{"uses everything", map[string]float64{"cpus": 1.3, "mem": 128}, true,
			"cpus(web)=0.3 cpus(*)=1 mem(*)=128", ""},
		{"too little mem", map[string]float64{"cpus": 0.1, "mem": 129}, false, "", ""},
		{"missing resource", map[string]float64{"gpus": 1}, false, "", ""},
		{"zero want is free", map[string]float64{"disk": 0, "cpus": 0.1}, true,
			"cpus(web)=0.1", "cpus(web)=0.2 cpus(*)=1 mem(*)=128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			taken, rest, ok := TakeScalars(offer, tt.want)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				if str(rest) != str(offer) {
					t.Errorf("failed take changed the offer: %s", str(rest))
				}
				return
			}
			if str(taken) != tt.taken || str(rest) != tt.leftover {
				t.Errorf("taken %q rest %q, want %q %q", str(taken), str(rest), tt.taken, tt.leftover)
			}
		})
	}
	if str(offer) != "cpus(web)=0.3 cpus(*)=1 mem(*)=128" {
		t.Errorf("input offer was modified: %s", str(offer))
	}
}

// TestAcksInFlightBounded: no more than Config.MaxAcksInFlight
// acknowledgements are in flight or queued for the next batch at once, and
// the rest follow when they are answered.
func TestAcksInFlightBounded(t *testing.T) {
	ackModes(t, func(t *testing.T, batch bool) {
		gate := make(chan struct{})
		m := newFakeMaster(t, func(m *fakeMaster) { m.ackGate, m.batch = gate, batch })
		rec := &recorder{m: m}
		startRun(t, m, rec, func(c *Config) { c.MaxAcksInFlight = 3 })
		sess := m.nextSession(t)
		const n = 10
		for i := range n {
			sess.events <- updateEvent(fmt.Sprintf("t%d", i), corralpb.TaskState_TASK_RUNNING, fmt.Sprintf("u%d", i))
		}
		// Unary: all three at the master. Batched: the first batch is held
		// there and the other acks wait for the sender; t3's Update runs
		// and its ack then waits for a slot, which none frees while the
		// master holds on.
		waitFor(t, "three acks taken, the fourth update delivered", func() bool {
			m.mu.Lock()
			waiting := m.acksWaiting
			m.mu.Unlock()
			return (waiting == 3 || batch && waiting > 0) && slices.Contains(rec.entries(), "update t3 TASK_RUNNING")
		})
		if log := rec.entries(); slices.Contains(log, "update t4 TASK_RUNNING") {
			t.Errorf("t4's update was delivered while t0-t3 held every ack slot: %q", log)
		}
		close(gate)
		waitFor(t, "every ack", func() bool { _, acks, _, _, _ := m.snapshot(); return len(acks) == n })
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.acksWaitingMax > 3 || !batch && m.acksWaitingMax != 3 {
			t.Errorf("at most %d acks in flight at once; want 3 (MaxAcksInFlight)", m.acksWaitingMax)
		}
		for _, b := range m.batchSizes {
			if b > 3 {
				t.Errorf("batches of %v acks; none may exceed MaxAcksInFlight (3)", m.batchSizes)
				break
			}
		}
	})
}

func TestMaxAcksInFlightDefault(t *testing.T) {
	c, err := Config{Master: "127.0.0.1:1", Framework: &corralpb.FrameworkInfo{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxAcksInFlight != defaultAcksInFlight {
		t.Errorf("MaxAcksInFlight default %d, want %d", c.MaxAcksInFlight, defaultAcksInFlight)
	}
}

// ackRecorder is a recorder that also writes down how each automatic
// acknowledgement ended.
type ackRecorder struct{ recorder }

func (r *ackRecorder) Acknowledged(_ context.Context, _ Driver, st *corralpb.TaskStatus, err error) {
	r.add(fmt.Sprintf("acked %s %s: %s", st.GetTaskId(), st.GetUuid(), status.Code(err)))
}

// TestAckRetriesPipelined: the acks a dead leader left unanswered are
// sent again at the next subscription all at once, not one round trip
// after another (thousands of them delayed Subscribed by 44 s in make
// bench-ha at 10k agents), and all are answered before Subscribed. The
// fake is a master without AcknowledgeBatch, where each ack is a call of
// its own; with the batch, they go in calls of up to maxAckBatch
// (TestAckRetriesBatched).
func TestAckRetriesPipelined(t *testing.T) {
	const n = 8
	var inflight atomic.Int32
	all := make(chan struct{}) // closed once n retries are held at once
	m := newFakeMaster(t, func(m *fakeMaster) {
		m.ackErr = func(req *corralpb.AcknowledgeRequest) error {
			if req.GetHeader().GetStreamId() == "stream-1" {
				return status.Error(codes.Unavailable, "error reading from server: connection reset by peer")
			}
			return nil
		}
		m.ackHook = func(req *corralpb.AcknowledgeRequest) {
			if req.GetHeader().GetStreamId() == "stream-1" {
				return
			}
			if inflight.Add(1) == n {
				close(all)
			}
			// Released when all n are here; sent in series, the first
			// waits out the deadline alone and the test fails below.
			select {
			case <-all:
			case <-time.After(10 * time.Second):
			}
		}
	})
	ackRetriesAfterFailover(t, m, n)
	select {
	case <-all:
	default:
		t.Fatalf("the retried acks reached the master %d at a time, want all %d at once", inflight.Load(), n)
	}
}

// ackRetriesAfterFailover runs a first session in which the n updates t1..tn
// (UUIDs u1..un) are acknowledged and every answer is lost (the fake
// answers stream-1's acks Unavailable), ends it as a dying master would,
// and returns once the scheduler has re-subscribed, checking that every
// ack was retried and answered OK before Subscribed.
func ackRetriesAfterFailover(t *testing.T, m *fakeMaster, n int) {
	t.Helper()
	rec := &ackRecorder{recorder{m: m}}
	startRun(t, m, rec)
	first := m.nextSession(t)
	for i := 1; i <= n; i++ {
		first.events <- updateEvent(fmt.Sprintf("t%d", i), corralpb.TaskState_TASK_FINISHED, fmt.Sprintf("u%d", i))
	}
	waitFor(t, "every first ack answered", func() bool {
		return len(slices.DeleteFunc(rec.entries(), func(e string) bool { return !strings.HasSuffix(e, ": Unavailable") })) == n
	})
	first.end <- status.Error(codes.Unavailable, "master died")

	m.nextSession(t)
	waitFor(t, "resubscribed", func() bool { return slices.Contains(rec.entries(), "subscribed fw-1 true") })
	log := rec.entries()
	sub := slices.Index(log, "subscribed fw-1 true")
	for i := 1; i <= n; i++ {
		if at := slices.Index(log, fmt.Sprintf("acked t%d u%d: OK", i, i)); at < 0 || at > sub {
			t.Fatalf("t%d's ack was not retried and answered OK before Subscribed", i)
		}
	}
}

// TestAckRetriesBatched: the acks a dead leader left unanswered go back
// at the next subscription in AcknowledgeBatch calls of up to maxAckBatch
// each, not MaxAcksInFlight at a time: the framework waits for them
// before Subscribed, and each round trip is to a master busy taking its
// agents back (6.7k retried acks 64 at a time delayed Subscribed by 5.9 s
// in make bench-ha at 10k agents).
func TestAckRetriesBatched(t *testing.T) {
	n := maxAckBatch + 76
	m := newFakeMaster(t, func(m *fakeMaster) {
		m.batch = true
		m.batchErr = func(req *corralpb.AcknowledgeBatchRequest) error {
			if req.GetHeader().GetStreamId() == "stream-1" {
				return status.Error(codes.Unavailable, "error reading from server: connection reset by peer")
			}
			return nil
		}
	})
	ackRetriesAfterFailover(t, m, n)
	m.mu.Lock()
	sizes := slices.Clone(m.batchSizes) // the first session's calls were refused before being served
	m.mu.Unlock()
	if want := []int{maxAckBatch, 76}; !slices.Equal(sizes, want) {
		t.Fatalf("retried acks went in batches of %v, want %v", sizes, want)
	}
}

// An ack whose answer was lost (the master took it, relayed it, then
// died) may have reached the agent, which then never resends the update:
// the SDK acknowledges it again at the next subscription, before
// Subscribed, so the framework knows how it ended before it reconciles.
// One the master refused outright (NotFound: an agent it does not know)
// is not sent again.
func TestAmbiguousAckFailureRetriedAtResubscribe(t *testing.T) {
	ackModes(t, func(t *testing.T, batch bool) {
		m := newFakeMaster(t, func(m *fakeMaster) {
			m.batch = batch
			m.ackErr = func(req *corralpb.AcknowledgeRequest) error {
				switch {
				case req.GetHeader().GetStreamId() != "stream-1":
					return nil
				case string(req.GetUuid()) == "u1":
					return status.Error(codes.Internal, "server closed the stream without sending trailers")
				case string(req.GetUuid()) == "u2":
					return status.Error(codes.NotFound, "acknowledge: agent a1 is not registered")
				}
				return nil
			}
		})
		rec := &ackRecorder{recorder{m: m}}
		startRun(t, m, rec)
		first := m.nextSession(t)
		first.events <- updateEvent("t1", corralpb.TaskState_TASK_FINISHED, "u1")
		first.events <- updateEvent("t2", corralpb.TaskState_TASK_FINISHED, "u2")
		waitFor(t, "both acks answered", func() bool {
			log := rec.entries()
			return slices.Contains(log, "acked t1 u1: Internal") && slices.Contains(log, "acked t2 u2: NotFound")
		})
		first.end <- status.Error(codes.Unavailable, "master died")

		m.nextSession(t)
		waitFor(t, "resubscribed", func() bool { return slices.Contains(rec.entries(), "subscribed fw-1 true") })
		log := rec.entries()
		retried := slices.Index(log, "acked t1 u1: OK")
		if retried < 0 || retried > slices.Index(log, "subscribed fw-1 true") {
			t.Fatalf("callbacks = %q; want t1's ack retried and answered OK before Subscribed", log)
		}
		if n := m.acksFor("u1"); n != 2 {
			t.Errorf("u1 acknowledged %d times, want 2 (once per session)", n)
		}
		if n := m.acksFor("u2"); n != 1 {
			t.Errorf("u2 acknowledged %d times, want 1 (the master refused it outright)", n)
		}
	})
}

// TestAckBatchResultsPerAck: acks that became ready while a batch was in
// flight go together in the next, and each one's result reaches
// AckObserver on its own: a refused ack does not fail the others, and a
// task's second ack waits for the answer to its first.
func TestAckBatchResultsPerAck(t *testing.T) {
	gate := make(chan struct{})
	m := newFakeMaster(t, func(m *fakeMaster) {
		m.batch, m.ackGate = true, gate
		m.ackErr = func(req *corralpb.AcknowledgeRequest) error {
			switch string(req.GetUuid()) {
			case "u2":
				return status.Error(codes.NotFound, "acknowledge: agent a1 is not registered")
			case "u3":
				return status.Error(codes.InvalidArgument, "acknowledge: task_id is required")
			}
			return nil
		}
	})
	rec := &ackRecorder{recorder{m: m}}
	startRun(t, m, rec)
	sess := m.nextSession(t)
	// t0's ack alone in the first batch, held by the master.
	sess.events <- updateEvent("t0", corralpb.TaskState_TASK_RUNNING, "u0")
	waitFor(t, "the first batch at the master", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.acksWaiting == 1
	})
	for i, task := range []string{"t1", "t2", "t3", "t4"} {
		sess.events <- updateEvent(task, corralpb.TaskState_TASK_RUNNING, fmt.Sprintf("u%d", i+1))
	}
	// t1's next update is delivered once t1-t4's acks are queued; its ack
	// waits for t1's answer, so it cannot join their batch.
	sess.events <- updateEvent("t1", corralpb.TaskState_TASK_FINISHED, "u5")
	waitFor(t, "t1's second update", func() bool { return slices.Contains(rec.entries(), "update t1 TASK_FINISHED") })
	close(gate)
	waitFor(t, "six acks answered", func() bool {
		n := 0
		for _, e := range rec.entries() {
			if strings.HasPrefix(e, "acked ") {
				n++
			}
		}
		return n == 6
	})
	var acked []string
	for _, e := range rec.entries() {
		if strings.HasPrefix(e, "acked ") {
			acked = append(acked, e)
		}
	}
	want := []string{"acked t0 u0: OK", "acked t1 u1: OK", "acked t2 u2: NotFound", "acked t3 u3: InvalidArgument",
		"acked t4 u4: OK", "acked t1 u5: OK"}
	if !slices.Equal(acked, want) {
		t.Errorf("observed\n %q\nwant\n %q", acked, want)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.batchSizes, []int{1, 4, 1}) {
		t.Errorf("batch sizes %v, want [1 4 1]", m.batchSizes)
	}
}

// TestAckBatchFallsBackToUnary: a master from before AcknowledgeBatch
// answers Unimplemented; the SDK sends those acks and every later one of
// the session as Acknowledge calls, in order per task, and asks again in
// the next session (which may be with another, newer, master).
func TestAckBatchFallsBackToUnary(t *testing.T) {
	m := newFakeMaster(t, nil) // batch unset: Unimplemented
	rec := &ackRecorder{recorder{m: m}}
	startRun(t, m, rec)
	first := m.nextSession(t)
	for _, ev := range []*corralpb.Event{
		updateEvent("t1", corralpb.TaskState_TASK_RUNNING, "u1"),
		updateEvent("t2", corralpb.TaskState_TASK_RUNNING, "u2"),
		updateEvent("t1", corralpb.TaskState_TASK_FINISHED, "u3"),
		updateEvent("t2", corralpb.TaskState_TASK_FINISHED, "u4"),
	} {
		first.events <- ev
	}
	waitFor(t, "four acks", func() bool { _, acks, _, _, _ := m.snapshot(); return len(acks) == 4 })
	_, acks, _, _, _ := m.snapshot()
	order := map[string][]string{}
	for _, a := range acks {
		order[a.GetTaskId()] = append(order[a.GetTaskId()], string(a.GetUuid()))
	}
	if !slices.Equal(order["t1"], []string{"u1", "u3"}) || !slices.Equal(order["t2"], []string{"u2", "u4"}) {
		t.Errorf("acks per task %v, want t1: u1 u3, t2: u2 u4", order)
	}
	waitFor(t, "four acks observed", func() bool {
		n := 0
		for _, e := range rec.entries() {
			if strings.HasPrefix(e, "acked ") && strings.HasSuffix(e, ": OK") {
				n++
			}
		}
		return n == 4
	})
	m.mu.Lock()
	calls := m.batchCalls
	m.mu.Unlock()
	if calls != 1 {
		t.Errorf("%d AcknowledgeBatch calls in the session, want 1 (then unary only)", calls)
	}

	first.end <- status.Error(codes.Unavailable, "master restarting")
	second := m.nextSession(t)
	second.events <- updateEvent("t3", corralpb.TaskState_TASK_RUNNING, "u5")
	waitFor(t, "the new session's ack", func() bool { return m.acksFor("u5") == 1 })
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.batchCalls != 2 {
		t.Errorf("%d AcknowledgeBatch calls in two sessions, want 2 (asked again after reconnecting)", m.batchCalls)
	}
}

// TestAckBatchRefusedAsAWhole: a batch the master refuses as a call (here
// PermissionDenied, as an ACL denial answers) fails each of its acks with
// that error, as the unary call would have; none is retried.
func TestAckBatchRefusedAsAWhole(t *testing.T) {
	m := newFakeMaster(t, func(m *fakeMaster) {
		m.batch = true
		m.batchErr = func(*corralpb.AcknowledgeBatchRequest) error {
			return status.Error(codes.PermissionDenied, "permission denied: framework fw-1 belongs to principal \"a\"")
		}
	})
	rec := &ackRecorder{recorder{m: m}}
	startRun(t, m, rec)
	sess := m.nextSession(t)
	sess.events <- updateEvent("t1", corralpb.TaskState_TASK_RUNNING, "u1")
	sess.events <- updateEvent("t2", corralpb.TaskState_TASK_RUNNING, "u2")
	waitFor(t, "both acks answered", func() bool {
		log := rec.entries()
		return slices.Contains(log, "acked t1 u1: PermissionDenied") && slices.Contains(log, "acked t2 u2: PermissionDenied")
	})
	sess.end <- status.Error(codes.Unavailable, "master restarting")
	m.nextSession(t)
	waitFor(t, "resubscribed", func() bool { return slices.Contains(rec.entries(), "subscribed fw-1 true") })
	if _, acks, _, _, _ := m.snapshot(); len(acks) != 0 {
		t.Errorf("refused acks reached the master: %v", acks)
	}
	for _, e := range rec.entries() {
		if strings.HasPrefix(e, "acked ") && !strings.HasSuffix(e, "PermissionDenied") {
			t.Errorf("refused ack observed again: %q", e)
		}
	}
}

func TestAckResults(t *testing.T) {
	res := func(code codes.Code, msg string) *corralpb.AcknowledgeBatchResponse_Result {
		return &corralpb.AcknowledgeBatchResponse_Result{Code: uint32(code), Message: msg}
	}
	tests := []struct {
		name    string
		results []*corralpb.AcknowledgeBatchResponse_Result
		n       int
		want    []string // per ack: "" when nil, else the error text
		wantErr string
	}{
		{"all taken", []*corralpb.AcknowledgeBatchResponse_Result{{}, {}}, 2, []string{"", ""}, ""},
		{"one refused", []*corralpb.AcknowledgeBatchResponse_Result{
			{}, res(codes.NotFound, "acknowledge: agent a9 is not registered"), {}}, 3,
			[]string{"", "acknowledge: NotFound: agent a9 is not registered", ""}, ""},
		{"each its own", []*corralpb.AcknowledgeBatchResponse_Result{
			res(codes.InvalidArgument, "acknowledge: uuid is required"), res(codes.Unavailable, "agent gone")}, 2,
			[]string{"acknowledge: InvalidArgument: uuid is required", "acknowledge: Unavailable: agent gone"}, ""},
		{"too few results", []*corralpb.AcknowledgeBatchResponse_Result{{}}, 2, nil, "1 results for 2 acks"},
		{"too many results", []*corralpb.AcknowledgeBatchResponse_Result{{}, {}}, 1, nil, "2 results for 1 acks"},
		{"empty", nil, 0, []string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, err := ackResults(&corralpb.AcknowledgeBatchResponse{Results: tt.results}, tt.n)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(errs))
			for i, e := range errs {
				if e != nil {
					got[i] = e.Error()
					var ce *CallError
					if !errors.As(e, &ce) || ce.Call != "acknowledge" || codes.Code(tt.results[i].GetCode()) != status.Code(e) {
						t.Errorf("ack %d: %v (%T) is not an acknowledge CallError with code %v", i, e, e, codes.Code(tt.results[i].GetCode()))
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUpdatesEventDeliveredAsUpdates: Run asks for UPDATES events and
// hands each one to the framework as its UPDATE events, in order, each
// acknowledged as if it had come alone.
func TestUpdatesEventDeliveredAsUpdates(t *testing.T) {
	m := newFakeMaster(t, func(m *fakeMaster) { m.batch = true })
	rec := &ackRecorder{recorder{m: m}}
	startRun(t, m, rec)
	sess := m.nextSession(t)
	if !sess.req.GetBatchUpdates() {
		t.Errorf("subscribed without batch_updates: %v", sess.req)
	}
	var ups []*corralpb.Event_Update
	for _, ev := range []*corralpb.Event{
		updateEvent("t1", corralpb.TaskState_TASK_RUNNING, "u1"),
		updateEvent("t2", corralpb.TaskState_TASK_RUNNING, "u2"),
		updateEvent("t1", corralpb.TaskState_TASK_FINISHED, "u3"),
	} {
		ups = append(ups, ev.GetUpdate())
	}
	sess.events <- &corralpb.Event{Event: &corralpb.Event_Updates_{Updates: &corralpb.Event_Updates{Updates: ups}}}
	sess.events <- rescindEvent("o-1")
	want := []string{"update t1 TASK_RUNNING", "update t2 TASK_RUNNING", "update t1 TASK_FINISHED", "rescind o-1"}
	waitFor(t, "the updates and the rescind", func() bool { return slices.Contains(rec.entries(), "rescind o-1") })
	var got []string
	for _, e := range rec.entries() {
		if strings.HasPrefix(e, "update ") || strings.HasPrefix(e, "rescind ") {
			got = append(got, e)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("callbacks %q, want %q", got, want)
	}
	waitFor(t, "three acks", func() bool { _, acks, _, _, _ := m.snapshot(); return len(acks) == 3 })
	_, acks, _, _, _ := m.snapshot()
	var t1 []string
	for _, a := range acks {
		if a.GetTaskId() == "t1" {
			t1 = append(t1, string(a.GetUuid()))
		}
	}
	if !slices.Equal(t1, []string{"u1", "u3"}) {
		t.Errorf("t1's acks %q, want u1 then u3", t1)
	}
}
