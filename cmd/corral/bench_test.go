package main

import (
	"context"
	"os/exec"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/examples/ntasks"
)

// BenchmarkExecRoundTrip measures `corral exec -- true` against an idle dev
// cluster: register a framework, take an offer, launch, stream output, tear
// down. The baseline is running the same `true` binary directly, so the
// ratio is what the cluster adds to one command.
//
//	make bench BENCH=ExecRoundTrip BENCHTIME=20x
func BenchmarkExecRoundTrip(b *testing.B) {
	addr, _ := startDev(b)
	ctx := context.Background()
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	// Warm the page cache and the cluster's first allocation.
	if code, _, errOut := runCLI(b, ctx, "exec", "-q", "--master", addr, "--", "true"); code != 0 {
		b.Fatalf("warm-up exec: %d %s", code, errOut)
	}
	local := median(20, func() {
		if err := exec.Command(truePath).Run(); err != nil {
			b.Fatal(err)
		}
	})
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if code, _, errOut := runCLI(b, ctx, "exec", "-q", "--master", addr, "--", "true"); code != 0 {
			b.Fatalf("exec: %d %s", code, errOut)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	med := medianOf(times)
	b.ReportMetric(float64(med.Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(local.Microseconds())/1000, "baseline-local-ms")
	b.ReportMetric(float64(med)/float64(local), "x-baseline")
}

// BenchmarkTaskThroughput launches 1000 tasks of `true` on one agent through
// the ntasks framework and reports tasks per second, end to end (launch to
// acknowledged TASK_FINISHED). The baseline starts the same 1000 processes
// locally with the same concurrency.
//
//	make bench BENCH=TaskThroughput BENCHTIME=1x
func BenchmarkTaskThroughput(b *testing.B) {
	const tasks, perTask = 1000, 0.1
	agentCPUs := 2.0 // 20 tasks at a time
	addr, _ := startDev(b, "-resources", "cpus:2;mem:4096")
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	concurrency := int(agentCPUs / perTask)
	localStart := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	for range tasks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = exec.Command(truePath).Run()
		}()
	}
	wg.Wait()
	localRate := tasks / time.Since(localStart).Seconds()

	var rate float64
	b.ResetTimer()
	for i := range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		start := time.Now()
		res, err := ntasks.Run(ctx, ntasks.Config{Master: addr, Name: "bench" + string(rune('a'+i%26)), Tasks: tasks,
			Command: "true", CPUs: perTask, Mem: 32})
		cancel()
		if err != nil || res.Finished != tasks {
			b.Fatalf("%d of %d finished: %v", res.Finished, tasks, err)
		}
		rate = tasks / time.Since(start).Seconds()
	}
	b.StopTimer()
	b.ReportMetric(rate, "tasks/s")
	b.ReportMetric(localRate, "baseline-local-procs/s")
	b.ReportMetric(rate/localRate, "x-baseline")
}

func median(n int, f func()) time.Duration {
	var ts []time.Duration
	for range n {
		start := time.Now()
		f()
		ts = append(ts, time.Since(start))
	}
	return medianOf(ts)
}

func medianOf(ts []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
