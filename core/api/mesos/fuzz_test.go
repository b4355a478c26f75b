package mesos_test

import (
	"bytes"
	"context"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos"
	"github.com/corral-project/corral/core/api/mesos/masterpb"
	"github.com/corral-project/corral/core/api/mesos/mesostest"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
	"github.com/corral-project/corral/core/master"
)

// fuzzTarget serves one master's Mesos endpoints in-process. Requests carry
// a cancelled context so that a body that happens to be a valid SUBSCRIBE
// is answered and its stream ends at once instead of blocking the fuzzer.
type fuzzTarget struct {
	m       *master.Master
	handler http.Handler
}

func newFuzzTarget(t testing.TB) *fuzzTarget {
	m, err := master.New(master.Config{}, master.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mesos.New(m, mesos.Options{}).Register(mux)
	return &fuzzTarget{m: m, handler: mux}
}

var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (f *fuzzTarget) post(path, ctype string, body []byte) int {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)).WithContext(doneCtx)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Mesos-Stream-Id", "fuzz")
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec.Code
}

// check feeds one body to both endpoints: no panic; a body that is not a
// well-formed call gets a 4xx; nothing is ever launched.
func (f *fuzzTarget) check(t testing.TB, ctype string, body []byte) {
	t.Helper()
	var call schedpb.Call
	var decodeErr error
	if ctype == mesostest.Protobuf {
		decodeErr = proto.Unmarshal(body, &call)
	} else {
		decodeErr = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, &call)
	}
	code := f.post("/api/v1/scheduler", ctype, body)
	if decodeErr != nil && (code < 400 || code >= 500) {
		t.Fatalf("scheduler: undecodable %s body %q answered %d, want 4xx", ctype, body, code)
	}
	if code >= 500 && code != http.StatusNotImplemented {
		t.Fatalf("scheduler: body %q answered %d", body, code)
	}
	var op masterpb.Call
	code = f.post("/api/v1", ctype, body)
	if ctype == mesostest.Protobuf {
		decodeErr = proto.Unmarshal(body, &op)
	} else {
		decodeErr = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, &op)
	}
	if decodeErr != nil && (code < 400 || code >= 500) {
		t.Fatalf("operator: undecodable %s body %q answered %d, want 4xx", ctype, body, code)
	}
	for _, fw := range f.m.Snapshot().Frameworks {
		if len(fw.Tasks) > 0 {
			t.Fatalf("body %q launched tasks: %+v", body, fw.Tasks)
		}
	}
}

var seeds = []string{
	`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}`,
	`{"type":"ACCEPT","framework_id":{"value":"f"},"accept":{"offer_ids":[{"value":"o"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t"},"agent_id":{"value":"a"},"command":{"value":"true"}}]}}]}}`,
	`{"type":"ACKNOWLEDGE","framework_id":{"value":"f"},"acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAAAAAAAQAAAAAAAAAAAAA=="}}`,
	`{"type":"GET_STATE"}`, `{"type":null}`, `[]`, `{"type":"KILL","kill":{"task_id":{"value":1}}}`, "", "\x08\x01", "\x10\x03\"\x00",
}

func FuzzSchedulerJSON(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	target := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { target.check(t, mesostest.JSON, body) })
}

func FuzzSchedulerProtobuf(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	for _, c := range []proto.Message{mesostest.SubscribeCall("fw"), &masterpb.Call{Type: masterpb.Call_GET_TASKS.Enum()}} {
		b, _ := proto.Marshal(c)
		f.Add(b)
	}
	target := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { target.check(t, mesostest.Protobuf, body) })
}

// TestRandomBodies is the property in every `go test` run: thousands of
// seeded random bodies, mutations of valid calls among them.
func TestRandomBodies(t *testing.T) {
	target := newFuzzTarget(t)
	rng := rand.New(rand.NewSource(1))
	valid := [][]byte{}
	for _, s := range seeds {
		valid = append(valid, []byte(s))
	}
	for i := 0; i < 3000; i++ {
		body := randomBody(rng, i, valid)
		for _, ct := range []string{mesostest.JSON, mesostest.Protobuf} {
			target.check(t, ct, body)
		}
	}
}
