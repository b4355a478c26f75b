package master_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/plugins/allocator/drf"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// fixedAllocator serves the real DRF policy in-process: master tests are
// about the master's books, not about go-plugin (tested elsewhere).
type fixedAllocator struct{ a allocator.Allocator }

func (f fixedAllocator) Current() (allocator.Allocator, master.PluginInfo, error) {
	return f.a, master.PluginInfo{Name: "drf", Version: drf.Version, Generation: 1}, nil
}

// wrappedAllocator serves the real DRF policy like fixedAllocator, through
// wrap: a test's stand-in that hangs, delays or holds some of its calls.
type wrappedAllocator struct {
	fixedAllocator
	wrap func(allocator.Allocator) allocator.Allocator
}

func (w wrappedAllocator) Current() (allocator.Allocator, master.PluginInfo, error) {
	a, info, err := w.fixedAllocator.Current()
	return w.wrap(a), info, err
}

type cluster struct {
	t testing.TB
	// secrets are the agent secrets the master handed out, by agent ID,
	// so that a test agent re-registers as the real agent would.
	secrets sync.Map
	m       *master.Master
	conn    *grpc.ClientConn
	addr    string // the gRPC server's host:port
	// stop shuts the master down (also done at cleanup), so that a test
	// can start another one on the same registry.
	stop func()
}

func startMaster(t testing.TB, cfg master.Config) *cluster {
	t.Helper()
	plugin := drf.NewPlugin()
	if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	return startMasterWith(t, cfg, fixedAllocator{plugin})
}

func startMasterWith(t testing.TB, cfg master.Config, alloc master.AllocatorSource) *cluster {
	t.Helper()
	return startMasterDeps(t, cfg, master.Deps{Allocator: alloc})
}

func startMasterDeps(t testing.TB, cfg master.Config, deps master.Deps) *cluster {
	t.Helper()
	return startMasterServer(t, cfg, deps)
}

// startMasterServer is startMasterDeps with options for the gRPC server
// (a real master's authenticating interceptors, for example).
func startMasterServer(t testing.TB, cfg master.Config, deps master.Deps, opts ...grpc.ServerOption) *cluster {
	t.Helper()
	if cfg.AllocationInterval == 0 {
		cfg.AllocationInterval = 20 * time.Millisecond
	}
	m, err := master.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	corralpb.RegisterSchedulerServer(g, m.SchedulerAPI())
	agentproto.RegisterAgentGatewayServer(g, m.AgentGateway())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(l) }()
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// Every test that runs a master checks that the metrics'
			// tally still equals a walk of the books.
			if d := m.TallyMismatch(); d != "" {
				t.Errorf("the metrics tally drifted from the books: %s", d)
			}
			cancel()
			_ = conn.Close()
			g.Stop()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return &cluster{t: t, m: m, conn: conn, addr: l.Addr().String(), stop: stop}
}

// wireAgent speaks the agent protocol directly, so tests can see exactly
// what the master sends to agents.
type wireAgent struct {
	t      testing.TB
	id     string
	stream agentproto.AgentGateway_ConnectClient
	cancel context.CancelFunc
	msgs   chan *agentproto.MasterMessage
	// arrived records when each message came off the stream, so that
	// tests can assert on timing without racing the reader.
	arrived sync.Map // *agentproto.MasterMessage -> time.Time
}

func (c *cluster) addAgent(id, res string) *wireAgent {
	c.t.Helper()
	return c.addAgentTasks(id, res, nil)
}

// reregister connects agent id again, reporting running tasks of framework
// fw, as an agent does after a master failover.
func (c *cluster) reregister(id, res, fw string, tasks ...string) *wireAgent {
	c.t.Helper()
	var running []*agentproto.RunningTask
	for _, tid := range tasks {
		running = append(running, &agentproto.RunningTask{Framework: &corralpb.FrameworkInfo{Id: fw, Name: fw},
			Task: task(tid, "cpus:1"), State: corralpb.TaskState_TASK_RUNNING})
	}
	return c.addAgentTasks(id, res, running)
}

// shareSecrets gives c the agent secrets from handed out, so that agents
// re-register with c as real ones do after a failover.
func (c *cluster) shareSecrets(from *cluster) {
	from.secrets.Range(func(k, v any) bool { c.secrets.Store(k, v); return true })
}

func (c *cluster) addAgentTasks(id, res string, running []*agentproto.RunningTask) *wireAgent {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := agentproto.NewAgentGatewayClient(c.conn).Connect(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	info := &corralpb.AgentInfo{Id: id, Hostname: "host-" + id, Resources: resources.MustParse(res).ToProto(), Url: "http://127.0.0.1:1"}
	secret, _ := c.secrets.Load(id)
	s, _ := secret.(string)
	if err := stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_Register{Register: &agentproto.Register{Agent: info, Secret: s, Tasks: running}}}); err != nil {
		c.t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetRegistered() == nil {
		c.t.Fatalf("registration: %v %v", first, err)
	}
	c.secrets.Store(first.GetRegistered().AgentId, first.GetRegistered().Secret)
	a := &wireAgent{t: c.t, id: first.GetRegistered().AgentId, stream: stream, cancel: cancel, msgs: make(chan *agentproto.MasterMessage, 1000)}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				close(a.msgs)
				return
			}
			a.arrived.Store(m, time.Now())
			a.msgs <- m
		}
	}()
	c.t.Cleanup(cancel)
	return a
}

