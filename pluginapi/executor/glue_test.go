package executor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/executor/contracttest"
	"github.com/corral-project/corral/pluginapi/isolator"
)

// recorder is a test double that records what crosses the wire. Its Launch
// uses the host's ContainerService the way a real executor does.
type recorder struct {
	mu       sync.Mutex // gRPC handlers run on their own goroutines
	req      *executor.LaunchRequest
	spec     *isolator.LaunchSpec
	signals  []syscall.Signal
	grace    time.Duration
	taskIDs  []string // the task each per-task call named
	isoErr   error
	launched bool
}

func (r *recorder) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindExecutor, Name: "recorder", Version: "9.9.9", APIVersions: executor.APIVersions}, nil
}
func (r *recorder) ConfigSchema(context.Context) (*base.Schema, error) { return &base.Schema{}, nil }
func (r *recorder) SetConfig(context.Context, []byte, string) error    { return nil }

func (r *recorder) Launch(ctx context.Context, req *executor.LaunchRequest, cs executor.ContainerService) (*executor.LaunchResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.req = req
	spec, err := cs.Prepare(ctx, req.ContainerID)
	if err != nil {
		return nil, err
	}
	r.spec = spec
	if err := cs.Isolate(ctx, req.ContainerID, 4242); err != nil {
		r.isoErr = err
		return nil, fmt.Errorf("isolate: %w", err)
	}
	r.launched = true
	return &executor.LaunchResponse{Pid: 4242, StartTicks: 987654321}, nil
}
func (r *recorder) named(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.taskIDs = append(r.taskIDs, id)
}
func (r *recorder) Wait(_ context.Context, id string) (*executor.ExitResult, error) {
	r.named(id)
	return &executor.ExitResult{ExitCode: 2, Signal: 9, Err: "partial"}, nil
}
func (r *recorder) Signal(_ context.Context, id string, sig syscall.Signal) error {
	r.named(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signals = append(r.signals, sig)
	return nil
}
func (r *recorder) Shutdown(_ context.Context, id string, grace time.Duration) error {
	r.named(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.grace = grace
	return nil
}
func (r *recorder) Forget(_ context.Context, id string) error {
	r.named(id)
	return nil
}
func (r *recorder) Stats(_ context.Context, id string) (*executor.Stats, error) {
	r.named(id)
	return &executor.Stats{CPUUserSeconds: 1.25, CPUSystemSeconds: 0.5, MemRSSBytes: 4096, Timestamp: time.UnixMilli(1_700_000_000_001)}, nil
}
func (r *recorder) Version(context.Context) (*executor.VersionInfo, error) {
	return &executor.VersionInfo{Version: "9.9.9", Pid: 4242, Tasks: 7}, nil
}

// hostContainers is the host side of ContainerService in these tests.
type hostContainers struct {
	mu       sync.Mutex // called from the broker's server goroutines
	prepared []string
	isolated []int
	fail     bool
}

func (h *hostContainers) Prepare(_ context.Context, id string) (*isolator.LaunchSpec, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prepared = append(h.prepared, id)
	return &isolator.LaunchSpec{
		Environment: map[string]string{"X": "y"},
		Rlimits:     []isolator.Rlimit{{Name: "nproc", Soft: 10, Hard: 20}},
		CgroupProcs: []string{"/cg/procs"},
		NewSession:  true,
		SkipIsolate: true,
	}, nil
}

func (h *hostContainers) Isolate(_ context.Context, _ string, pid int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail {
		return errors.New("cgroup is gone")
	}
	h.isolated = append(h.isolated, pid)
	return nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRoundTripWithBrokeredContainerService(t *testing.T) {
	rec := &recorder{}
	e := contracttest.InProcess(t, rec)
	host := &hostContainers{}
	req := &executor.LaunchRequest{
		ContainerID: "c1", TaskID: "t1",
		Command:    executor.Command{Shell: false, Value: "/bin/echo", Arguments: []string{"a", "b"}, Environment: map[string]string{"K": "v"}, User: "nobody"},
		SandboxDir: "/sb", StdoutPath: "/sb/stdout", StderrPath: "/sb/stderr",
		Environment: map[string]string{"CORRAL_TASK_ID": "t1"},
	}
	resp, err := e.Launch(ctx(t), req, host)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Pid != 4242 || resp.StartTicks != 987654321 {
		t.Errorf("LaunchResponse = %+v", resp)
	}
	rec.mu.Lock()
	g, spec := rec.req, rec.spec
	rec.mu.Unlock()
	if g.ContainerID != "c1" || g.TaskID != "t1" || g.SandboxDir != "/sb" || g.StdoutPath != "/sb/stdout" || g.StderrPath != "/sb/stderr" ||
		g.Environment["CORRAL_TASK_ID"] != "t1" || g.Command.Value != "/bin/echo" || g.Command.Shell ||
		!slices.Equal(g.Command.Arguments, []string{"a", "b"}) || g.Command.Environment["K"] != "v" || g.Command.User != "nobody" {
		t.Errorf("plugin got LaunchRequest %+v", g)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	// One Prepare: the host's, before the call; the plugin's is answered
	// from the spec sent with the Launch, without a call back.
	if !slices.Equal(host.prepared, []string{"c1"}) || !slices.Equal(host.isolated, []int{4242}) {
		t.Errorf("host ContainerService saw prepare %v isolate %v", host.prepared, host.isolated)
	}
	if s := spec; s.Environment["X"] != "y" || !s.NewSession || !s.SkipIsolate || !slices.Equal(s.CgroupProcs, []string{"/cg/procs"}) ||
		!slices.Equal(s.Rlimits, []isolator.Rlimit{{Name: "nproc", Soft: 10, Hard: 20}}) {
		t.Errorf("plugin got LaunchSpec %+v", s)
	}

	res, err := e.Wait(ctx(t), "t-wait")
	if err != nil || *res != (executor.ExitResult{ExitCode: 2, Signal: 9, Err: "partial"}) {
		t.Errorf("Wait = %+v, %v", res, err)
	}
	if err := e.Signal(ctx(t), "t-signal", syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	signals := rec.signals
	rec.mu.Unlock()
	if !slices.Equal(signals, []syscall.Signal{syscall.SIGUSR1}) {
		t.Errorf("plugin got signals %v", signals)
	}
	if err := e.Shutdown(ctx(t), "t-shutdown", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	grace := rec.grace
	rec.mu.Unlock()
	if grace != 1500*time.Millisecond {
		t.Errorf("plugin got grace %v", grace)
	}
	st, err := e.Stats(ctx(t), "t-stats")
	if err != nil || st.CPUUserSeconds != 1.25 || st.CPUSystemSeconds != 0.5 || st.MemRSSBytes != 4096 || !st.Timestamp.Equal(time.UnixMilli(1_700_000_000_001)) {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	v, err := e.Version(ctx(t))
	if err != nil || *v != (executor.VersionInfo{Version: "9.9.9", Pid: 4242, Tasks: 7}) {
		t.Errorf("Version = %+v, %v", v, err)
	}
	if err := e.Forget(ctx(t), "t-forget"); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	ids := rec.taskIDs
	rec.mu.Unlock()
	if want := []string{"t-wait", "t-signal", "t-shutdown", "t-stats", "t-forget"}; !slices.Equal(ids, want) {
		t.Errorf("plugin saw task IDs %v, want %v", ids, want)
	}
}

func TestContainerServiceErrorReachesPluginAndHost(t *testing.T) {
	rec := &recorder{}
	e := contracttest.InProcess(t, rec)
	_, err := e.Launch(ctx(t), &executor.LaunchRequest{ContainerID: "c1", TaskID: "t1"}, &hostContainers{fail: true})
	if err == nil || !strings.Contains(err.Error(), "cgroup is gone") {
		t.Fatalf("Launch = %v, want the host's isolate error", err)
	}
	rec.mu.Lock()
	isoErr, launched := rec.isoErr, rec.launched
	rec.mu.Unlock()
	if isoErr == nil || !strings.Contains(isoErr.Error(), "cgroup is gone") || launched {
		t.Errorf("plugin saw isolate error %v, launched %v", isoErr, launched)
	}
}

func TestSignalOutOfRangeIsRejected(t *testing.T) {
	rec := &recorder{}
	e := contracttest.InProcess(t, rec)
	if err := e.Signal(ctx(t), "t1", syscall.Signal(0)); err == nil {
		t.Fatal("Signal(0) succeeded")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.signals) != 0 {
		t.Errorf("plugin got signals %v", rec.signals)
	}
}

// The contract suite must accept a correct executor; shell is one.
func TestContractSuiteAcceptsShell(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) executor.Executor {
		return contracttest.InProcess(t, &shell{})
	})
}
