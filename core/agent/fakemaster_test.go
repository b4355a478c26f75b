package agent

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/corral-project/corral/core/master/agentproto"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// fakeMaster is an AgentGateway server standing in for the master: it
// registers agents, records what they send, acknowledges status updates
// (unless told not to for a task) and lets the test send messages or drop
// the stream.
type fakeMaster struct {
	agentproto.UnimplementedAgentGatewayServer
	addr string

	mu         sync.Mutex
	registers  []*agentproto.Register
	updates    []*agentproto.StatusUpdate
	heartbeats int
	noAck      map[string]bool // task IDs whose updates are not acknowledged
	stream     grpc.BidiStreamingServer[agentproto.AgentMessage, agentproto.MasterMessage]
	drop       chan struct{} // closed to end the current stream
	sendMu     sync.Mutex
}

func startFakeMaster(t *testing.T) *fakeMaster { return startFakeMasterOn(t, "127.0.0.1:0") }

func startFakeMasterOn(t *testing.T, addr string) *fakeMaster {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{addr: ln.Addr().String(), noAck: map[string]bool{}}
	srv := grpc.NewServer()
	agentproto.RegisterAgentGatewayServer(srv, m)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return m
}

func (m *fakeMaster) Connect(stream grpc.BidiStreamingServer[agentproto.AgentMessage, agentproto.MasterMessage]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if reg == nil {
		return fmt.Errorf("first message is %T, want Register", first.GetMsg())
	}
	id := reg.GetAgent().GetId()
	if id == "" {
		id = "agent-1"
	}
	if err := stream.Send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_Registered{
		Registered: &agentproto.Registered{AgentId: id, HeartbeatIntervalSeconds: 0.2},
	}}); err != nil {
		return err
	}
	drop := make(chan struct{})
	m.mu.Lock()
	m.registers = append(m.registers, reg)
	m.stream, m.drop = stream, drop
	m.mu.Unlock()

	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if msg.GetHeartbeat() != nil {
				m.mu.Lock()
				m.heartbeats++
				m.mu.Unlock()
			}
			if u := msg.GetStatusUpdate(); u != nil {
				m.mu.Lock()
				m.updates = append(m.updates, u)
				ack := !m.noAck[u.GetStatus().GetTaskId()]
				m.mu.Unlock()
				if ack {
					m.ack(u)
				}
			}
		}
	}()
	select {
	case err := <-recvErr:
		return err
	case <-drop:
		return fmt.Errorf("dropped by test")
	}
}

func (m *fakeMaster) send(t *testing.T, msg *agentproto.MasterMessage) {
	t.Helper()
	m.mu.Lock()
	s := m.stream
	m.mu.Unlock()
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if s == nil {
		t.Fatal("no agent connected")
	}
	if err := s.Send(msg); err != nil {
		t.Fatalf("send to agent: %v", err)
	}
}

func (m *fakeMaster) ack(u *agentproto.StatusUpdate) {
	m.mu.Lock()
	s := m.stream
	m.mu.Unlock()
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	_ = s.Send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_Ack{Ack: &agentproto.AckUpdate{
		FrameworkId: u.GetFrameworkId(), TaskId: u.GetStatus().GetTaskId(), Uuid: u.GetStatus().GetUuid(),
	}}})
}

func (m *fakeMaster) setAck(taskID string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noAck[taskID] = !on
}

// dropStream ends the current stream from the master's side.
func (m *fakeMaster) dropStream() {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.drop)
	m.stream = nil
}

func (m *fakeMaster) registrations() []*agentproto.Register {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*agentproto.Register(nil), m.registers...)
}

// statuses returns the distinct (by UUID) updates received for a task, in
// arrival order, and the total number received including resends.
func (m *fakeMaster) statuses(taskID string) (distinct []*corralpb.TaskStatus, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.updates {
		st := u.GetStatus()
		if st.GetTaskId() != taskID {
			continue
		}
		total++
		seen := false
		for _, d := range distinct {
			if bytes.Equal(d.GetUuid(), st.GetUuid()) {
				seen = true
			}
		}
		if !seen {
			distinct = append(distinct, st)
		}
	}
	return distinct, total
}

func (m *fakeMaster) runTask(t *testing.T, fw, id string, cmd string, extra ...func(*corralpb.TaskInfo)) {
	t.Helper()
	ti := &corralpb.TaskInfo{
		TaskId:    id,
		Name:      id,
		Resources: []*corralpb.Resource{{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: 0.1}}},
		Command:   &corralpb.CommandInfo{Shell: true, Value: cmd},
	}
	for _, f := range extra {
		f(ti)
	}
	m.send(t, &agentproto.MasterMessage{Msg: &agentproto.MasterMessage_RunTask{RunTask: &agentproto.RunTask{
		Framework: &corralpb.FrameworkInfo{Id: fw, Name: "test-" + fw},
		Task:      ti,
	}}})
}

func (m *fakeMaster) killTask(t *testing.T, fw, id string, grace float64) {
	t.Helper()
	m.send(t, &agentproto.MasterMessage{Msg: &agentproto.MasterMessage_KillTask{KillTask: &agentproto.KillTask{
		FrameworkId: fw, TaskId: id, GraceSeconds: grace,
	}}})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStates waits until the task's distinct updates are exactly states.
func (m *fakeMaster) waitStates(t *testing.T, taskID string, states ...corralpb.TaskState) []*corralpb.TaskStatus {
	t.Helper()
	var got []*corralpb.TaskStatus
	waitFor(t, fmt.Sprintf("%s to report %v", taskID, states), 20*time.Second, func() bool {
		got, _ = m.statuses(taskID)
		if len(got) > len(states) {
			t.Fatalf("%s reported %v, want %v", taskID, stateList(got), states)
		}
		return len(got) == len(states)
	})
	for i, st := range got {
		if st.GetState() != states[i] {
			t.Fatalf("%s reported %v, want %v", taskID, stateList(got), states)
		}
	}
	return got
}

func stateList(sts []*corralpb.TaskStatus) []corralpb.TaskState {
	var out []corralpb.TaskState
	for _, s := range sts {
		out = append(out, s.GetState())
	}
	return out
}

func (m *fakeMaster) shutdownFramework(t *testing.T, fw string) {
	t.Helper()
	m.send(t, &agentproto.MasterMessage{Msg: &agentproto.MasterMessage_ShutdownFramework{
		ShutdownFramework: &agentproto.ShutdownFramework{FrameworkId: fw}}})
}

func (m *fakeMaster) heartbeatCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heartbeats
}
