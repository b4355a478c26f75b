package master_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestAcknowledgeBatchPerAck: each ack of a batch gets what Acknowledge
// would have answered for it alone; the refused ones do not keep the
// others from their agent, which gets them in the batch's order.
func TestAcknowledgeBatchPerAck(t *testing.T) {
	// With its registry loaded the master knows which agents it awaits; a
	// master without one takes acks for any agent for a while after it
	// starts (it cannot tell one that is about to re-register).
	c := startMaster(t, master.Config{RegistryPath: filepath.Join(t.TempDir(), "registry.json")})
	waitUntil(t, "the registry loaded", func() bool { _, loaded := c.m.ExpectedAgents(); return loaded })
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	ctx := context.Background()
	cases := []struct {
		name    string
		ack     *corralpb.AcknowledgeBatchRequest_Ack
		code    codes.Code
		message string // a word of the refusal's message
	}{
		{"relayed", &corralpb.AcknowledgeBatchRequest_Ack{AgentId: a.id, TaskId: "t1", Uuid: []byte("u1")}, codes.OK, ""},
		{"no task", &corralpb.AcknowledgeBatchRequest_Ack{AgentId: a.id, Uuid: []byte("u")}, codes.InvalidArgument, "task_id is required"},
		{"no uuid", &corralpb.AcknowledgeBatchRequest_Ack{AgentId: a.id, TaskId: "t1"}, codes.InvalidArgument, "uuid is required"},
		{"no agent", &corralpb.AcknowledgeBatchRequest_Ack{TaskId: "t1", Uuid: []byte("u")}, codes.InvalidArgument, "agent_id is required"},
		{"unknown agent", &corralpb.AcknowledgeBatchRequest_Ack{AgentId: "ghost", TaskId: "t1", Uuid: []byte("u")}, codes.NotFound, "agent ghost is not registered"},
		{"relayed after refusals", &corralpb.AcknowledgeBatchRequest_Ack{AgentId: a.id, TaskId: "t2", Uuid: []byte("u2")}, codes.OK, ""},
		{"same task again", &corralpb.AcknowledgeBatchRequest_Ack{AgentId: a.id, TaskId: "t1", Uuid: []byte("u3")}, codes.OK, ""},
	}
	req := &corralpb.AcknowledgeBatchRequest{Header: f.header}
	for _, tc := range cases {
		req.Acks = append(req.Acks, tc.ack)
	}
	resp, err := f.client.AcknowledgeBatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(cases) {
		t.Fatalf("%d results for %d acks", len(resp.GetResults()), len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := resp.GetResults()[i]
			if codes.Code(r.GetCode()) != tc.code || !strings.Contains(r.GetMessage(), tc.message) {
				t.Errorf("result %v %q, want %v with %q", codes.Code(r.GetCode()), r.GetMessage(), tc.code, tc.message)
			}
			if tc.code == codes.OK {
				return
			}
			// The unary call refuses the same ack in the same words.
			_, err := f.client.Acknowledge(ctx, &corralpb.AcknowledgeRequest{Header: f.header,
				AgentId: tc.ack.AgentId, TaskId: tc.ack.TaskId, Uuid: tc.ack.Uuid})
			if st := status.Convert(err); st.Code() != tc.code || st.Message() != r.GetMessage() {
				t.Errorf("Acknowledge answered %v %q, the batch %v %q", st.Code(), st.Message(), codes.Code(r.GetCode()), r.GetMessage())
			}
		})
	}
	for _, want := range []string{"t1/u1", "t2/u2", "t1/u3"} {
		ack := a.next("ack " + want).GetAck()
		if got := ack.GetTaskId() + "/" + string(ack.GetUuid()); got != want || ack.GetFrameworkId() != f.header.FrameworkId {
			t.Fatalf("agent got ack %v, want %s of framework %s", ack, want, f.header.FrameworkId)
		}
	}
}

// TestAcknowledgeBatchRefusedAsAWhole: what is wrong with the call itself
// refuses every ack of it, as it would have refused each Acknowledge.
func TestAcknowledgeBatchRefusedAsAWhole(t *testing.T) {
	c := startMaster(t, master.Config{})
	a := c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	ack := &corralpb.AcknowledgeBatchRequest_Ack{AgentId: a.id, TaskId: "t1", Uuid: []byte("u1")}
	tooMany := make([]*corralpb.AcknowledgeBatchRequest_Ack, master.MaxAckBatch+1)
	for i := range tooMany {
		tooMany[i] = ack
	}
	cases := []struct {
		name   string
		req    *corralpb.AcknowledgeBatchRequest
		code   codes.Code
		reason string
	}{
		{"no header", &corralpb.AcknowledgeBatchRequest{Acks: []*corralpb.AcknowledgeBatchRequest_Ack{ack}},
			codes.InvalidArgument, "header with framework_id is required"},
		{"unknown framework", &corralpb.AcknowledgeBatchRequest{Header: &corralpb.CallHeader{FrameworkId: "nope", StreamId: f.header.StreamId},
			Acks: []*corralpb.AcknowledgeBatchRequest_Ack{ack}}, codes.NotFound, "framework nope is not registered"},
		{"stale stream", &corralpb.AcknowledgeBatchRequest{Header: &corralpb.CallHeader{FrameworkId: f.header.FrameworkId, StreamId: "old"},
			Acks: []*corralpb.AcknowledgeBatchRequest_Ack{ack}}, codes.FailedPrecondition, "not the framework's current subscription"},
		{"over the limit", &corralpb.AcknowledgeBatchRequest{Header: f.header, Acks: tooMany},
			codes.InvalidArgument, "more than the limit of 1024"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.client.AcknowledgeBatch(context.Background(), tc.req)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v %v, want code %v with %q", resp, err, tc.code, tc.reason)
			}
		})
	}
	// None of them reached the agent: the next ack it gets is this one.
	resp, err := f.client.AcknowledgeBatch(context.Background(), &corralpb.AcknowledgeBatchRequest{Header: f.header,
		Acks: []*corralpb.AcknowledgeBatchRequest_Ack{{AgentId: a.id, TaskId: "t2", Uuid: []byte("u2")}}})
	if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetCode() != 0 {
		t.Fatalf("a valid batch: %v %v", resp, err)
	}
	if got := a.next("ack").GetAck(); got.GetTaskId() != "t2" {
		t.Fatalf("agent got %v, want only the valid batch's ack of t2", got)
	}
	// An empty batch is a valid call with nothing to answer.
	resp, err = f.client.AcknowledgeBatch(context.Background(), &corralpb.AcknowledgeBatchRequest{Header: f.header})
	if err != nil || len(resp.GetResults()) != 0 {
		t.Fatalf("empty batch: %v %v", resp, err)
	}
}
