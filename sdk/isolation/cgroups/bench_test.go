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
// empty or each with a sleeping process, are watched for OOM kills at the default poll period.
//
//	go test -run '^$' -bench WatchIdle ./plugins/isolator/cgroups
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
