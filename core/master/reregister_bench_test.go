package master_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// BenchmarkReregistration is the master's share of a failover: a fresh
// leader (allocation loop running, DRF in-process) takes back N agents
// that each report 10 running tasks of one framework that has not
// re-subscribed yet, from 8 concurrent streams' worth of goroutines. One
// op is the whole fleet; ns/op is the time until the last agent is back.
// With registry=records the leader has read every agent from its registry
// records first, as a leader after a failover has (it then waits for them
// before allocating again); with registry=none it has no registry (a
// standalone master restarted without records).
//
//	go test -run '^$' -bench Reregistration -benchtime 3x ./core/master
func BenchmarkReregistration(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, withRecords := range []bool{false, true} {
			name := fmt.Sprintf("agents=%d/registry=none", n)
			if withRecords {
				name = fmt.Sprintf("agents=%d/registry=records", n)
			}
			b.Run(name, func(b *testing.B) { benchReregistration(b, n, withRecords) })
		}
	}
}

func benchReregistration(b *testing.B, n int, withRecords bool) {
	regs := reregistrations(n, 10)
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cfg := master.Config{AllocationInterval: 100 * time.Millisecond}
		if withRecords {
			cfg.Registry = registryWithAgents(b, regs)
		}
		c := startMaster(b, cfg)
		if withRecords {
			waitExpected(b, c.m, n)
		}
		b.StartTimer()
		cpu0 := processCPU(b)
		var wg sync.WaitGroup
		const workers = 8
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(regs); i += workers {
					if err := c.m.Reregister(regs[i]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		cpu += processCPU(b) - cpu0
		b.StopTimer()
		c.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*10), "tasks")
	// CPU, not wall time, is what compares across runs on a shared
	// machine: the whole process (registration, allocation loop, GC) per
	// agent taken back.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/agent")
}

// processCPU is the process's user+system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// registryWithAgents is a file registry holding every agent of regs.
func registryWithAgents(b *testing.B, regs []*agentproto.Register) coord.Store {
	b.Helper()
	st := coord.FileStore{Path: filepath.Join(b.TempDir(), "registry.json")}
	put := make(map[string][]byte, len(regs))
	for _, r := range regs {
		put[r.Agent.Id] = []byte(fmt.Sprintf(`{"hostname":%q}`, r.Agent.Hostname))
	}
	if err := st.Records("agents").Update(context.Background(), put, nil); err != nil {
		b.Fatal(err)
	}
	return st
}

// waitExpected waits until the leader has read the registry records.
func waitExpected(b *testing.B, m *master.Master, n int) {
	b.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Millisecond) {
		if exp, loaded := m.ExpectedAgents(); loaded && exp == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("the registry records were not read within 2 minutes")
		}
	}
}

func reregistrations(agents, perAgent int) []*agentproto.Register {
	// As a framework and its tasks reach an agent (and come back in its
	// registration): sdk/scheduler's info, a shell command.
	fw := &corralpb.FrameworkInfo{Id: "fw-bench", Name: "bench", Roles: []string{"*"}, User: "corral", FailoverTimeoutSeconds: 3600}
	res := resources.MustParse("cpus:2;mem:1024").ToProto()
	taskRes := resources.MustParse("cpus:0.1;mem:32").ToProto()
	out := make([]*agentproto.Register, agents)
	for i := range out {
		id := fmt.Sprintf("agent-%06d", i)
		reg := &agentproto.Register{Agent: &corralpb.AgentInfo{Id: id, Hostname: "host-" + id, Resources: res}, Secret: "s-" + id}
		for j := range perAgent {
			reg.Tasks = append(reg.Tasks, &agentproto.RunningTask{Framework: fw, State: corralpb.TaskState_TASK_RUNNING,
				Task: &corralpb.TaskInfo{TaskId: fmt.Sprintf("t-%06d-%02d", i, j), Name: fmt.Sprintf("t-%06d-%02d", i, j), AgentId: id,
					Resources: taskRes, Command: &corralpb.CommandInfo{Shell: true, Value: "sleep 36000"}}})
		}
		out[i] = reg
	}
	return out
}

// BenchmarkScrapeAfterFailover is one Prometheus scrape of a leader that
// took back 10k agents with 10 tasks each: the collectors read the books
// under the master's lock (tasks by state, capacity, allocation by role),
// and make bench-ha scrapes the new leader every few milliseconds during
// the re-registration burst.
func BenchmarkScrapeAfterFailover(b *testing.B) {
	c := startMaster(b, master.Config{AllocationInterval: time.Hour})
	for _, reg := range reregistrations(10000, 10) {
		if err := c.m.Reregister(reg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
