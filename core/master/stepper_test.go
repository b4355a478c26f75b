package master_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/plugins/allocator/drf"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// TestStepperVirtualTime drives a master without Run, in virtual time:
// an in-process agent and framework, one cycle, an offer, a launch, the
// task's end, and a decline filter that lapses only when the injected
// clock moves.
func TestStepperVirtualTime(t *testing.T) {
	plugin := drf.NewPlugin()
	if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	start := time.Unix(1_000_000, 0)
	m, err := master.New(master.Config{}, master.Deps{Allocator: fixedAllocator{plugin},
		Now: func() time.Time { return start.Add(time.Duration(clock.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.StartAllocator(ctx); err != nil {
		t.Fatal(err)
	}
	st := m.Stepper()
	defer st.Stop()
	agent, err := st.ConnectAgent(&agentproto.Register{Agent: &corralpb.AgentInfo{Id: "a1", Hostname: "a1",
		Resources: resources.MustParse("cpus:4;mem:4096").ToProto()}})
	if err != nil {
		t.Fatal(err)
	}
	if msg, ok := agent.Poll(); !ok || msg.GetRegistered().GetAgentId() != "a1" {
		t.Fatalf("first agent message %v, want Registered a1", msg)
	}
	sub, err := m.Subscribe(&corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{Id: "fw1", Name: "fw"}})
	if err != nil {
		t.Fatal(err)
	}
	if ev, ok := sub.Poll(); !ok || ev.GetSubscribed() == nil {
		t.Fatalf("first event %v, want SUBSCRIBED", ev)
	}
	if _, ok := st.TakeTrigger(); !ok {
		t.Fatal("registering an agent and a framework asked for no allocation")
	}
	offer := func() *corralpb.Offer {
		t.Helper()
		st.RunCycle(ctx, allocator.TriggerEvent)
		ev, ok := sub.Poll()
		if !ok || len(ev.GetOffers().GetOffers()) != 1 {
			t.Fatalf("after a cycle: event %v, want one offer", ev)
		}
		return ev.GetOffers().Offers[0]
	}
	o := offer()
	refuse := 30.0
	if err := m.Decline(&corralpb.DeclineRequest{Header: sub.Header(), OfferIds: []string{o.Id},
		Filters: &corralpb.Filters{RefuseSeconds: &refuse}}); err != nil {
		t.Fatal(err)
	}
	st.RunCycle(ctx, allocator.TriggerTimer)
	if ev, ok := sub.Poll(); ok {
		t.Fatalf("offer %v inside the 30 s decline filter", ev)
	}
	clock.Store(int64(31 * time.Second))
	o = offer()
	task := &corralpb.TaskInfo{TaskId: "t1", Name: "t1", Resources: resources.MustParse("cpus:1;mem:128").ToProto(),
		Command: &corralpb.CommandInfo{Value: "true"}}
	if err := m.Accept(&corralpb.AcceptRequest{Header: sub.Header(), OfferIds: []string{o.Id},
		Operations: []*corralpb.Operation{{Op: &corralpb.Operation_Launch_{Launch: &corralpb.Operation_Launch{Tasks: []*corralpb.TaskInfo{task}}}}}}); err != nil {
		t.Fatal(err)
	}
	msg, ok := agent.Poll()
	if !ok || msg.GetRunTask().GetTask().GetTaskId() != "t1" {
		t.Fatalf("agent got %v, want RunTask t1", msg)
	}
	agent.Update(&agentproto.StatusUpdate{FrameworkId: "fw1", Status: &corralpb.TaskStatus{TaskId: "t1",
		State: corralpb.TaskState_TASK_FINISHED}})
	ev, ok := sub.Poll()
	if !ok || ev.GetUpdate().GetStatus().GetState() != corralpb.TaskState_TASK_FINISHED {
		t.Fatalf("framework got %v, want the TASK_FINISHED update", ev)
	}
}
