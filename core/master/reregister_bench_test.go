package master_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

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
//
//	go test -run '^$' -bench Reregistration -benchtime 3x ./core/master
func BenchmarkReregistration(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			regs := reregistrations(n, 10)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				c := startMaster(b, master.Config{AllocationInterval: 100 * time.Millisecond})
				b.StartTimer()
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
				b.StopTimer()
				c.stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(n*10), "tasks")
		})
	}
}

func reregistrations(agents, perAgent int) []*agentproto.Register {
	fw := &corralpb.FrameworkInfo{Id: "fw-bench", Name: "bench", Roles: []string{"*"}}
	res := resources.MustParse("cpus:2;mem:1024").ToProto()
	taskRes := resources.MustParse("cpus:0.1;mem:32").ToProto()
	out := make([]*agentproto.Register, agents)
	for i := range out {
		id := fmt.Sprintf("agent-%06d", i)
		reg := &agentproto.Register{Agent: &corralpb.AgentInfo{Id: id, Hostname: "host-" + id, Resources: res}, Secret: "s-" + id}
		for j := range perAgent {
			reg.Tasks = append(reg.Tasks, &agentproto.RunningTask{Framework: fw, State: corralpb.TaskState_TASK_RUNNING,
				Task: &corralpb.TaskInfo{TaskId: fmt.Sprintf("t-%06d-%02d", i, j), Name: "t", AgentId: id, Resources: taskRes}})
		}
		out[i] = reg
	}
	return out
}
