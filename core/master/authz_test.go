package master_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/plugins/allocator/drf"
	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/scheduler"
)

func entity(v ...string) acl.Entity {
	e, err := acl.NewEntity(v)
	if err != nil {
		panic(err)
	}
	return e
}

// startACLMaster serves a master with ACLs behind the real authenticator
// and returns a client connection per principal (credentials over plain
// text) and an anonymous one.
func startACLMaster(t *testing.T, acls *acl.ACLs, principals ...string) (*master.Master, map[string]*cluster) {
	t.Helper()
	return startACLMasterWith(t, master.Config{ACLs: acls}, principals...)
}

// startACLMasterWith is startACLMaster with more of the master's settings.
func startACLMasterWith(t *testing.T, cfg master.Config, principals ...string) (*master.Master, map[string]*cluster) {
	t.Helper()
	var creds strings.Builder
	creds.WriteString(`{"credentials": [`)
	for i, p := range principals {
		if i > 0 {
			creds.WriteString(",")
		}
		creds.WriteString(`{"principal": "` + p + `", "secret": "secret-` + p + `"}`)
	}
	creds.WriteString("]}")
	c, err := acl.ParseCredentials([]byte(creds.String()))
	if err != nil {
		t.Fatal(err)
	}
	plugin := drf.NewPlugin()
	if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	cfg.AllocationInterval = 20 * time.Millisecond
	m, err := master.New(cfg, master.Deps{Allocator: fixedAllocator{plugin}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer((&authn.Authenticator{Credentials: c}).ServerOptions()...)
	corralpb.RegisterSchedulerServer(g, m.SchedulerAPI())
	agentproto.RegisterAgentGatewayServer(g, m.AgentGateway())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(l) }()
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	clients := map[string]*cluster{}
	for _, p := range append(principals, "") {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if p != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(&scheduler.Credential{Principal: p, Secret: "secret-" + p}))
		}
		conn, err := grpc.NewClient(l.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		clients[p] = &cluster{t: t, m: m, conn: conn}
	}
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
	return m, clients
}

// subscribeErr subscribes and returns the refusal, nil if SUBSCRIBED came.
func subscribeErr(c *cluster, fi *corralpb.FrameworkInfo) error {
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	stream, err := corralpb.NewSchedulerClient(c.conn).Subscribe(ctx, &corralpb.SubscribeRequest{Framework: fi})
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

func wantDenied(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("%s: %v, want PermissionDenied", what, err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not name %q", what, err, w)
		}
	}
}

