package master_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/plugins/allocator/drf"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// BenchmarkReregistrationGRPC is a failover's re-registration burst end
// to end, as the new leader sees it: N agents with 10 running tasks each
// open their Connect streams through the real gRPC agent gateway (with
// the authenticating interceptors a master serves them with, an info-level
// JSON logger, the registry records of every agent read first) and wait
// for Registered. The agents are clients in another process (this test
// binary again, see TestReregistrationFleet), sharing one HTTP/2
// connection per 50 agents as the emulated agents do, so the process's
// CPU and allocations are the master's alone.
//
// One op is the whole fleet, from the moment the agents start until the
// master's books hold every agent back and every task; cpu-µs/agent and
// allocs/agent are the master's. With resent=1 every agent also sends
// each task's last status update again once it is registered, as agents
// do with updates the old leader had not acknowledged (make bench-ha kills
// the leader while the framework's acknowledgements are still in flight).
// With warm=1 the master held memory warm for the agents in its registry
// (HeapWarmer, as a standby does) and releases it as the burst starts. CORRAL_BENCH_REREG_CPUPROFILE=FILE
// profiles only that window (go test's -cpuprofile covers the setup too).
//
//	go test -run '^$' -bench ReregistrationGRPC -benchtime 3x ./core/master
func BenchmarkReregistrationGRPC(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, resend := range []bool{false, true} {
			for _, warm := range []bool{false, true} {
				name := fmt.Sprintf("agents=%d/resent=%d/warm=%d", n, btoi(resend), btoi(warm))
				b.Run(name, func(b *testing.B) { benchReregistrationGRPC(b, n, 10, resend, warm) })
			}
		}
	}
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

func benchReregistrationGRPC(b *testing.B, n, perAgent int, resend, warm bool) {
	regs := reregistrations(n, perAgent)
	var cpu, fleetCPU time.Duration
	var mallocs, stacks uint64
	var peak int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		log := hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Info, JSONFormat: true})
		plugin := drf.NewPlugin()
		if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
			b.Fatal(err)
		}
		// The fleet's process starts after the master leads (it needs the
		// address): a pause long enough for that keeps the burst inside
		// the recovery window, as it is when agents follow a new leader.
		cfg := master.Config{AllocationInterval: 100 * time.Millisecond, RecoveryAllocationPause: time.Minute,
			Registry: registryWithAgents(b, regs)}
		c := startMasterServer(b, cfg,
			master.Deps{Allocator: fixedAllocator{plugin}, Logger: log}, (&authn.Authenticator{}).ServerOptions()...)
		waitExpected(b, c.m, n)
		fleet := startFleet(b, c.addr, n, perAgent, resend)
		updates := 0
		if resend {
			updates = n * perAgent
		}
		var warmer master.HeapWarmer
		if warm {
			// As a standby does (WarmStandby) until it leads.
			ctx, cancel := context.WithCancel(context.Background())
			go master.WarmStandby(ctx, cfg.Registry, &warmer, time.Hour, log)
			for warmer.Size() < n*master.WarmBytesPerAgent {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		stopProfile := windowProfile(b, i)
		b.StartTimer()
		cpu0, f0 := processCPU(b), pidCPU(b, fleet.cmd.Process.Pid)
		warmer.Release() // leading: the burst reuses the warm pages
		fleet.start()
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Millisecond) {
			if exp, _ := c.m.ExpectedAgents(); exp == 0 && c.m.LiveTasks() == n*perAgent && c.m.StatusUpdatesReceived() >= updates {
				break
			}
			if time.Now().After(deadline) {
				exp, _ := c.m.ExpectedAgents()
				b.Fatalf("after 5 minutes %d agents are still expected, the master knows %d of %d tasks and received %d of %d updates",
					exp, c.m.LiveTasks(), n*perAgent, c.m.StatusUpdatesReceived(), updates)
			}
		}
		cpu += processCPU(b) - cpu0
		fleetCPU += pidCPU(b, fleet.cmd.Process.Pid) - f0
		b.StopTimer()
		stopProfile()
		runtime.ReadMemStats(&ms1)
		mallocs += ms1.Mallocs - ms0.Mallocs
		stacks += ms1.StackInuse
		// What the process took from the OS for the burst (heap and
		// stacks), which a fresh leader faults in page by page.
		// (Signed: with warm memory released the runtime may hand some
		// back to the OS meanwhile, and the difference is then negative.)
		peak += max(int64(ms1.HeapSys+ms1.StackSys)-int64(ms0.HeapSys+ms0.StackSys), 0)
		fleet.wait(b, n)
		fleet.stop()
		c.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*perAgent), "tasks")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/agent")
	b.ReportMetric(float64(fleetCPU.Microseconds())/float64(b.N*n), "fleet-cpu-µs/agent")
	b.ReportMetric(float64(mallocs)/float64(b.N*n), "allocs/agent")
	// Goroutine stacks in use once every agent is back, per agent: the
	// streams' goroutines, each stack memory a fresh leader faults in.
	b.ReportMetric(float64(stacks)/1024/float64(b.N*n), "stack-KiB/agent")
	b.ReportMetric(float64(peak)/1024/float64(b.N*n), "new-mem-KiB/agent")
}

