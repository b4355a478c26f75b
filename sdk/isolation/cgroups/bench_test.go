package cgroups

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/resources"
)

// BenchmarkWatchIdle reports the CPU Watch costs while 1000 containers,
// empty or each with a sleeping process, are watched for OOM kills (the
// kernel notifies them: an idle watcher should cost nothing).
//
//	go test -run '^$' -bench WatchIdle ./sdk/isolation/cgroups
func BenchmarkWatchIdle(b *testing.B) {
	b.Run("empty", func(b *testing.B) { benchmarkWatchIdle(b, false) })
	b.Run("sleep-in-each", func(b *testing.B) { benchmarkWatchIdle(b, true) })
}

func benchmarkWatchIdle(b *testing.B, populated bool) {
	const containers, window = 1000, 5 * time.Second
	iso := testIsolatorB(b)
	ctx := context.Background()
	res := resources.MustParse("cpus:0.001;mem:4")
	for i := range containers {
		id := fmt.Sprintf("c%04d", i)
		if _, err := iso.Prepare(ctx, isolator.PrepareRequest{ContainerID: id, Resources: res}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = iso.Cleanup(context.Background(), id) })
		if populated {
			cmd := exec.Command("sleep", "600")
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			go func() { _ = cmd.Wait() }()
			b.Cleanup(func() { _ = cmd.Process.Kill() })
			if err := iso.Isolate(ctx, id, cmd.Process.Pid); err != nil {
				b.Fatal(err)
			}
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := iso.Watch(wctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		before := cpuTime()
		time.Sleep(window) // the measuring window
		b.ReportMetric(100*(cpuTime()-before).Seconds()/window.Seconds(), "%cpu")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPrepareCleanup is the isolator's own cost of a container's
// life without a process: Prepare (cgroups in every controller, limits,
// OOM watch) and Cleanup (removal), per container, with the CPU this
// process spent (user and system) per container beside the wall time.
//
//	go test -run '^$' -bench PrepareCleanup -benchtime 300x ./sdk/isolation/cgroups
func BenchmarkPrepareCleanup(b *testing.B) {
	iso := testIsolatorB(b)
	ctx := context.Background()
	res := resources.MustParse("cpus:0.001;mem:4")
	before := cpuTime()
	n := 0
	for b.Loop() {
		id := fmt.Sprintf("c%06d", n)
		n++
		if _, err := iso.Prepare(ctx, isolator.PrepareRequest{ContainerID: id, Resources: res}); err != nil {
			b.Fatal(err)
		}
		if err := iso.Cleanup(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(n), "cpu-µs/container")
}
