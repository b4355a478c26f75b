package mesos_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos"
	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/mesostest"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
	"github.com/corral-project/corral/core/master"
)

// wait bounds how long a test waits for an event; it is a deadline for a
// condition, never a pace.
const wait = 30 * time.Second

// startServer serves the adapter over a master with no agents: enough for
// everything but offers and launches (those are in cmd/corral's e2e test).
func startServer(t testing.TB) (*master.Master, string) {
	t.Helper()
	m, err := master.New(master.Config{}, master.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mesos.New(m, mesos.Options{Version: "test"}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return m, strings.TrimPrefix(srv.URL, "http://")
}

var encodings = []string{mesostest.JSON, mesostest.Protobuf}

func subscribe(t testing.TB, c *mesostest.Client, call *schedpb.Call) *mesostest.Stream {
	t.Helper()
	s, err := c.Subscribe(context.Background(), call, c.ContentType)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ev, err := s.Next()
	if err != nil || ev.GetType() != schedpb.Event_SUBSCRIBED {
		t.Fatalf("first event: %v %v, want SUBSCRIBED", ev, err)
	}
	if ev, err := s.Next(); err != nil || ev.GetType() != schedpb.Event_HEARTBEAT {
		t.Fatalf("second event: %v %v, want HEARTBEAT", ev, err)
	}
	return s
}

func TestSubscribeStream(t *testing.T) {
	for _, enc := range encodings {
		t.Run(enc, func(t *testing.T) {
			_, addr := startServer(t)
			c := mesostest.New(addr, enc)
			s := subscribe(t, c, mesostest.SubscribeCall("fw"))
			if s.ContentType != enc {
				t.Errorf("stream Content-Type %q, want %q (the message type, not recordio)", s.ContentType, enc)
			}
			if s.ID == "" || s.FrameworkID == "" {
				t.Errorf("stream id %q, framework id %q: both must be set", s.ID, s.FrameworkID)
			}
		})
	}
}

func TestAcceptNegotiation(t *testing.T) {
	_, addr := startServer(t)
	for _, tc := range []struct {
		accept string
		want   string // "" = 406
	}{
		{"", mesostest.JSON},
		{"*/*", mesostest.JSON},
		{"application/*", mesostest.JSON},
		{"application/x-protobuf, application/json", mesostest.JSON},
		{"application/x-protobuf", mesostest.Protobuf},
		{"application/json;q=0, application/x-protobuf", mesostest.Protobuf},
		{"APPLICATION/X-PROTOBUF", mesostest.Protobuf},
		{"text/plain", ""},
	} {
		c := mesostest.New(addr, mesostest.JSON)
		s, err := c.Subscribe(context.Background(), mesostest.SubscribeCall("fw"), tc.accept)
		if tc.want == "" {
			if s == nil || s.Status != http.StatusNotAcceptable {
				t.Errorf("Accept %q: %v, want 406", tc.accept, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Accept %q: %v", tc.accept, err)
		}
		if s.ContentType != tc.want {
			t.Errorf("Accept %q: got %q, want %q", tc.accept, s.ContentType, tc.want)
		}
		if ev, err := s.Next(); err != nil || ev.GetType() != schedpb.Event_SUBSCRIBED {
			t.Errorf("Accept %q: first event %v %v", tc.accept, ev, err)
		}
		s.Close()
	}
	// The same Accept line twice is one list, not an error.
	c := mesostest.New(addr, mesostest.JSON)
	b, _ := c.Encode(mesostest.SubscribeCall("dup"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(b))
	req.Header["Content-Type"] = []string{mesostest.JSON}
	req.Header["Accept"] = []string{mesostest.JSON, mesostest.JSON}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != mesostest.JSON {
		t.Errorf("doubled Accept: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func id(v string) *mesospb.TaskID { return &mesospb.TaskID{Value: proto.String(v)} }

func TestErrorStatuses(t *testing.T) {
	for _, enc := range encodings {
		t.Run(enc, func(t *testing.T) {
			_, addr := startServer(t)
			c := mesostest.New(addr, enc)
			s := subscribe(t, c, mesostest.SubscribeCall("fw"))
			fid := mesostest.FID(s.FrameworkID)
			ctx := context.Background()
			post := func(body []byte, h http.Header) mesostest.Response {
				r, err := c.Post(ctx, body, h)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			enc1 := func(call *schedpb.Call) []byte {
				b, err := c.Encode(call)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			ct := http.Header{"Content-Type": {enc}}
			withStream := func(sid string) http.Header {
				return http.Header{"Content-Type": {enc}, "Mesos-Stream-Id": {sid}}
			}
			revive := &schedpb.Call{FrameworkId: fid, Type: schedpb.Call_REVIVE.Enum()}
			for _, tc := range []struct {
				name   string
				body   []byte
				header http.Header
				want   int
				in     string // in the body
			}{
				{"no content type", enc1(revive), http.Header{}, 400, "Content-Type"},
				{"content type with charset", enc1(revive), http.Header{"Content-Type": {enc + "; charset=utf-8"}}, 415, ""},
				{"other content type", enc1(revive), http.Header{"Content-Type": {"text/plain"}}, 415, ""},
				{"garbage body", []byte("\xff{not a call"), ct, 400, "Failed to parse"},
				{"no type", enc1(&schedpb.Call{FrameworkId: fid}), ct, 400, "'type'"},
				{"subscribe without subscribe", enc1(&schedpb.Call{Type: schedpb.Call_SUBSCRIBE.Enum()}), ct, 400, "subscribe"},
				{"subscribe with mismatched ids", enc1(func() *schedpb.Call {
					c := mesostest.SubscribeCall("x")
					c.FrameworkId = mesostest.FID("other")
					return c
				}()), ct, 400, "framework_id"},
				{"subscribe with a stream id", enc1(mesostest.SubscribeCall("x")), withStream("s"), 400, "Mesos-Stream-Id"},
				{"call without framework id", enc1(&schedpb.Call{Type: schedpb.Call_REVIVE.Enum()}), withStream(s.ID), 400, "framework_id"},
				{"unknown framework", enc1(&schedpb.Call{FrameworkId: mesostest.FID("nope"), Type: schedpb.Call_REVIVE.Enum()}), withStream(s.ID), 400, "Framework cannot be found"},
				{"missing stream id", enc1(revive), ct, 400, "Mesos-Stream-Id"},
				{"wrong stream id", enc1(revive), withStream("stale"), 400, "didn't match"},
				{"accept without accept", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_ACCEPT.Enum()}), withStream(s.ID), 400, "accept"},
				{"ack with a bad uuid", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_ACKNOWLEDGE.Enum(),
					Acknowledge: &schedpb.Call_Acknowledge{AgentId: &mesospb.AgentID{Value: proto.String("a")}, TaskId: id("t"), Uuid: []byte("short")}}),
					withStream(s.ID), 400, "UUID"},
				{"unknown call", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_UNKNOWN.Enum()}), withStream(s.ID), 501, ""},
				{"reserve refused", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_ACCEPT.Enum(), Accept: &schedpb.Call_Accept{
					Operations: []*mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_RESERVE.Enum()}}}}), withStream(s.ID), 400, "RESERVE is not supported"},
				{"launch group refused", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_ACCEPT.Enum(), Accept: &schedpb.Call_Accept{
					Operations: []*mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_LAUNCH_GROUP.Enum()}}}}), withStream(s.ID), 400, "LAUNCH_GROUP is not supported"},
				{"update framework changing user", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_UPDATE_FRAMEWORK.Enum(),
					UpdateFramework: &schedpb.Call_UpdateFramework{FrameworkInfo: &mesospb.FrameworkInfo{Id: fid, User: proto.String("other"), Name: proto.String("fw")}}}),
					withStream(s.ID), 400, "user"},
				{"accept inverse offers", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_ACCEPT_INVERSE_OFFERS.Enum(),
					AcceptInverseOffers: &schedpb.Call_AcceptInverseOffers{}}), withStream(s.ID), 202, ""},
				{"decline inverse offers", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_DECLINE_INVERSE_OFFERS.Enum(),
					DeclineInverseOffers: &schedpb.Call_DeclineInverseOffers{}}), withStream(s.ID), 202, ""},
				{"reconcile no operations", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_RECONCILE_OPERATIONS.Enum(),
					ReconcileOperations: &schedpb.Call_ReconcileOperations{}}), withStream(s.ID), 202, ""},
				{"reconcile operations refused", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_RECONCILE_OPERATIONS.Enum(),
					ReconcileOperations: &schedpb.Call_ReconcileOperations{Operations: []*schedpb.Call_ReconcileOperations_Operation{
						{OperationId: &mesospb.OperationID{Value: proto.String("op")}}}}}), withStream(s.ID), 400, "operation feedback"},
				{"acknowledge operation status refused", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_ACKNOWLEDGE_OPERATION_STATUS.Enum(),
					AcknowledgeOperationStatus: &schedpb.Call_AcknowledgeOperationStatus{AgentId: &mesospb.AgentID{Value: proto.String("a")},
						OperationId: &mesospb.OperationID{Value: proto.String("op")}, Uuid: []byte("0123456789ab\x40def")[:16]}}), withStream(s.ID), 400, "operation feedback"},
				{"shutdown of an unknown executor", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_SHUTDOWN.Enum(), Shutdown: &schedpb.Call_Shutdown{
					ExecutorId: &mesospb.ExecutorID{Value: proto.String("e")}, AgentId: &mesospb.AgentID{Value: proto.String("a")}}}), withStream(s.ID), 202, ""},
				{"revive", enc1(revive), withStream(s.ID), 202, ""},
				{"suppress", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_SUPPRESS.Enum()}), withStream(s.ID), 202, ""},
				{"decline nothing", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_DECLINE.Enum(), Decline: &schedpb.Call_Decline{}}), withStream(s.ID), 202, ""},
				{"decline stale offers", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_DECLINE.Enum(), Decline: &schedpb.Call_Decline{
					OfferIds: []*mesospb.OfferID{{Value: proto.String("gone")}}}}), withStream(s.ID), 202, ""},
				{"request", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_REQUEST.Enum(), Request: &schedpb.Call_Request{}}), withStream(s.ID), 202, ""},
				{"message to nobody", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_MESSAGE.Enum(), Message: &schedpb.Call_Message{
					AgentId: &mesospb.AgentID{Value: proto.String("a")}, ExecutorId: &mesospb.ExecutorID{Value: proto.String("e")}, Data: []byte("hi")}}),
					withStream(s.ID), 202, ""},
				{"update framework", enc1(&schedpb.Call{FrameworkId: fid, Type: schedpb.Call_UPDATE_FRAMEWORK.Enum(),
					UpdateFramework: &schedpb.Call_UpdateFramework{FrameworkInfo: &mesospb.FrameworkInfo{Id: fid, User: proto.String("root"), Name: proto.String("renamed")}}}),
					withStream(s.ID), 200, ""},
			} {
				r := post(tc.body, tc.header)
				if r.Status != tc.want || !strings.Contains(r.Body, tc.in) {
					t.Errorf("%s: %d %q, want %d containing %q", tc.name, r.Status, r.Body, tc.want, tc.in)
				}
				if r.Status == 202 || r.Status == 200 {
					if r.Body != "" || r.ContentType != "" {
						t.Errorf("%s: %d with body %q and Content-Type %q, want neither", tc.name, r.Status, r.Body, r.ContentType)
					}
				} else if r.ContentType != "text/plain; charset=utf-8" {
					t.Errorf("%s: error Content-Type %q", tc.name, r.ContentType)
				}
			}
			req, _ := http.NewRequest(http.MethodGet, c.URL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
				t.Errorf("GET: %d Allow %q, want 405 POST", resp.StatusCode, resp.Header.Get("Allow"))
			}
		})
	}
}

