package master_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/corral-project/corral/core/master/agentproto"
)

// BenchmarkReregistrationFloor is what a failover's re-registration burst
// costs on this machine with no master at all: the same fleet process as
// BenchmarkReregistrationGRPC (N agents, 10 running tasks each, 50 agents
// per HTTP/2 connection, connections already open) against a bare gRPC
// server that decodes each Register, answers Registered and keeps the
// stream, with no interceptors, logging, books or allocator. It is the
// floor under issue 9's "every agent back within 2 s": whatever the master
// does is added to it. Run it beside the GRPC one to see corral's share:
//
//	go test -run '^$' -bench 'Reregistration(GRPC|Floor)/agents=10000/(resent=0/warm=0|)' -benchtime 3x ./core/master
//
// server-cpu-µs/agent and fleet-cpu-µs/agent split the CPU between the two
// processes; ns/op is the wall time from the fleet's start until the server
// has answered every agent, on a machine whose cores both processes share.
func BenchmarkReregistrationFloor(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) { benchReregistrationFloor(b, n, 10) })
	}
}

func benchReregistrationFloor(b *testing.B, n, perAgent int) {
	var serverCPU, fleetCPU time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		srv := startBareGateway(b)
		fleet := startFleet(b, srv.addr, n, perAgent, false)
		b.StartTimer()
		cpu0, f0 := processCPU(b), pidCPU(b, fleet.cmd.Process.Pid)
		start := time.Now()
		fleet.start()
		for deadline := start.Add(5 * time.Minute); srv.registered.Load() < int64(n); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("after 5 minutes the bare server has answered %d of %d agents", srv.registered.Load(), n)
			}
		}
		serverCPU += processCPU(b) - cpu0
		fleetCPU += pidCPU(b, fleet.cmd.Process.Pid) - f0
		b.StopTimer()
		fleet.wait(b, n)
		if got := srv.tasks.Load(); got != int64(n*perAgent) {
			b.Fatalf("the bare server decoded %d tasks, want %d", got, n*perAgent)
		}
		fleet.stop()
		srv.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*perAgent), "tasks")
	b.ReportMetric(float64(serverCPU.Microseconds())/float64(b.N*n), "server-cpu-µs/agent")
	b.ReportMetric(float64(fleetCPU.Microseconds())/float64(b.N*n), "fleet-cpu-µs/agent")
}

// bareGateway is the agent protocol's server side reduced to what no
// master can skip: read the registration, answer it, hold the stream.
type bareGateway struct {
	agentproto.UnimplementedAgentGatewayServer
	addr       string
	registered atomic.Int64
	tasks      atomic.Int64
	stop       func()
}

func startBareGateway(b *testing.B) *bareGateway {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	bg := &bareGateway{addr: l.Addr().String(), stop: g.Stop}
	agentproto.RegisterAgentGatewayServer(g, bg)
	go func() { _ = g.Serve(l) }()
	b.Cleanup(g.Stop)
	return bg
}

func (bg *bareGateway) Connect(stream agentproto.AgentGateway_ConnectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if reg == nil || reg.Agent == nil {
		return fmt.Errorf("the first message is %T, want a register", first.GetMsg())
	}
	if err := stream.Send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_Registered{
		Registered: &agentproto.Registered{AgentId: reg.Agent.Id, HeartbeatIntervalSeconds: 15, Secret: reg.Secret}}}); err != nil {
		return err
	}
	bg.tasks.Add(int64(len(reg.Tasks)))
	bg.registered.Add(1)
	for {
		if _, err := stream.Recv(); err != nil {
			return nil
		}
	}
}

// pidCPU is another process's user+system CPU time so far, from
// /proc/PID/stat (clock ticks of 10 ms: enough for bursts of seconds).
func pidCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The command name may hold spaces; the fields after it do not.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
