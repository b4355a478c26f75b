package checkpoint

import (
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLaunchBurst is the checkpoint writes of a burst of task
// launches, as the agent makes them, from one goroutine per task: the
// task, STARTING and RUNNING with their updates, both acknowledgements.
// It reports this process's CPU (user and system) per task beside the wall
// time. "burst" starts every task at once; "spread" one every 5 ms, as
// launches arrive on a loaded agent, where batches are small and each
// commit's fixed cost (page writes, two fdatasyncs) counts.
//
//	go test -run '^$' -bench LaunchBurst ./core/agent/checkpoint
func BenchmarkLaunchBurst(b *testing.B) {
	b.Run("burst", func(b *testing.B) { benchmarkLaunches(b, 0) })
	b.Run("spread", func(b *testing.B) { benchmarkLaunches(b, 5*time.Millisecond) })
}

func benchmarkLaunches(b *testing.B, every time.Duration) {
	const tasks = 300
	info := make([]byte, 300) // about a marshalled TaskInfo
	status := make([]byte, 200)
	for b.Loop() {
		b.StopTimer()
		s, err := Open(filepath.Join(b.TempDir(), FileName))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		before := cpuTime()
		var wg sync.WaitGroup
		for i := range tasks {
			if every > 0 {
				time.Sleep(every) // the arrival rate being modelled
			}
			wg.Go(func() {
				t := Task{FrameworkID: "fw", TaskID: fmt.Sprintf("t%04d", i), Info: info, ContainerID: "c", Isolator: "cgroups"}
				if err := s.PutTask(t); err != nil {
					b.Error(err)
				}
				for j, state := range []int32{1, 2} {
					t.State = state
					uuid := []byte{byte(i), byte(i >> 8), byte(j)}
					if err := s.PutTaskAndUpdate(&t, Update{FrameworkID: "fw", TaskID: t.TaskID, UUID: uuid, Status: status}); err != nil {
						b.Error(err)
					}
					if err := s.RemoveUpdate("fw", t.TaskID, uuid); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64((cpuTime()-before).Microseconds())/tasks, "cpu-µs/task")
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
