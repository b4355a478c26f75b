package emulate

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/corral-project/corral/core/master/agentproto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// gateway is a master's agent gateway that starts one task on the first
// agent to register, leaves its TASK_RUNNING update unacknowledged, and
// hands every status update it receives to the test.
type gateway struct {
	agentproto.UnimplementedAgentGatewayServer
	updates chan *agentproto.StatusUpdate
}

func (g *gateway) Connect(stream agentproto.AgentGateway_ConnectServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_Registered{
		Registered: &agentproto.Registered{AgentId: "a1", HeartbeatIntervalSeconds: 60}}}); err != nil {
		return err
	}
	if err := stream.Send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_RunTask{RunTask: &agentproto.RunTask{
		Framework: &corralpb.FrameworkInfo{Id: "fw-1", Name: "test"},
		Task:      &corralpb.TaskInfo{TaskId: "t1", Command: &corralpb.CommandInfo{Shell: true, Value: "sleep 3600"}},
	}}}); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if su := m.GetStatusUpdate(); su != nil {
			select {
			case g.updates <- su:
			case <-stream.Context().Done():
				return nil
			}
		}
	}
}

// An update the master does not acknowledge is sent again once its retry
// interval has passed, with the same UUID, as a real agent's status
// update manager does.
func TestUnacknowledgedUpdateIsResent(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{updates: make(chan *agentproto.StatusUpdate, 16)}
	srv := grpc.NewServer()
	agentproto.RegisterAgentGatewayServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	res, err := resources.Parse("cpus:1;mem:512")
	if err != nil {
		t.Fatal(err)
	}
	fl, err := New(Options{Master: lis.Addr().String(), N: 1, Resources: res, StatusRetry: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	next := func(what string) *agentproto.StatusUpdate {
		t.Helper()
		select {
		case su := <-g.updates:
			return su
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s within 30 s", what)
			return nil
		}
	}
	first := next("TASK_RUNNING update")
	if first.GetStatus().GetState() != corralpb.TaskState_TASK_RUNNING || first.GetStatus().GetTaskId() != "t1" {
		t.Fatalf("first update = %v, want t1 TASK_RUNNING", first.GetStatus())
	}
	again := next("resent update")
	if string(again.GetStatus().GetUuid()) != string(first.GetStatus().GetUuid()) {
		t.Fatalf("resent update has UUID %x, want the unacknowledged one's %x", again.GetStatus().GetUuid(), first.GetStatus().GetUuid())
	}
}

// unacked, which lets the retry loop pass over agents with nothing to
// resend, follows the tasks holding an unacknowledged update through
// launches, kills, acknowledgements and a framework's shutdown.
func TestUnackedFollowsPendingUpdates(t *testing.T) {
	res, err := resources.Parse("cpus:1;mem:512")
	if err != nil {
		t.Fatal(err)
	}
	fl, err := New(Options{Master: "127.0.0.1:1", N: 1, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	a := fl.agents[0]
	fw := &corralpb.FrameworkInfo{Id: "fw-1"}
	run := func(id string) {
		a.runTask(fw, &corralpb.TaskInfo{TaskId: id, Command: &corralpb.CommandInfo{Shell: true, Value: "sleep 3600"}})
	}
	ackHead := func(id string) {
		a.mu.Lock()
		uuid := a.tasks[taskKey{"fw-1", id}].pending[0].GetStatus().GetUuid()
		a.mu.Unlock()
		a.ack(taskKey{"fw-1", id}, uuid)
	}
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"t1 runs", func() { run("t1") }, 1},
		{"t2 runs", func() { run("t2") }, 2},
		{"t1 killed before its TASK_RUNNING is acknowledged", func() { a.kill(taskKey{"fw-1", "t1"}) }, 2},
		{"t1's TASK_RUNNING acknowledged", func() { ackHead("t1") }, 2},
		{"t1's TASK_KILLED acknowledged", func() { ackHead("t1") }, 1},
		{"t2's TASK_RUNNING acknowledged", func() { ackHead("t2") }, 0},
		{"a kill of an unknown task", func() { a.kill(taskKey{"fw-1", "t9"}) }, 1},
		{"t3 runs", func() { run("t3") }, 2},
		{"the framework shut down", func() { a.shutdownFramework("fw-1") }, 0},
	}
	for _, s := range steps {
		s.do()
		a.mu.Lock()
		got, held := a.unacked, 0
		for _, t := range a.tasks {
			if len(t.pending) > 0 {
				held++
			}
		}
		a.mu.Unlock()
		if got != s.want || held != s.want {
			t.Fatalf("after %s: unacked = %d, tasks holding updates = %d, want %d", s.name, got, held, s.want)
		}
	}
}
