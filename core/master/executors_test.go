package master_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

func execTask(id, res string, e *corralpb.ExecutorInfo) *corralpb.TaskInfo {
	return &corralpb.TaskInfo{TaskId: id, Resources: resources.MustParse(res).ToProto(), Executor: e}
}

// awaitFree collects offers (never declining) until the outstanding ones
// hold want cpus, which is then all that is free on the one agent; it
// returns their IDs.
func (f *wireFramework) awaitFree(want float64) []string {
	f.t.Helper()
	held := map[string]float64{}
	for {
		for _, o := range f.offers() {
			held[o.Id] = resources.MustFromProto(o.Resources).Scalar(resources.CPUs)
		}
		sum := 0.0
		var ids []string
		for id, c := range held {
			sum += c
			ids = append(ids, id)
		}
		if sum == want {
			return ids
		}
		if sum > want {
			f.t.Fatalf("offers hold %v cpus, more than the %v expected free", sum, want)
		}
	}
}

func (f *wireFramework) decline(ids []string) {
	f.t.Helper()
	if _, err := f.client.Decline(context.Background(), &corralpb.DeclineRequest{Header: f.header, OfferIds: ids,
		Filters: &corralpb.Filters{RefuseSeconds: proto.Float64(0)}}); err != nil {
		f.t.Fatal(err)
	}
}

// TestExecutorResourcesBookedOnceAndRecovered: the executor's resources
// come on top of its first task's, once per agent; they stay booked after
// its tasks end and come back when the agent reports it exited (with a
// failure event naming it); a task naming it with another ExecutorInfo, or
// a reserved task ID, is refused.
func TestExecutorResourcesBookedOnceAndRecovered(t *testing.T) {
	c := startMaster(t, master.Config{})
	a := c.addAgent("", "cpus:4;mem:4096")
	f := c.subscribe("fw")
	e := &corralpb.ExecutorInfo{ExecutorId: "E", Command: &corralpb.CommandInfo{Value: "/bin/exec"},
		Resources: resources.MustParse("cpus:1;mem:512").ToProto()}
	ids := f.awaitFree(4)
	if _, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: ids,
		Filters:    &corralpb.Filters{RefuseSeconds: proto.Float64(0)},
		Operations: launch(execTask("t1", "cpus:0.5;mem:128", e), execTask("t2", "cpus:0.5;mem:128", e))}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2"} {
		rt := a.next("run " + id).GetRunTask().GetTask()
		if rt.GetTaskId() != id || rt.GetExecutor().GetExecutorId() != "E" {
			t.Fatalf("agent told to run %v", rt)
		}
	}
	// Executor (1) + two tasks (0.5 each): 2 cpus left.
	other := proto.Clone(e).(*corralpb.ExecutorInfo)
	other.Command.Value = "/bin/other"
	ids = f.awaitFree(2)
	refused, err := c.m.AcceptEach(&corralpb.AcceptRequest{Header: f.header, OfferIds: ids,
		Filters:    &corralpb.Filters{RefuseSeconds: proto.Float64(0)},
		Operations: launch(execTask("t3", "cpus:0.5;mem:128", other), execTask(master.ReservedTaskPrefix+"x", "cpus:0.5;mem:128", e))})
	if err != nil || len(refused) != 2 || !strings.Contains(refused[0].Err.Error(), "described differently") ||
		!strings.Contains(refused[1].Err.Error(), "reserved") {
		t.Fatalf("refusals %v, %v", refused, err)
	}
	for _, id := range []string{"t1", "t2"} {
		a.update(f.header.FrameworkId, id, corralpb.TaskState_TASK_FINISHED, []byte(id+"-uuid-0123456789"))
	}
	// The tasks' resources are back, the executor's are not.
	held := f.awaitFree(3)
	status := int32(0)
	if err := a.stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_ExecutorExited{ExecutorExited: &agentproto.ExecutorExited{
		FrameworkId: f.header.FrameworkId, ExecutorId: "E", Status: &status, Message: "idle"}}}); err != nil {
		t.Fatal(err)
	}
	fe := f.next("executor failure", func(ev *corralpb.Event) bool { return ev.GetFailure() != nil }).GetFailure()
	if fe.GetExecutorId() != "E" || fe.Status == nil || fe.GetStatus() != 0 {
		t.Fatalf("failure event %v", fe)
	}
	// The executor's cpu comes back as a new offer beside those still held
	// (an allocation runs after the failure event, so nothing is skipped).
	f.awaitFree(1)
	f.decline(held)
}
