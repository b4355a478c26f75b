package mesos

import (
	"bytes"
	"math/rand"
	"net/http"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
)

func TestMarshalJSONLikeStout(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"doubles keep a fraction", &schedpb.Event{Type: schedpb.Event_SUBSCRIBED.Enum(), Subscribed: &schedpb.Event_Subscribed{
			FrameworkId: &mesospb.FrameworkID{Value: proto.String("f")}, HeartbeatIntervalSeconds: proto.Float64(15)}},
			`{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"f"},"heartbeat_interval_seconds":15.0}}`},
		{"heartbeat has no sub-object", &schedpb.Event{Type: schedpb.Event_HEARTBEAT.Enum()}, `{"type":"HEARTBEAT"}`},
		{"64-bit integers are bare, empty lists omitted", &mesospb.Resource{Name: proto.String("ports"), Type: mesospb.Value_RANGES.Enum(),
			Ranges: &mesospb.Value_Ranges{Range: []*mesospb.Value_Range{{Begin: proto.Uint64(31000), End: proto.Uint64(32000)}}}},
			`{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}}`},
		{"defaults written, deprecated ones not", &mesospb.FrameworkInfo{User: proto.String("u"), Name: proto.String("n")},
			`{"user":"u","name":"n","failover_timeout":0.0,"checkpoint":false}`},
		{"bytes are base64, big timestamps plain", &mesospb.TaskStatus{TaskId: &mesospb.TaskID{Value: proto.String("t")},
			State: mesospb.TaskState_TASK_RUNNING.Enum(), Uuid: []byte{1, 2, 3}, Timestamp: proto.Float64(1.7e9 + 0.25)},
			`{"task_id":{"value":"t"},"state":"TASK_RUNNING","timestamp":1700000000.25,"uuid":"AQID"}`},
		{"command shell default", &mesospb.CommandInfo{Value: proto.String("true")}, `{"shell":true,"value":"true"}`},
	} {
		if got := string(marshalJSON(tc.msg)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestMarshalJSONRoundTrip: whatever the strings and bytes, the JSON we
// write parses back to the same message.
func TestMarshalJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		raw := make([]byte, rng.Intn(24))
		rng.Read(raw)
		msg := string(raw)
		if i%2 == 0 {
			msg = "tab\t quote\" back\\ é ✓ \x00\x1f\x7f </script>"
		}
		in := &mesospb.TaskStatus{TaskId: &mesospb.TaskID{Value: proto.String(msg)}, State: mesospb.TaskState_TASK_FAILED.Enum(),
			Message: proto.String(msg), Data: raw, Timestamp: proto.Float64(rng.Float64() * 2e9)}
		b := marshalJSON(in)
		out := &mesospb.TaskStatus{}
		if err := protojson.Unmarshal(b, out); err != nil {
			t.Fatalf("%q does not parse: %v", b, err)
		}
		want := string([]rune(msg)) // each invalid byte becomes U+FFFD
		if out.GetMessage() != want || !bytes.Equal(out.GetData(), raw) || out.GetTimestamp() != in.GetTimestamp() {
			t.Fatalf("round trip of %q: got %v", msg, out)
		}
	}
}

func TestDecodeJSONLikeStout(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ok         bool
		check      func(*schedpb.Call) bool
	}{
		{"nulls are unset", `{"type":"DECLINE","framework_id":{"value":"f"},"decline":{"offer_ids":null,"filters":null}}`, true,
			func(c *schedpb.Call) bool { return c.Decline != nil && c.Decline.Filters == nil }},
		{"unknown keys ignored", `{"type":"REVIVE","framework_id":{"value":"f"},"extra":{"a":[1]}}`, true,
			func(c *schedpb.Call) bool { return c.GetType() == schedpb.Call_REVIVE }},
		{"unknown type name leaves type unset", `{"type":"FROBNICATE"}`, true, func(c *schedpb.Call) bool { return c.Type == nil }},
		{"numbers as strings and exponents", `{"type":"DECLINE","framework_id":{"value":"f"},"decline":{"filters":{"refuse_seconds":"3.6e+06"}}}`, true,
			func(c *schedpb.Call) bool { return c.GetDecline().GetFilters().GetRefuseSeconds() == 3.6e6 }},
		{"missing required field", `{"type":"KILL","framework_id":{"value":"f"},"kill":{}}`, false, nil},
		{"bad base64", `{"type":"MESSAGE","framework_id":{"value":"f"},"message":{"agent_id":{"value":"a"},"executor_id":{"value":"e"},"data":"%%%"}}`, false, nil},
	} {
		c := &schedpb.Call{}
		err := decode(typeJSON, []byte(tc.body), c)
		if (err == nil) != tc.ok || (err == nil && !tc.check(c)) {
			t.Errorf("%s: err %v, call %v", tc.name, err, c)
		}
	}
}

func TestRequestTypeExact(t *testing.T) {
	for _, tc := range []struct {
		ct   []string
		code int
	}{
		{nil, 400}, {[]string{"application/json"}, 0}, {[]string{"application/x-protobuf"}, 0},
		{[]string{"application/json; charset=utf-8"}, 415}, {[]string{"Application/JSON"}, 415},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		if tc.ct != nil {
			r.Header["Content-Type"] = tc.ct
		}
		if _, code, _ := requestType(r); code != tc.code {
			t.Errorf("Content-Type %q: %d, want %d", tc.ct, code, tc.code)
		}
	}
}

func TestRecordIO(t *testing.T) {
	if got := string(recordIO([]byte(`{"type":"HEARTBEAT"}`))); got != "20\n{\"type\":\"HEARTBEAT\"}" {
		t.Errorf("got %q", got)
	}
	if got := string(recordIO([]byte("é"))); got != "2\né" {
		t.Errorf("length counts bytes: got %q", got)
	}
}
