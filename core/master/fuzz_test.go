package master_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// callKinds are the scheduler calls and agent messages the fuzzer drives,
// each decoded from the fuzzer's bytes.
var callKinds = []struct {
	name string
	msg  func() proto.Message
	call func(m *master.Master, agentID string, msg proto.Message) error
}{
	{"accept", func() proto.Message { return &corralpb.AcceptRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		_, err := m.AcceptEach(msg.(*corralpb.AcceptRequest))
		return err
	}},
	{"decline", func() proto.Message { return &corralpb.DeclineRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Decline(msg.(*corralpb.DeclineRequest))
	}},
	{"suppress", func() proto.Message { return &corralpb.SuppressRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Suppress(msg.(*corralpb.SuppressRequest))
	}},
	{"revive", func() proto.Message { return &corralpb.ReviveRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Revive(msg.(*corralpb.ReviveRequest))
	}},
	{"kill", func() proto.Message { return &corralpb.KillRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Kill(msg.(*corralpb.KillRequest))
	}},
	{"acknowledge", func() proto.Message { return &corralpb.AcknowledgeRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Acknowledge(msg.(*corralpb.AcknowledgeRequest))
	}},
	{"reconcile", func() proto.Message { return &corralpb.ReconcileRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Reconcile(msg.(*corralpb.ReconcileRequest))
	}},
	{"message", func() proto.Message { return &corralpb.MessageRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Message(msg.(*corralpb.MessageRequest))
	}},
	{"request", func() proto.Message { return &corralpb.RequestCall{} }, func(m *master.Master, _ string, msg proto.Message) error {
		return m.Request(msg.(*corralpb.RequestCall))
	}},
	{"status", func() proto.Message { return &agentproto.StatusUpdate{} }, func(m *master.Master, agentID string, msg proto.Message) error {
		m.HandleStatusUpdate(agentID, msg.(*agentproto.StatusUpdate))
		return nil
	}},
	{"acknowledge batch", func() proto.Message { return &corralpb.AcknowledgeBatchRequest{} }, func(m *master.Master, _ string, msg proto.Message) error {
		_, err := m.AcknowledgeBatch(msg.(*corralpb.AcknowledgeBatchRequest))
		return err
	}},
}

// headered is every scheduler request: all carry the caller's header.
type headered interface {
	proto.Message
	GetHeader() *corralpb.CallHeader
}

// FuzzSchedulerAndAgentCalls drives the master's books with arbitrary
// scheduler calls and agent status updates, decoded from the fuzzer's
// bytes. The fuzzer may ask for the real caller's header and a live offer
// ID to be put in, so that calls get past authentication into the
// ledger. Whatever comes in, the master must not panic and its books must
// stay consistent: no agent is ever allocated beyond its resources.
func FuzzSchedulerAndAgentCalls(f *testing.F) {
	seed := func(kind byte, flags byte, msg proto.Message) {
		b, err := proto.Marshal(msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kind, flags, b)
	}
	seed(0, 3, &corralpb.AcceptRequest{OfferIds: []string{"x"}, Operations: launch(task("t1", "cpus:1"))})
	seed(0, 3, &corralpb.AcceptRequest{OfferIds: []string{"x"}, Operations: launch(task("t1", "cpus:1"), task("t1", "cpus:1"))})
	seed(0, 3, &corralpb.AcceptRequest{OfferIds: []string{"x", "x"}, Operations: launch(task("big", "cpus:1000"))})
	seed(1, 3, &corralpb.DeclineRequest{OfferIds: []string{"x"}, Filters: &corralpb.Filters{RefuseSeconds: ptr(-1.0)}})
	seed(2, 1, &corralpb.SuppressRequest{Roles: []string{"*", "../x"}})
	seed(4, 1, &corralpb.KillRequest{TaskId: "t1"})
	seed(5, 1, &corralpb.AcknowledgeRequest{TaskId: "t1", AgentId: "a", Uuid: []byte{1, 2}})
	seed(10, 1, &corralpb.AcknowledgeBatchRequest{Acks: []*corralpb.AcknowledgeBatchRequest_Ack{{TaskId: "t1", AgentId: "a", Uuid: []byte{1}}, {}}})
	seed(9, 0, &agentproto.StatusUpdate{FrameworkId: "fw", Status: &corralpb.TaskStatus{TaskId: "t1", State: corralpb.TaskState_TASK_FINISHED}})

	c := startMaster(f, master.Config{})
	a := c.addAgent("", "cpus:4;mem:4096;ports:[31000-31010]")
	fw := c.subscribe("fuzz")
	total := resources.MustParse("cpus:4;mem:4096;ports:[31000-31010]")

	f.Fuzz(func(t *testing.T, kind, flags byte, b []byte) {
		k := callKinds[int(kind)%len(callKinds)]
		msg := k.msg()
		if proto.Unmarshal(b, msg) != nil {
			return
		}
		if h, ok := msg.(headered); ok && flags&1 != 0 {
			// The real caller: the header the framework was given.
			r := h.ProtoReflect()
			r.Set(r.Descriptor().Fields().ByName("header"), protoreflect.ValueOfMessage(proto.Clone(fw.header).ProtoReflect()))
		}
		if acc, ok := msg.(*corralpb.AcceptRequest); ok && flags&2 != 0 {
			if ids := c.m.OfferIDs(fw.header.FrameworkId); len(ids) > 0 && len(acc.OfferIds) > 0 {
				acc.OfferIds[0] = ids[0]
			}
		}
		if su, ok := msg.(*agentproto.StatusUpdate); ok && flags&1 != 0 {
			su.FrameworkId = fw.header.FrameworkId
		}
		_ = k.call(c.m, a.id, msg)
		for _, ag := range c.m.Snapshot().Agents {
			used, err := resources.Parse(ag.Used)
			if err != nil {
				t.Fatalf("after %s %v: agent %s used %q does not parse: %v", k.name, msg, ag.ID, ag.Used, err)
			}
			if !total.Contains(used) {
				t.Fatalf("after %s %v: agent %s is allocated %s beyond its resources %s", k.name, msg, ag.ID, used, total)
			}
		}
	})
}