// arrival is when msg came off the agent's stream.
func (a *wireAgent) arrival(msg *agentproto.MasterMessage) time.Time {
	a.t.Helper()
	v, ok := a.arrived.Load(msg)
	if !ok {
		a.t.Fatalf("no arrival time for %v", msg)
	}
	return v.(time.Time)
}

func (a *wireAgent) next(what string) *agentproto.MasterMessage {
	a.t.Helper()
	select {
	case m, ok := <-a.msgs:
		if !ok {
			a.t.Fatalf("agent stream closed while waiting for %s", what)
		}
		return m
	case <-time.After(10 * time.Second):
		a.t.Fatalf("timed out waiting for %s", what)
	}
	return nil
}

// none asserts that nothing arrived for the agent in the given window.
func (a *wireAgent) none(window time.Duration) {
	a.t.Helper()
	select {
	case m := <-a.msgs:
		a.t.Fatalf("agent got unexpected message %v", m)
	case <-time.After(window):
	}
}

func (a *wireAgent) update(fw, task string, state corralpb.TaskState, uuid []byte) {
	a.t.Helper()
	err := a.stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_StatusUpdate{StatusUpdate: &agentproto.StatusUpdate{
		FrameworkId: fw, Status: &corralpb.TaskStatus{TaskId: task, State: state, Uuid: uuid, Source: corralpb.TaskStatus_SOURCE_AGENT}}}})
	if err != nil {
		a.t.Fatal(err)
	}
}

// wireFramework speaks the scheduler API directly.
type wireFramework struct {
	t      testing.TB
	client corralpb.SchedulerClient
	header *corralpb.CallHeader
	events chan *corralpb.Event
	cancel context.CancelFunc
}

func (c *cluster) subscribe(name string, roles ...string) *wireFramework {
	c.t.Helper()
	return c.subscribeInfo(&corralpb.FrameworkInfo{Name: name, Roles: roles})
}

func (c *cluster) subscribeInfo(fi *corralpb.FrameworkInfo) *wireFramework {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := corralpb.NewSchedulerClient(c.conn)
	stream, err := client.Subscribe(ctx, &corralpb.SubscribeRequest{Framework: fi})
	if err != nil {
		c.t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil || ev.GetSubscribed() == nil {
		c.t.Fatalf("subscribe: %v %v", ev, err)
	}
	f := &wireFramework{t: c.t, client: client, cancel: cancel, events: make(chan *corralpb.Event, 1000),
		header: &corralpb.CallHeader{FrameworkId: ev.GetSubscribed().FrameworkId, StreamId: ev.GetSubscribed().StreamId}}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				close(f.events)
				return
			}
			f.events <- ev
		}
	}()
	c.t.Cleanup(cancel)
	return f
}

// next returns the next event that match accepts, skipping heartbeats and
// anything else.
func (f *wireFramework) next(what string, match func(*corralpb.Event) bool) *corralpb.Event {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-f.events:
			if !ok {
				f.t.Fatalf("event stream closed while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			f.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *wireFramework) offers() []*corralpb.Offer {
	f.t.Helper()
	return f.next("offers", func(e *corralpb.Event) bool { return e.GetOffers() != nil }).GetOffers().Offers
}

func (f *wireFramework) update(task string) *corralpb.TaskStatus {
	f.t.Helper()
	return f.next("update of "+task, func(e *corralpb.Event) bool {
		return e.GetUpdate() != nil && e.GetUpdate().Status.TaskId == task
	}).GetUpdate().Status
}

// launchOne accepts the next offer with one task and checks that the
// agent is told to run it.
func (f *wireFramework) launchOne(a *wireAgent, id, res string) {
	f.t.Helper()
	o := f.offers()[0]
	if _, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o.Id},
		Operations: launch(task(id, res))}); err != nil {
		f.t.Fatal(err)
	}
	if got := a.next("run task").GetRunTask().GetTask().GetTaskId(); got != id {
		f.t.Fatalf("agent was told to run %q, want %q", got, id)
	}
}

func task(id, res string) *corralpb.TaskInfo {
	return &corralpb.TaskInfo{TaskId: id, Resources: resources.MustParse(res).ToProto(),
		Command: &corralpb.CommandInfo{Shell: true, Value: "true"}}
}

func launch(tasks ...*corralpb.TaskInfo) []*corralpb.Operation {
	return []*corralpb.Operation{{Op: &corralpb.Operation_Launch_{Launch: &corralpb.Operation_Launch{Tasks: tasks}}}}
}

func ptr[T any](v T) *T { return &v }
