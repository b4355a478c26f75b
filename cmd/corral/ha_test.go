package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord/consultest"
	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/scheduler"
)

var haTaskResources = resources.MustParse("cpus:0.1;mem:16")

var emulatedLine = regexp.MustCompile(`corral agent: (\d+) emulated agents registered`)

// Emulated agents are indistinguishable from real ones to the master: they
// register, get tasks and finish them (a `sleep` runs as a timer).
func TestEmulatedAgentsRunTasks(t *testing.T) {
	m := startCorral(t, "master", "-master", "127.0.0.1:0", "-work-dir", t.TempDir())
	addr := m.waitLine(masterLine)
	ag := startCorral(t, "agent", "-emulate", "20", "-master", addr, "-resources", "cpus:2;mem:1024")
	ag.waitLine(emulatedLine)
	waitState(t, addr, "20 connected agents", func(s master.State) bool { return connected(s) == 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code, out, errOut := runCLI(t, ctx, "exec", "--master", addr, "--", "sleep", "0.2"); code != 0 {
		t.Fatalf("exec on an emulated agent: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

func connected(s master.State) int {
	n := 0
	for _, a := range s.Agents {
		if a.Connected {
			n++
		}
	}
	return n
}

// haCluster is three masters, one Consul, and the agents a test starts.
type haCluster struct {
	t       *testing.T
	consul  *consultest.Agent
	spec    string // consul://.../prefix
	config  string
	masters map[string]*proc // by address
}

// haCheckTTL, when set, is the masters' consul check_ttl (the benchmark's
// CORRAL_BENCH_HA_CHECK_TTL); "" keeps the default.
var haCheckTTL string

func startHACluster(t *testing.T, n int) *haCluster {
	t.Helper()
	binDir(t)
	return startHAClusterOn(t, n, consultest.Start(t))
}

// startHAClusterOn runs n masters against the given Consul agent.
func startHAClusterOn(t *testing.T, n int, consul *consultest.Agent) *haCluster {
	t.Helper()
	c := &haCluster{t: t, consul: consul, masters: map[string]*proc{}}
	prefix := "corral-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	c.spec = "consul://" + c.consul.HTTPAddr + "/" + prefix
	c.config = filepath.Join(t.TempDir(), "ha.hcl")
	// Short timeouts so the test sees failover quickly; the agent's
	// re-registration window stays long (tasks must survive).
	ttl := ""
	if haCheckTTL != "" {
		ttl = fmt.Sprintf("  check_ttl = %q\n", haCheckTTL)
	}
	hcl := fmt.Sprintf(`consul {
  address = %q
  prefix  = %q
%s}
master {
  allocation_interval = "100ms"
  heartbeat_interval  = "1s"
}
`, c.consul.HTTPAddr, prefix, ttl)
	if err := os.WriteFile(c.config, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	for range n {
		c.startMaster()
	}
	return c
}

func (c *haCluster) startMaster() string {
	c.t.Helper()
	p := startCorral(c.t, "master", "-config", c.config, "-master", "127.0.0.1:0", "-work-dir", c.t.TempDir())
	addr := p.waitLine(masterLine)
	c.masters[addr] = p
	return addr
}

// leader waits until exactly one live master says it leads and the others
// name it, and returns its address.
func (c *haCluster) leader(what string) string {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var leaders []string
		agree := true
		for addr := range c.masters {
			s, err := getState(addr)
			if err != nil {
				agree = false
				continue
			}
			if s.Leader {
				leaders = append(leaders, addr)
			}
		}
		if len(leaders) == 1 && agree {
			l := leaders[0]
			for addr := range c.masters {
				if s, err := getState(addr); err != nil || (addr != l && s.LeaderAddress != l) {
					agree = false
				}
			}
			if agree {
				return l
			}
		}
		if len(leaders) > 1 {
			c.t.Fatalf("%s: two masters lead at once: %v", what, leaders)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no single agreed leader within 60s (leaders %v)", what, leaders)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill9 kills a master with SIGKILL and forgets it.
func (c *haCluster) kill9(addr string) {
	p := c.masters[addr]
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	delete(c.masters, addr)
}

// Standbys serve reads with the leader named, redirect writes with 307 and
// gRPC calls with the leader's address; agents and the CLI find the leader
// through Consul; killing the leader with -9 elects another, which the
// agents re-register with.
func TestHAStandbysRedirectAndFailover(t *testing.T) {
	c := startHACluster(t, 3)
	l := c.leader("first election")
	ag := startCorral(t, "agent", "-emulate", "30", "-master", c.spec, "-resources", "cpus:2;mem:1024")
	ag.waitLine(emulatedLine)
	waitState(t, l, "30 agents on the leader", func(s master.State) bool { return connected(s) == 30 })

	var standby string
	for addr := range c.masters {
		if addr != l {
			standby = addr
		}
	}
	s, err := getState(standby)
	if err != nil || s.Leader || s.LeaderAddress != l || len(s.Agents) != 0 {
		t.Fatalf("standby state: leader=%v leader_address=%q agents=%d err=%v; want false, %q, 0",
			s.Leader, s.LeaderAddress, len(s.Agents), err, l)
	}
	// HTTP: a write and the Mesos scheduler API get 307 to the leader.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, r := range []struct{ method, path string }{
		{http.MethodPut, "/api/v1/roles/eng"}, {http.MethodPost, "/api/v1/scheduler"}, {http.MethodPost, "/api/v1"},
	} {
		req, _ := http.NewRequest(r.method, "http://"+standby+r.path, strings.NewReader(`{}`))
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "//"+l+r.path {
			t.Errorf("%s %s on a standby: %s Location %q; want 307 to //%s%s", r.method, r.path, resp.Status,
				resp.Header.Get("Location"), l, r.path)
		}
	}
	// gRPC: a scheduler pointed at the standby alone is redirected to the
	// leader and subscribes there.
	fw := runHAFramework(t, standby, "redirected", 0)
	fw.waitSubscribed(t)

	// The CLI finds the leader through Consul.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code, out, errOut := runCLI(t, ctx, "status", "--master", c.spec); code != 0 || !strings.Contains(out, "leader "+l) {
		t.Fatalf("status via consul: exit %d\n%s\n%s", code, out, errOut)
	}

	killed := time.Now()
	c.kill9(l)
	l2 := c.leader("after kill -9 of the leader")
	elected := time.Since(killed)
	waitState(t, l2, "30 agents re-registered with the new leader", func(s master.State) bool { return connected(s) == 30 })
	t.Logf("kill -9 of the leader: new leader %s after %v, all agents back after %v", l2, elected, time.Since(killed))
	if code, out, errOut := runCLI(t, ctx, "exec", "--master", c.spec, "--", "sleep", "0.1"); code != 0 {
		t.Fatalf("exec through consul after failover: exit %d\n%s\n%s", code, out, errOut)
	}
}

// testFramework launches tasks and records every acknowledged update.
type testFramework struct {
	name     string
	want     int // tasks to launch
	perOffer int // tasks per offer, default 1
	sleep    string
	mu       sync.Mutex
	subs     int
	fwID     string
	next     int
	states   map[string][]corralpb.TaskState // acknowledged terminal states by task
	agents   map[string]string               // where each launched task went, for reconciliation
	hosts    map[string]string               // the hostname of that agent
	ran      map[string]bool                 // tasks reported TASK_RUNNING
	// runningAcked are tasks whose TASK_RUNNING update the master took
	// the acknowledgement of (relayed to the agent).
	runningAcked map[string]bool
	// stored are the terminal updates handed to Update, where a real
	// framework stores them before the SDK acknowledges them: a
	// scheduler that dies with an ack in flight (which may have reached
	// the agent, which then never resends) leaves them to its standby.
	stored map[string]corralpb.TaskState
	// launching are tasks whose Launch call has not returned: the master
	// may not know them yet, so asking it about them would be answered
	// TASK_LOST ("unknown to the master"), as in Mesos.
	launching map[string]bool
	// peer is the other scheduler of the same framework (the active one
	// of a hot standby): what it saw end is settled for this one too, as
	// a real framework keeps its task states in a shared store.
	peer    *testFramework
	settled map[string]bool // tasks another scheduler of the framework saw end
	subCh   chan struct{}
	cancel  context.CancelFunc
	done    chan error
}

func runHAFramework(t *testing.T, masterSpec, name string, tasks int) *testFramework {
	t.Helper()
	f := newTestFramework(name, tasks)
	startTestFramework(t, f, masterSpec, "", false)
	return f
}

func newTestFramework(name string, tasks int) *testFramework {
	return &testFramework{name: name, want: tasks, sleep: "1", states: map[string][]corralpb.TaskState{}, agents: map[string]string{}, hosts: map[string]string{}, ran: map[string]bool{}, runningAcked: map[string]bool{}, stored: map[string]corralpb.TaskState{}, launching: map[string]bool{}, settled: map[string]bool{},
		subCh: make(chan struct{}, 1), done: make(chan error, 1)}
}

// startTestFramework runs f's scheduler until the test ends (or f.cancel).
func startTestFramework(t *testing.T, f *testFramework, masterSpec, id string, standby bool) {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		f.done <- scheduler.Run(ctx, scheduler.Config{Master: masterSpec, Standby: standby,
			Framework:    &corralpb.FrameworkInfo{Id: id, Name: f.name, FailoverTimeoutSeconds: 3600},
			Logger:       hclog.New(&hclog.LoggerOptions{Name: f.name, Level: hclog.Warn}),
			ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second}, f)
	}()
	t.Cleanup(func() { cancel(); <-f.done })
}

func (f *testFramework) waitSubscribed(t *testing.T) {
	t.Helper()
	select {
	case <-f.subCh:
	case <-time.After(60 * time.Second):
		t.Fatalf("framework %s did not subscribe within 60s", f.name)
	}
}

func (f *testFramework) Subscribed(ctx context.Context, d scheduler.Driver, id string, reconnected bool) {
	f.mu.Lock()
	f.subs++
	f.fwID = id
	again := f.subs > 1
	gen := f.subs
	f.mu.Unlock()
	if reconnected || again {
		// As a careful framework does after a failover: once the agents
		// have had time to re-register, ask about every launched task not
		// yet terminal. One launched just as the old leader died may never
		// have reached its agent; the new leader answers TASK_LOST for it.
		// The loop lasts as long as this subscription: a Launch still in
		// flight when it finds nothing to ask about may be such a task
		// once it returns, so an empty round is no reason to stop.
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(3 * time.Second):
				}
				f.mu.Lock()
				stale := f.subs != gen
				f.mu.Unlock()
				if stale {
					return // a later subscription runs its own loop
				}
				f.mu.Lock()
				peer := f.peer
				f.mu.Unlock()
				var peerDone map[string]bool
				if peer != nil {
					peerDone = map[string]bool{}
					peer.mu.Lock()
					for tid, ss := range peer.states {
						peerDone[tid] = len(ss) > 0
					}
					for tid := range peer.stored {
						peerDone[tid] = true
					}
					peer.mu.Unlock()
				}
				f.mu.Lock()
				var tasks []*corralpb.ReconcileRequest_Task
				for tid, agent := range f.agents {
					if len(f.states[tid]) == 0 && !f.settled[tid] && !peerDone[tid] && !f.launching[tid] {
						tasks = append(tasks, &corralpb.ReconcileRequest_Task{TaskId: tid, AgentId: agent})
					}
				}
				f.mu.Unlock()
				if len(tasks) == 0 {
					continue
				}
				if d.Reconcile(ctx, tasks) != nil {
					return // this subscription is over
				}
			}
		}()
	}
	select {
	case f.subCh <- struct{}{}:
	default:
	}
}

func (f *testFramework) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	for _, o := range offers {
		f.mu.Lock()
		var tasks []*corralpb.TaskInfo
		for f.next < f.want && len(tasks) < max(f.perOffer, 1) {
			id := fmt.Sprintf("%s-%d", f.name, f.next)
			f.next++
			f.agents[id] = o.GetAgentId()
			f.hosts[id] = o.GetHostname()
			f.launching[id] = true
			tasks = append(tasks, &corralpb.TaskInfo{TaskId: id, Name: id, AgentId: o.GetAgentId(),
				Resources: haTaskResources.ToProto(),
				Command:   &corralpb.CommandInfo{Shell: true, Value: "sleep " + f.sleep}})
		}
		f.mu.Unlock()
		if len(tasks) == 0 {
			refuse := 1.0
			_ = d.Decline(ctx, []string{o.GetId()}, &corralpb.Filters{RefuseSeconds: &refuse})
			continue
		}
		err := d.Launch(ctx, []string{o.GetId()}, tasks, nil)
		f.mu.Lock()
		for _, ti := range tasks {
			delete(f.launching, ti.TaskId)
			if err != nil {
				delete(f.agents, ti.TaskId)
				delete(f.hosts, ti.TaskId)
			}
		}
		if err != nil {
			// Nothing launched (the offer went away): the IDs are free again.
			f.next -= len(tasks)
		}
		f.mu.Unlock()
	}
}

func (f *testFramework) Rescinded(context.Context, scheduler.Driver, string) {}
func (f *testFramework) Error(context.Context, scheduler.Driver, string)     {}

// Update records the master's terminal answers to reconciliation: they
// carry no uuid and need no acknowledgement.
func (f *testFramework) Update(_ context.Context, _ scheduler.Driver, st *corralpb.TaskStatus) {
	if st.GetState() == corralpb.TaskState_TASK_RUNNING {
		f.mu.Lock()
		f.ran[st.GetTaskId()] = true
		f.mu.Unlock()
	}
	if len(st.GetUuid()) > 0 && terminalState(st.GetState()) {
		f.mu.Lock()
		f.stored[st.GetTaskId()] = st.GetState()
		f.mu.Unlock()
	}
	if len(st.GetUuid()) > 0 || !terminalState(st.GetState()) {
		return
	}
	f.mu.Lock()
	f.states[st.GetTaskId()] = append(f.states[st.GetTaskId()], st.GetState())
	f.mu.Unlock()
}

// Acknowledged records terminal updates the master accepted the ack of,
// and running ones (counted for make bench-ha).
func (f *testFramework) Acknowledged(_ context.Context, _ scheduler.Driver, st *corralpb.TaskStatus, err error) {
	if err == nil && st.GetState() == corralpb.TaskState_TASK_RUNNING {
		f.mu.Lock()
		f.runningAcked[st.GetTaskId()] = true
		f.mu.Unlock()
	}
	if err != nil || !terminalState(st.GetState()) {
		return
	}
	f.mu.Lock()
	f.states[st.GetTaskId()] = append(f.states[st.GetTaskId()], st.GetState())
	f.mu.Unlock()
}

func terminalState(s corralpb.TaskState) bool {
	switch s {
	case corralpb.TaskState_TASK_FINISHED, corralpb.TaskState_TASK_FAILED, corralpb.TaskState_TASK_KILLED,
		corralpb.TaskState_TASK_LOST, corralpb.TaskState_TASK_ERROR:
		return true
	}
	return false
}

// A leader whose Consul stops answering (SIGSTOP) steps down on its own,
// before Consul could expire its session, so it has stopped acting before
// any other master is elected.
func TestHALeaderStepsDownWhenConsulPauses(t *testing.T) {
	c := startHACluster(t, 2)
	l := c.leader("first election")
	if err := c.consul.Stop(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = c.consul.Cont()
		}
	}()
	paused := time.Now()
	deadline := paused.Add(60 * time.Second)
	for {
		m, err := scrape(l)
		if err == nil && m["corral_master_leader"] == 0 {
			break
		}
		for addr := range c.masters {
			if addr == l {
				continue
			}
			if m, err := scrape(addr); err == nil && m["corral_master_leader"] == 1 {
				t.Fatalf("%s leads while the old leader %s still does", addr, l)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader did not step down within 60s of Consul pausing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("leader stepped down %v after Consul paused", time.Since(paused))
	// It refuses scheduler calls now: a framework pointed at it alone is
	// not served by it (it gets a redirect, or nothing while no leader).
	if s, err := getState(l); err != nil || s.Leader {
		t.Fatalf("old leader state after stepping down: leader=%v err=%v", s.Leader, err)
	}
	if err := c.consul.Cont(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	l2 := c.leader("after Consul resumed")
	t.Logf("leader after Consul resumed: %s (was %s)", l2, l)
}