// TestSchedulerACLs: subscription by role, the declared principal, calls
// on another principal's framework, launch users, agent registration.
func TestSchedulerACLs(t *testing.T) {
	acls := &acl.ACLs{Rules: map[acl.Action][]acl.Rule{
		acl.RegisterFrameworks: {{Principals: entity("analytics"), Objects: entity("analytics")},
			{Principals: entity("mallory"), Objects: entity("mallory")}},
		acl.RunTasks:       {{Principals: entity(acl.Any), Objects: entity("nobody")}},
		acl.RegisterAgents: {{Principals: entity("agent"), Objects: entity(acl.Any)}},
	}}
	m, c := startACLMaster(t, acls, "analytics", "mallory", "agent")

	// Agents: anonymous refused, the agent principal admitted.
	stream, err := agentproto.NewAgentGatewayClient(c[""].conn).Connect(context.Background())
	if err == nil {
		err = stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Register{Register: &agentproto.Register{
			Agent: &corralpb.AgentInfo{Hostname: "h1", Resources: resources.MustParse("cpus:2;mem:1024").ToProto()}}}})
	}
	if err == nil {
		_, err = stream.Recv()
	}
	wantDenied(t, "anonymous agent", err, "unauthenticated", "register agents")
	a := c["agent"].addAgent("", "cpus:4;mem:4096")

	wantDenied(t, "analytics in role prod", subscribeErr(c["analytics"], &corralpb.FrameworkInfo{Name: "x", Roles: []string{"prod"}}),
		`principal "analytics"`, "register frameworks", `role "prod"`)
	wantDenied(t, "analytics declaring principal mallory", subscribeErr(c["analytics"], &corralpb.FrameworkInfo{Name: "x", Roles: []string{"analytics"}, Principal: "mallory"}),
		`declares principal "mallory"`, `authenticated as "analytics"`)
	wantDenied(t, "anonymous declaring a principal", subscribeErr(c[""], &corralpb.FrameworkInfo{Name: "x", Principal: "analytics"}), "not authenticated")

	f := c["analytics"].subscribeInfo(&corralpb.FrameworkInfo{Name: "report", Roles: []string{"analytics"}, User: "root"})
	if p, _ := m.FrameworkPrincipal(f.header.FrameworkId); p != "analytics" {
		t.Fatalf("framework principal %q, want the authenticated analytics", p)
	}
	offer := f.offers()[0]
	// The framework's user (root) is not allowed; the command's (nobody) is.
	root := task("t-root", "cpus:0.1;mem:16")
	_, err = f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{offer.Id}, Operations: launch(root)})
	wantDenied(t, "launch as root", err, "run tasks", `user "root"`)
	nobody := task("t-nobody", "cpus:0.1;mem:16")
	nobody.Command.User = "nobody"
	if _, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{offer.Id}, Operations: launch(nobody)}); err != nil {
		t.Fatalf("launch as nobody: %v", err)
	}
	if got := a.next("run task").GetRunTask().GetTask().GetTaskId(); got != "t-nobody" {
		t.Fatalf("agent told to run %q", got)
	}

	// mallory, knowing analytics's framework and stream IDs, can neither
	// call for it nor subscribe as it.
	mal := corralpb.NewSchedulerClient(c["mallory"].conn)
	_, err = mal.Kill(context.Background(), &corralpb.KillRequest{Header: f.header, TaskId: "t-nobody"})
	wantDenied(t, "mallory killing analytics's task", err, "belongs to principal \"analytics\"", `principal "mallory"`)
	_, err = mal.Teardown(context.Background(), &corralpb.TeardownRequest{Header: f.header})
	wantDenied(t, "mallory tearing analytics down", err, "belongs to principal \"analytics\"")
	// Acknowledgements, one a call or batched, are calls on analytics's
	// behalf as well; a denied batch relays none of its acks.
	_, err = mal.Acknowledge(context.Background(), &corralpb.AcknowledgeRequest{Header: f.header,
		AgentId: a.id, TaskId: "t-nobody", Uuid: []byte("u-mallory")})
	wantDenied(t, "mallory acknowledging for analytics", err, "belongs to principal \"analytics\"", `principal "mallory"`)
	_, err = mal.AcknowledgeBatch(context.Background(), &corralpb.AcknowledgeBatchRequest{Header: f.header,
		Acks: []*corralpb.AcknowledgeBatchRequest_Ack{{AgentId: a.id, TaskId: "t-nobody", Uuid: []byte("u-mallory")}}})
	wantDenied(t, "mallory acknowledging a batch for analytics", err, "belongs to principal \"analytics\"", `principal "mallory"`)
	resp, err := f.client.AcknowledgeBatch(context.Background(), &corralpb.AcknowledgeBatchRequest{Header: f.header,
		Acks: []*corralpb.AcknowledgeBatchRequest_Ack{{AgentId: a.id, TaskId: "t-nobody", Uuid: []byte("u-analytics")}}})
	if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetCode() != 0 {
		t.Fatalf("analytics acknowledging its own task: %v, %v", resp, err)
	}
	// Messages to an agent keep their order: had one of mallory's acks
	// been relayed, it would come first.
	if ack := a.next("ack").GetAck(); string(ack.GetUuid()) != "u-analytics" {
		t.Fatalf("agent got %v first, want analytics's ack u-analytics", ack)
	}
	wantDenied(t, "mallory subscribing as analytics's framework",
		subscribeErr(c["mallory"], &corralpb.FrameworkInfo{Id: f.header.FrameworkId, Name: "report", Roles: []string{"mallory"}}),
		`registered by principal "analytics"`)
	// analytics itself still can.
	if _, err := f.client.Kill(context.Background(), &corralpb.KillRequest{Header: f.header, TaskId: "t-nobody"}); err != nil {
		t.Fatalf("analytics killing its own task: %v", err)
	}

	// A reload that grants prod to analytics takes effect at once.
	m.SetACLs(&acl.ACLs{Permissive: true})
	if err := subscribeErr(c["analytics"], &corralpb.FrameworkInfo{Name: "x", Roles: []string{"prod"}}); err != nil {
		t.Fatalf("analytics in role prod after the reload: %v", err)
	}
}