// windowProfile starts a CPU profile of the measured window when
// CORRAL_BENCH_REREG_CPUPROFILE names a file (iteration i > 0 gets a
// suffix), and returns what stops it.
func windowProfile(b *testing.B, i int) func() {
	path := os.Getenv("CORRAL_BENCH_REREG_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	if i > 0 {
		path += "." + strconv.Itoa(i)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("%v (CORRAL_BENCH_REREG_CPUPROFILE and -cpuprofile do not mix)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// fleet is the agents' process: it connects, says "ready", starts
// re-registering when told to, and says how many registered.
type fleet struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startFleet(b *testing.B, addr string, n, perAgent int, resend bool) *fleet {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReregistrationFleet$")
	cmd.Env = append(os.Environ(), "CORRAL_REREG_FLEET_ADDR="+addr, "CORRAL_REREG_FLEET_N="+strconv.Itoa(n),
		"CORRAL_REREG_FLEET_TASKS="+strconv.Itoa(perAgent), "CORRAL_REREG_FLEET_RESEND="+strconv.FormatBool(resend))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	f := &fleet{cmd: cmd, in: in, lines: make(chan string, 16)}
	b.Cleanup(f.stop)
	go func() {
		defer close(f.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "fleet: ") {
				f.lines <- strings.TrimPrefix(l, "fleet: ")
			}
		}
	}()
	if l := f.next(b); l != "ready" {
		b.Fatalf("the fleet said %q, want ready", l)
	}
	return f
}

func (f *fleet) next(b *testing.B) string {
	b.Helper()
	select {
	case l, ok := <-f.lines:
		if !ok {
			b.Fatal("the fleet process ended")
		}
		return l
	case <-time.After(5 * time.Minute):
		b.Fatal("the fleet process said nothing for 5 minutes")
	}
	return ""
}

func (f *fleet) start() {
	_, _ = io.WriteString(f.in, "go\n")
}

// wait checks that every agent heard Registered.
func (f *fleet) wait(b *testing.B, n int) {
	b.Helper()
	if l, want := f.next(b), fmt.Sprintf("registered %d", n); l != want {
		b.Fatalf("the fleet said %q, want %q", l, want)
	}
}

func (f *fleet) stop() {
	_ = f.in.Close() // the fleet ends its streams and exits
	_ = f.cmd.Wait()
}

// TestReregistrationFleet is the agents' side of
// BenchmarkReregistrationGRPC, run in a process of its own.
func TestReregistrationFleet(t *testing.T) {
	addr := os.Getenv("CORRAL_REREG_FLEET_ADDR")
	if addr == "" {
		t.Skip("the agents' process of BenchmarkReregistrationGRPC")
	}
	n, _ := strconv.Atoi(os.Getenv("CORRAL_REREG_FLEET_N"))
	perAgent, _ := strconv.Atoi(os.Getenv("CORRAL_REREG_FLEET_TASKS"))
	resend, _ := strconv.ParseBool(os.Getenv("CORRAL_REREG_FLEET_RESEND"))
	regs := reregistrations(n, perAgent)
	const perConn = 50 // as emulate.Options.AgentsPerConn
	var clients []agentproto.AgentGatewayClient
	for i := 0; i < n; i += perConn {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cc.Connect()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
			if !cc.WaitForStateChange(ctx, s) {
				t.Fatalf("connection %d not ready within a minute (%v)", len(clients), s)
			}
		}
		cancel()
		clients = append(clients, agentproto.NewAgentGatewayClient(cc))
	}
	fmt.Println("fleet: ready")
	stdin := bufio.NewReader(os.Stdin)
	if l, err := stdin.ReadString('\n'); err != nil || l != "go\n" {
		t.Fatalf("read %q, %v; want go", l, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var registered atomic.Int64
	for i, reg := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, _, err := agentproto.Handshake(ctx, clients[i/perConn], &agentproto.AgentMessage{
				Msg: &agentproto.AgentMessage_Register{Register: reg}})
			if err != nil {
				t.Errorf("agent %d: %v", i, err)
				return
			}
			registered.Add(1)
			if resend {
				for _, rt := range reg.Tasks {
					uuid := []byte(rt.Task.TaskId)[:16]
					if err := stream.Send(&agentproto.AgentMessage{Msg: &agentproto.AgentMessage_StatusUpdate{StatusUpdate: &agentproto.StatusUpdate{
						FrameworkId: rt.Framework.Id, Status: &corralpb.TaskStatus{TaskId: rt.Task.TaskId, State: corralpb.TaskState_TASK_RUNNING,
							Uuid: uuid, Source: corralpb.TaskStatus_SOURCE_AGENT, AgentId: reg.Agent.Id, TimestampUnixMs: time.Now().UnixMilli()}}}}); err != nil {
						t.Errorf("agent %d: resending an update: %v", i, err)
						return
					}
				}
			}
			// Keep the stream open, reading, as an agent does.
			go func() {
				for {
					if _, err := stream.Recv(); err != nil {
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	fmt.Printf("fleet: registered %d\n", registered.Load())
	_, _ = io.Copy(io.Discard, stdin) // until the benchmark closes stdin
}
