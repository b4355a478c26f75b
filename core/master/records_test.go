package master_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// The registry records admitted agents and frameworks; a master that takes
// over expects them back: silent about tasks on an expected agent, LOST at
// once for an agent it never admitted, and after AgentReregisterTimeout
// the missing agent is unreachable (frameworks get a failure event, its
// tasks reconcile to LOST) until it re-registers.
func TestRegistryRecordsAgentsAndFrameworks(t *testing.T) {
	store := coord.FileStore{Path: filepath.Join(t.TempDir(), "registry.json")}
	c1 := startMaster(t, master.Config{RegistryPath: store.Path})
	a := c1.addAgent("", "cpus:2;mem:1024")
	f := c1.subscribeInfo(&corralpb.FrameworkInfo{Name: "fw", FailoverTimeoutSeconds: 3600})
	f.launchOne(a, "t1", "cpus:1")

	records := func(kind string) map[string][]byte {
		t.Helper()
		got, err := store.Records(kind).List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// The agent's record is durable before it hears its ID.
	if _, ok := records("agents")[a.id]; !ok {
		t.Fatalf("agent %s not in the registry: %q", a.id, records("agents"))
	}
	waitUntil(t, "the framework's record", func() bool {
		var r struct {
			Name                   string
			FailoverTimeoutSeconds float64 `json:"failover_timeout_seconds"`
		}
		raw, ok := records("frameworks")[f.header.FrameworkId]
		return ok && json.Unmarshal(raw, &r) == nil && r.Name == "fw" && r.FailoverTimeoutSeconds == 3600
	})
	c1.stop()

	// The next leader: the agent does not come back for a while.
	c2 := startMaster(t, master.Config{RegistryPath: store.Path, AgentReregisterTimeout: 5 * time.Second})
	c2.shareSecrets(c1)
	f2 := c2.subscribeInfo(&corralpb.FrameworkInfo{Id: f.header.FrameworkId, Name: "fw", FailoverTimeoutSeconds: 3600})
	reconcile := func(tasks ...*corralpb.ReconcileRequest_Task) {
		t.Helper()
		if _, err := f2.client.Reconcile(context.Background(), &corralpb.ReconcileRequest{Header: f2.header, Tasks: tasks}); err != nil {
			t.Fatal(err)
		}
	}
	// Answers come in the order asked: the expected agent's task first
	// would have been answered before the ghost's.
	reconcile(&corralpb.ReconcileRequest_Task{TaskId: "t1", AgentId: a.id},
		&corralpb.ReconcileRequest_Task{TaskId: "ghost", AgentId: "agent-never-admitted"})
	st := f2.next("a reconciliation answer", func(e *corralpb.Event) bool { return e.GetUpdate() != nil }).GetUpdate().Status
	if st.TaskId != "ghost" || st.State != corralpb.TaskState_TASK_LOST {
		t.Fatalf("first answer %v; want TASK_LOST for the ghost on an agent never admitted, nothing for t1", st)
	}

	// The re-registration window ends.
	ev := f2.next("the agent's failure", func(e *corralpb.Event) bool { return e.GetFailure() != nil })
	if ev.GetFailure().AgentId != a.id {
		t.Fatalf("failure for %q, want %s", ev.GetFailure().AgentId, a.id)
	}
	reconcile(&corralpb.ReconcileRequest_Task{TaskId: "t1", AgentId: a.id})
	st = f2.update("t1")
	if st.State != corralpb.TaskState_TASK_LOST || !strings.Contains(st.Message, "unreachable") {
		t.Fatalf("t1 on the unreachable agent reconciled as %v", st)
	}
	waitUntil(t, "the agent marked unreachable in the registry", func() bool {
		return strings.Contains(string(records("agents")[a.id]), "unreachable_unix_ms")
	})

	// It comes back with its task: adopted, and admitted again.
	back := c2.reregister(a.id, "cpus:2;mem:1024", f.header.FrameworkId, "t1")
	if back.id != a.id {
		t.Fatalf("re-registered as %s, want %s", back.id, a.id)
	}
	reconcile(&corralpb.ReconcileRequest_Task{TaskId: "t1", AgentId: a.id})
	if st := f2.update("t1"); st.State != corralpb.TaskState_TASK_RUNNING {
		t.Fatalf("t1 after its agent came back: %v, want TASK_RUNNING", st)
	}
	waitUntil(t, "the agent admitted again in the registry", func() bool {
		raw, ok := records("agents")[a.id]
		return ok && !strings.Contains(string(raw), "unreachable_unix_ms")
	})

	// A framework torn down leaves the registry.
	if _, err := f2.client.Teardown(context.Background(), &corralpb.TeardownRequest{Header: f2.header}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the framework's record deleted", func() bool {
		_, ok := records("frameworks")[f.header.FrameworkId]
		return !ok
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A scheduler whose acknowledgement went to a leader that died before
// answering acknowledges again at the new leader. Before the agent is
// back, the new leader accepts it for an agent the registry expects (the
// agent resends the update when it re-registers if the first ack never
// reached it); for an agent never admitted it is NotFound.
func TestAckAcceptedForAgentExpectedBack(t *testing.T) {
	store := coord.FileStore{Path: filepath.Join(t.TempDir(), "registry.json")}
	c1 := startMaster(t, master.Config{RegistryPath: store.Path})
	a := c1.addAgent("", "cpus:2;mem:1024")
	f := c1.subscribeInfo(&corralpb.FrameworkInfo{Name: "fw", FailoverTimeoutSeconds: 3600})
	f.launchOne(a, "t1", "cpus:1")
	uuid := []byte{7, 7, 7}
	a.update(f.header.FrameworkId, "t1", corralpb.TaskState_TASK_FINISHED, uuid)
	if st := f.update("t1"); st.State != corralpb.TaskState_TASK_FINISHED {
		t.Fatalf("framework got %v, want TASK_FINISHED", st)
	}
	if _, err := f.client.Acknowledge(context.Background(), &corralpb.AcknowledgeRequest{Header: f.header,
		AgentId: a.id, TaskId: "t1", Uuid: uuid}); err != nil {
		t.Fatal(err)
	}
	if ack := a.next("ack").GetAck(); ack == nil || string(ack.Uuid) != string(uuid) {
		t.Fatalf("agent got %v, want the ack of %v", ack, uuid)
	}
	c1.stop()

	c2 := startMaster(t, master.Config{RegistryPath: store.Path, AgentReregisterTimeout: time.Minute})
	c2.shareSecrets(c1)
	f2 := c2.subscribeInfo(&corralpb.FrameworkInfo{Id: f.header.FrameworkId, Name: "fw", FailoverTimeoutSeconds: 3600})
	waitUntil(t, "the registry loaded", func() bool { _, loaded := c2.m.ExpectedAgents(); return loaded })
	if _, err := f2.client.Acknowledge(context.Background(), &corralpb.AcknowledgeRequest{Header: f2.header,
		AgentId: a.id, TaskId: "t1", Uuid: uuid}); err != nil {
		t.Fatalf("ack again for an agent expected back: %v, want it accepted", err)
	}
	_, err := f2.client.Acknowledge(context.Background(), &corralpb.AcknowledgeRequest{Header: f2.header,
		AgentId: "agent-never-admitted", TaskId: "t1", Uuid: uuid})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("ack for an agent never admitted: %v, want NotFound", err)
	}
}