func TestNotSubscribedIs403(t *testing.T) {
	_, addr := startServer(t)
	c := mesostest.New(addr, mesostest.JSON)
	call := mesostest.SubscribeCall("fw")
	// A failover timeout keeps the framework after its stream breaks.
	call.Subscribe.FrameworkInfo.FailoverTimeout = proto.Float64(3600)
	s := subscribe(t, c, call)
	s.Close()
	fid := mesostest.FID(s.FrameworkID)
	deadline := time.Now().Add(wait)
	for {
		r, err := c.Call(context.Background(), s.ID, &schedpb.Call{FrameworkId: fid, Type: schedpb.Call_REVIVE.Enum()})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls after the stream closed still answer %d %q", r.Status, r.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFailoverResubscribe(t *testing.T) {
	for _, enc := range encodings {
		t.Run(enc, func(t *testing.T) {
			_, addr := startServer(t)
			c := mesostest.New(addr, enc)
			call := mesostest.SubscribeCall("fw")
			call.Subscribe.FrameworkInfo.FailoverTimeout = proto.Float64(3600)
			old := subscribe(t, c, call)

			again := mesostest.SubscribeCall("fw")
			again.FrameworkId = mesostest.FID(old.FrameworkID)
			again.Subscribe.FrameworkInfo.Id = mesostest.FID(old.FrameworkID)
			again.Subscribe.FrameworkInfo.FailoverTimeout = proto.Float64(3600)
			s := subscribe(t, c, again)
			if s.FrameworkID != old.FrameworkID || s.ID == old.ID {
				t.Fatalf("re-subscribed as %s on stream %s; want %s on a new stream", s.FrameworkID, s.ID, old.FrameworkID)
			}
			ev, err := old.Await(wait, "ERROR on the old stream", func(e *schedpb.Event) bool { return e.GetType() == schedpb.Event_ERROR })
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetError().GetMessage() != "Framework failed over" {
				t.Errorf("old stream error %q", ev.GetError().GetMessage())
			}
			if _, err := old.Next(); err == nil {
				t.Errorf("the old stream goes on after the failover")
			}
			r, err := c.Call(context.Background(), old.ID, &schedpb.Call{FrameworkId: mesostest.FID(s.FrameworkID), Type: schedpb.Call_REVIVE.Enum()})
			if err != nil || r.Status != 400 {
				t.Errorf("call on the old stream id: %d %v, want 400", r.Status, err)
			}
			r, err = c.Call(context.Background(), s.ID, &schedpb.Call{FrameworkId: mesostest.FID(s.FrameworkID), Type: schedpb.Call_REVIVE.Enum()})
			if err != nil || r.Status != 202 {
				t.Errorf("call on the new stream: %d %v, want 202", r.Status, err)
			}
		})
	}
}

func TestAsyncSubscribeRefusal(t *testing.T) {
	_, addr := startServer(t)
	c := mesostest.New(addr, mesostest.JSON)
	call := mesostest.SubscribeCall("fw")
	call.Subscribe.FrameworkInfo.Roles = []string{"a"} // without MULTI_ROLE
	s, err := c.Subscribe(context.Background(), call, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, err := s.Next()
	if err != nil || ev.GetType() != schedpb.Event_ERROR || !strings.Contains(ev.GetError().GetMessage(), "MULTI_ROLE") {
		t.Fatalf("got %v %v, want one ERROR about MULTI_ROLE", ev, err)
	}
	if _, err := s.Next(); err == nil {
		t.Errorf("stream continues after the refusal")
	}
}

// TestMasterGeneratedUpdates: reconciliation, kills of unknown tasks and
// launches on unusable offers answer with UPDATE events from the master,
// without uuid.
func TestMasterGeneratedUpdates(t *testing.T) {
	for _, enc := range encodings {
		t.Run(enc, func(t *testing.T) {
			m, addr := startServer(t)
			c := mesostest.New(addr, enc)
			s := subscribe(t, c, mesostest.SubscribeCall("fw", mesospb.FrameworkInfo_Capability_MULTI_ROLE))
			fid := mesostest.FID(s.FrameworkID)
			agent := &mesospb.AgentID{Value: proto.String("agent-x")}
			cpus := []*mesospb.Resource{{Name: proto.String("cpus"), Type: mesospb.Value_SCALAR.Enum(), Scalar: &mesospb.Value_Scalar{Value: proto.Float64(0.1)}}}
			task := func(name string, cmd *mesospb.CommandInfo) *mesospb.TaskInfo {
				return &mesospb.TaskInfo{Name: proto.String(name), TaskId: id(name), AgentId: agent, Resources: cpus, Command: cmd}
			}
			for _, tc := range []struct {
				name   string
				call   *schedpb.Call
				task   string
				state  mesospb.TaskState
				reason mesospb.TaskStatus_Reason
			}{
				{"explicit reconcile", &schedpb.Call{Type: schedpb.Call_RECONCILE.Enum(), Reconcile: &schedpb.Call_Reconcile{
					Tasks: []*schedpb.Call_Reconcile_Task{{TaskId: id("ghost")}}}}, "ghost", mesospb.TaskState_TASK_LOST, mesospb.TaskStatus_REASON_RECONCILIATION},
				{"kill unknown", &schedpb.Call{Type: schedpb.Call_KILL.Enum(), Kill: &schedpb.Call_Kill{TaskId: id("ghost2")}},
					"ghost2", mesospb.TaskState_TASK_LOST, mesospb.TaskStatus_REASON_RECONCILIATION},
				{"launch on a stale offer", &schedpb.Call{Type: schedpb.Call_ACCEPT.Enum(), Accept: &schedpb.Call_Accept{
					OfferIds: []*mesospb.OfferID{{Value: proto.String("stale")}},
					Operations: []*mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{
						TaskInfos: []*mesospb.TaskInfo{task("t1", &mesospb.CommandInfo{Value: proto.String("true")})}}}}}},
					"t1", mesospb.TaskState_TASK_LOST, mesospb.TaskStatus_REASON_INVALID_OFFERS},
				{"launch with uris", &schedpb.Call{Type: schedpb.Call_ACCEPT.Enum(), Accept: &schedpb.Call_Accept{
					OfferIds: []*mesospb.OfferID{{Value: proto.String("stale")}},
					Operations: []*mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{
						TaskInfos: []*mesospb.TaskInfo{task("t2", &mesospb.CommandInfo{Value: proto.String("true"),
							Uris: []*mesospb.CommandInfo_URI{{Value: proto.String("http://example.com/x.tgz")}}})}}}}}},
					"t2", mesospb.TaskState_TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID},
				{"launch with an executor", &schedpb.Call{Type: schedpb.Call_ACCEPT.Enum(), Accept: &schedpb.Call_Accept{
					OfferIds: []*mesospb.OfferID{{Value: proto.String("stale")}},
					Operations: []*mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{
						TaskInfos: []*mesospb.TaskInfo{{Name: proto.String("t3"), TaskId: id("t3"), AgentId: agent, Resources: cpus,
							Executor: &mesospb.ExecutorInfo{ExecutorId: &mesospb.ExecutorID{Value: proto.String("e")}}}}}}}}},
					"t3", mesospb.TaskState_TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID},
			} {
				tc.call.FrameworkId = fid
				r, err := c.Call(context.Background(), s.ID, tc.call)
				if err != nil || r.Status != 202 {
					t.Fatalf("%s: %d %q %v, want 202", tc.name, r.Status, r.Body, err)
				}
				ev, err := s.Await(wait, tc.name+" update", func(e *schedpb.Event) bool { return e.GetType() == schedpb.Event_UPDATE })
				if err != nil {
					t.Fatal(err)
				}
				st := ev.GetUpdate().GetStatus()
				if st.GetTaskId().GetValue() != tc.task || st.GetState() != tc.state || st.GetReason() != tc.reason ||
					st.GetSource() != mesospb.TaskStatus_SOURCE_MASTER || st.Uuid != nil || st.Timestamp == nil {
					t.Errorf("%s: update %v, want %s %s %s from the master without uuid", tc.name, st, tc.task, tc.state, tc.reason)
				}
			}
			if n := len(m.Snapshot().Frameworks[0].Tasks); n != 0 {
				t.Errorf("%d tasks launched, want none", n)
			}
		})
	}
}

