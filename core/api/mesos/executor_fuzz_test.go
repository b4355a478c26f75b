package mesos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/agent"
	"github.com/corral-project/corral/core/api/mesos"
	"github.com/corral-project/corral/core/api/mesos/executorpb"
	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/mesostest"
	"github.com/corral-project/corral/pluginapi/isolator"
)

// execTarget serves an agent's /api/v1/executor in-process. The agent is
// built but not run: it has no executor, so no call may start anything,
// and every call naming an executor is refused.
type execTarget struct {
	a       *agent.Agent
	handler http.Handler
}

func newExecTarget(t testing.TB) *execTarget {
	noIso := func(func(context.Context, isolator.Isolator) error) (agent.IsolatorHost, error) {
		t.Fatal("the fuzz target must not start an isolator")
		return nil, nil
	}
	a, err := agent.NewWithPlugins(agent.Config{WorkDir: t.TempDir(), Hostname: "fuzz"},
		agent.Plugins{Isolator: noIso, Executors: noExecutors{t}}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return &execTarget{a: a, handler: mesos.NewExecutorHandler(a, nil)}
}

type noExecutors struct{ t testing.TB }

func (n noExecutors) Launch(context.Context, string, string) (*agent.ExecutorHandle, error) {
	n.t.Fatal("the fuzz target must not launch an executor")
	return nil, nil
}

func (n noExecutors) Reattach(context.Context, string, string, json.RawMessage) (*agent.ExecutorHandle, error) {
	n.t.Fatal("the fuzz target must not reattach an executor")
	return nil, nil
}

// check: no panic; an undecodable body is a 4xx; a decodable one is a 4xx
// too unless it is a HEARTBEAT (202) or of an unknown type (501); nothing
// is launched.
func (f *execTarget) check(t testing.TB, ctype string, body []byte) {
	t.Helper()
	var call executorpb.Call
	var decodeErr error
	if ctype == mesostest.Protobuf {
		decodeErr = proto.Unmarshal(body, &call)
	} else {
		decodeErr = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, &call)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/executor", bytes.NewReader(body)).WithContext(doneCtx)
	req.Header.Set("Content-Type", ctype)
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	code := rec.Code
	switch {
	case decodeErr != nil && (code < 400 || code >= 500):
		t.Fatalf("undecodable %s body %q answered %d, want 4xx", ctype, body, code)
	case decodeErr == nil && call.GetType() == executorpb.Call_HEARTBEAT && call.Type != nil:
		if code != http.StatusAccepted && code != http.StatusBadRequest {
			t.Fatalf("heartbeat %q answered %d", body, code)
		}
	case decodeErr == nil && call.GetType() == executorpb.Call_UNKNOWN && call.Type != nil:
		if code != http.StatusNotImplemented && code != http.StatusBadRequest {
			t.Fatalf("UNKNOWN call %q answered %d", body, code)
		}
	case code < 400 || code >= 500:
		t.Fatalf("%s body %q answered %d, want 4xx (the agent runs no executor)", ctype, body, code)
	}
	if s := f.a.State(); len(s.Tasks) > 0 {
		t.Fatalf("body %q started something: %+v", body, s.Tasks)
	}
}

var execSeeds = []string{
	`{"type":"SUBSCRIBE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"subscribe":{}}`,
	`{"type":"UPDATE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"AAAAAAAAQAAAAAAAAAAAAA=="}}}`,
	`{"type":"MESSAGE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"message":{"data":"aGk="}}`,
	`{"type":"HEARTBEAT","framework_id":{"value":"f"},"executor_id":{"value":"e"}}`,
	`{"type":"UPDATE","framework_id":{"value":"f"},"executor_id":{"value":"e"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_STAGING","source":"SOURCE_EXECUTOR","uuid":"AAAAAAAAQAAAAAAAAAAAAA=="}}}`,
	`{"type":null}`, `[]`, "", "\x08\x01", "\x0a\x03\x0a\x01e",
}

func execProtoSeeds() [][]byte {
	id := func(v string) *mesospb.ExecutorID { return &mesospb.ExecutorID{Value: proto.String(v)} }
	fid := &mesospb.FrameworkID{Value: proto.String("f")}
	var out [][]byte
	for _, c := range []*executorpb.Call{
		{Type: executorpb.Call_SUBSCRIBE.Enum(), ExecutorId: id("e"), FrameworkId: fid, Subscribe: &executorpb.Call_Subscribe{}},
		{Type: executorpb.Call_UPDATE.Enum(), ExecutorId: id("e"), FrameworkId: fid, Update: &executorpb.Call_Update{Status: &mesospb.TaskStatus{
			TaskId: &mesospb.TaskID{Value: proto.String("t")}, State: mesospb.TaskState_TASK_RUNNING.Enum(),
			Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), Uuid: make([]byte, 16)}}},
		{Type: executorpb.Call_MESSAGE.Enum(), ExecutorId: id("e"), FrameworkId: fid, Message: &executorpb.Call_Message{Data: []byte("x")}},
	} {
		b, _ := proto.Marshal(c)
		out = append(out, b)
	}
	return out
}

func FuzzExecutorJSON(f *testing.F) {
	for _, s := range execSeeds {
		f.Add([]byte(s))
	}
	target := newExecTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { target.check(t, mesostest.JSON, body) })
}

func FuzzExecutorProtobuf(f *testing.F) {
	for _, s := range execSeeds {
		f.Add([]byte(s))
	}
	for _, b := range execProtoSeeds() {
		f.Add(b)
	}
	target := newExecTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { target.check(t, mesostest.Protobuf, body) })
}

// TestRandomExecutorBodies is the property in every `go test` run:
// thousands of seeded random bodies and mutations of valid calls.
func TestRandomExecutorBodies(t *testing.T) {
	target := newExecTarget(t)
	rng := rand.New(rand.NewSource(1))
	valid := execProtoSeeds()
	for _, s := range execSeeds {
		valid = append(valid, []byte(s))
	}
	for i := 0; i < 3000; i++ {
		body := randomBody(rng, i, valid)
		for _, ct := range []string{mesostest.JSON, mesostest.Protobuf} {
			target.check(t, ct, body)
		}
	}
	// The valid calls themselves: a 4xx naming the missing executor.
	for _, b := range execProtoSeeds()[:1] {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/executor", bytes.NewReader(b))
		req.Header.Set("Content-Type", mesostest.Protobuf)
		rec := httptest.NewRecorder()
		target.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !bytes.Contains(rec.Body.Bytes(), []byte(`executor "e" of framework "f" is not running`)) {
			t.Fatalf("SUBSCRIBE of an unknown executor: %d %q", rec.Code, rec.Body.String())
		}
	}
}
