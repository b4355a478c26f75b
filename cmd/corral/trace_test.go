package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/core/sim"
)

// TestTraceRecordReplays records a live dev cluster while two commands
// run as tasks, stops the recording with SIGINT, and replays the trace in
// the simulator.
func TestTraceRecordReplays(t *testing.T) {
	dir := binDir(t)
	addr, _ := startDev(t)
	out := filepath.Join(t.TempDir(), "rec.json")
	rec := exec.Command(filepath.Join(dir, "corral"), "trace", "record", "-master", addr, "-duration", "10m",
		"-interval", "100ms", "-out", out)
	var recOut, recErr strings.Builder
	rec.Stdout, rec.Stderr = &recOut, &recErr
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rec.Process.Kill() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < 2; i++ {
		if code, _, stderr := runCLI(t, ctx, "exec", "--master", addr, "--cpus", "0.5", "--mem", "64", "-q", "--", "sleep", "1"); code != 0 {
			t.Fatalf("exec: exit %d: %s", code, stderr)
		}
	}
	// The recorder looks once more when interrupted, so both ends are in.
	if err := rec.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := rec.Wait(); err != nil {
		t.Fatalf("trace record: %v\n%s", err, recErr.String())
	}
	tr, err := sim.LoadTrace(out)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []sim.Job
	for _, f := range tr.Frameworks {
		jobs = append(jobs, f.Jobs...)
	}
	if len(tr.Agents) != 1 || tr.Agents[0].Count != 1 || len(jobs) != 2 {
		t.Fatalf("recorded %d agent groups and %d tasks, want 1 agent and 2 tasks: %+v", len(tr.Agents), len(jobs), tr)
	}
	for _, j := range jobs {
		if j.Task != "cpus:0.5;mem:64" || j.DurationS < 0.9 || j.DurationS > 30 {
			t.Errorf("task %+v: want cpus:0.5;mem:64 running about 1 s", j)
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ArrivalS < jobs[j].ArrivalS })
	if jobs[0].ArrivalS < 0 || jobs[1].ArrivalS-jobs[0].ArrivalS < 0.9 {
		t.Errorf("arrivals %v, %v: the second task was created after the first one ran for 1 s", jobs[0].ArrivalS, jobs[1].ArrivalS)
	}
	code, stdout, stderr := runCLI(t, ctx, "sim", "-trace", out, "-plugin-dir", filepath.Join(dir, "plugins"), "-out", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "1/1") {
		t.Fatalf("replay: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