func TestTeardownEndsStream(t *testing.T) {
	m, addr := startServer(t)
	c := mesostest.New(addr, mesostest.Protobuf)
	s := subscribe(t, c, mesostest.SubscribeCall("fw"))
	r, err := c.Call(context.Background(), s.ID, &schedpb.Call{FrameworkId: mesostest.FID(s.FrameworkID), Type: schedpb.Call_TEARDOWN.Enum()})
	if err != nil || r.Status != 202 {
		t.Fatalf("TEARDOWN: %d %v", r.Status, err)
	}
	if _, err := s.Await(wait, "end of stream", func(*schedpb.Event) bool { return false }); err == nil || strings.Contains(err.Error(), "timed out") {
		t.Errorf("stream after teardown: %v, want EOF", err)
	}
	if n := len(m.Snapshot().Frameworks); n != 0 {
		t.Errorf("%d frameworks after teardown", n)
	}
	// As in Mesos, a removed framework cannot come back under its ID: the
	// refusal is a 200 with one ERROR event.
	again := mesostest.SubscribeCall("fw")
	again.FrameworkId = mesostest.FID(s.FrameworkID)
	again.Subscribe.FrameworkInfo.Id = mesostest.FID(s.FrameworkID)
	s2, err := c.Subscribe(context.Background(), again, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if ev, err := s2.Next(); err != nil || ev.GetType() != schedpb.Event_ERROR || !strings.Contains(ev.GetError().GetMessage(), "removed") {
		t.Errorf("re-subscribing a removed framework: %v %v, want an ERROR", ev, err)
	}
}

// TestDemandAndSuppression: REQUEST feeds corral's declared demand, and
// SUPPRESS/REVIVE reach the books, through /master/api/v1/scheduler.
func TestDemandAndSuppression(t *testing.T) {
	m, addr := startServer(t)
	c := mesostest.New(addr, mesostest.JSON)
	c.URL = "http://" + addr + "/master/api/v1/scheduler"
	s := subscribe(t, c, mesostest.SubscribeCall("fw"))
	fid := mesostest.FID(s.FrameworkID)
	send := func(call *schedpb.Call) {
		t.Helper()
		call.FrameworkId = fid
		if r, err := c.Call(context.Background(), s.ID, call); err != nil || r.Status != 202 {
			t.Fatalf("%s: %d %q %v", call.GetType(), r.Status, r.Body, err)
		}
	}
	cpus := []*mesospb.Resource{{Name: proto.String("cpus"), Type: mesospb.Value_SCALAR.Enum(), Scalar: &mesospb.Value_Scalar{Value: proto.Float64(0.5)}}}
	send(&schedpb.Call{Type: schedpb.Call_REQUEST.Enum(), Request: &schedpb.Call_Request{Requests: []*mesospb.Request{{Resources: cpus}, {Resources: cpus}}}})
	fw := m.Snapshot().Frameworks[0]
	if len(fw.Demand["*"]) != 2 || fw.Demand["*"][0].Resources != "cpus:0.5" {
		t.Errorf("demand after REQUEST: %+v", fw.Demand)
	}
	send(&schedpb.Call{Type: schedpb.Call_SUPPRESS.Enum()})
	if fw := m.Snapshot().Frameworks[0]; len(fw.Suppressed) != 1 || len(fw.Demand) != 0 {
		t.Errorf("after SUPPRESS: suppressed %v demand %v", fw.Suppressed, fw.Demand)
	}
	send(&schedpb.Call{Type: schedpb.Call_REVIVE.Enum(), Revive: &schedpb.Call_Revive{Roles: []string{"*"}}})
	if fw := m.Snapshot().Frameworks[0]; len(fw.Suppressed) != 0 {
		t.Errorf("after REVIVE: suppressed %v", fw.Suppressed)
	}
}

// TestOneRecordPerChunk reads the raw HTTP/1.1 response: chunked (even
// with Connection: close), and every chunk is exactly one RecordIO record,
// as Mesos sends them and as some clients rely on.
func TestOneRecordPerChunk(t *testing.T) {
	_, addr := startServer(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"raw"}}}`
	fmt.Fprintf(conn, "POST /api/v1/scheduler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	r := bufio.NewReader(conn)
	var headers []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		headers = append(headers, strings.TrimSpace(line))
	}
	joined := strings.Join(headers, "\n")
	if !strings.HasPrefix(joined, "HTTP/1.1 200") || !strings.Contains(joined, "Transfer-Encoding: chunked") ||
		strings.Contains(joined, "Content-Length") || !strings.Contains(joined, "Mesos-Stream-Id: ") {
		t.Fatalf("headers:\n%s", joined)
	}
	for i, want := range []string{"SUBSCRIBED", "HEARTBEAT"} {
		sizeLine, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(sizeLine), 16, 64)
		if err != nil {
			t.Fatalf("chunk %d size %q", i, sizeLine)
		}
		chunk := make([]byte, size+2)
		if _, err := io.ReadFull(r, chunk); err != nil {
			t.Fatal(err)
		}
		chunk = chunk[:size]
		n, rest, ok := bytes.Cut(chunk, []byte("\n"))
		length, err := strconv.Atoi(string(n))
		if !ok || err != nil || length != len(rest) {
			t.Fatalf("chunk %d %q is not exactly one record", i, chunk)
		}
		if !bytes.Contains(rest, []byte(`"type":"`+want+`"`)) {
			t.Errorf("chunk %d is %q, want %s", i, rest, want)
		}
	}
}
