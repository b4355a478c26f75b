package isolator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/pluginapi/isolator/contracttest"
	"github.com/corral-project/corral/sdk/resources"
)

// recorder is a test double that records what crosses the wire.
type recorder struct {
	mu       sync.Mutex
	calls    []string
	prepared isolator.PrepareRequest
	updated  resources.Resources
	known    []isolator.ContainerState
	limits   chan isolator.Limitation
	watchCtx context.Context
}

func (r *recorder) record(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindIsolator, Name: "recorder", Version: "1.2.3", APIVersions: []string{"v1"}}, nil
}
func (r *recorder) ConfigSchema(context.Context) (*base.Schema, error) {
	return &base.Schema{Attributes: []base.Attribute{{Name: "root", Type: "string"}}}, nil
}
func (r *recorder) SetConfig(_ context.Context, cfg []byte, v string) error {
	r.record("config %s %s", cfg, v)
	return nil
}
func (r *recorder) Recover(_ context.Context, _ string, known []isolator.ContainerState) ([]string, error) {
	r.mu.Lock()
	r.known = known
	r.mu.Unlock()
	return []string{"orphan-1", "orphan-2"}, nil
}
func (r *recorder) Prepare(_ context.Context, req isolator.PrepareRequest) (*isolator.LaunchSpec, error) {
	r.mu.Lock()
	r.prepared = req
	r.mu.Unlock()
	return &isolator.LaunchSpec{
		Environment: map[string]string{"A": "1"},
		Rlimits:     []isolator.Rlimit{{Name: "nofile", Soft: 1024, Hard: 4096}},
		CgroupProcs: []string{"/sys/fs/cgroup/x/cgroup.procs"},
		NewSession:  true,
	}, nil
}
func (r *recorder) Isolate(_ context.Context, id string, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("pid %d is not a process", pid)
	}
	r.record("isolate %s %d", id, pid)
	return nil
}
func (r *recorder) Update(_ context.Context, id string, res resources.Resources) error {
	r.mu.Lock()
	r.updated = res
	r.mu.Unlock()
	r.record("update %s", id)
	return nil
}
func (r *recorder) Cleanup(_ context.Context, id string) error {
	r.record("cleanup %s", id)
	return nil
}
func (r *recorder) Usage(_ context.Context, ids []string) ([]isolator.Usage, error) {
	var out []isolator.Usage
	for i, id := range ids {
		out = append(out, isolator.Usage{
			ContainerID: id, Found: i == 0, CPUUserSeconds: 1.5, CPUSystemSeconds: 0.25,
			MemRSSBytes: 1 << 20, Processes: 3, Timestamp: time.UnixMilli(1_700_000_000_123),
		})
	}
	return out, nil
}
func (r *recorder) Watch(ctx context.Context) (<-chan isolator.Limitation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watchCtx = ctx
	return r.limits, nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRoundTrip(t *testing.T) {
	rec := &recorder{}
	iso := contracttest.InProcess(t, rec)

	info, err := iso.PluginInfo(ctx(t))
	if err != nil || info.Kind != base.KindIsolator || info.Name != "recorder" || info.Version != "1.2.3" {
		t.Fatalf("PluginInfo = %+v, %v", info, err)
	}
	if s, err := iso.ConfigSchema(ctx(t)); err != nil || len(s.Attributes) != 1 || s.Attributes[0].Name != "root" {
		t.Fatalf("ConfigSchema = %+v, %v", s, err)
	}
	if err := iso.SetConfig(ctx(t), []byte(`{"root":"/x"}`), "v1"); err != nil {
		t.Fatal(err)
	}

	res := resources.MustParse("cpus:1;mem:256;ports:[8000-8001]")
	spec, err := iso.Prepare(ctx(t), isolator.PrepareRequest{ContainerID: "c1", Resources: res, SandboxDir: "/sb", User: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if p := read(rec, func() any { return rec.prepared }).(isolator.PrepareRequest); p.ContainerID != "c1" || p.SandboxDir != "/sb" || p.User != "nobody" || !p.Resources.Equal(res) {
		t.Errorf("plugin got PrepareRequest %+v", p)
	}
	if spec.Environment["A"] != "1" || !spec.NewSession || !slices.Equal(spec.CgroupProcs, []string{"/sys/fs/cgroup/x/cgroup.procs"}) ||
		!slices.Equal(spec.Rlimits, []isolator.Rlimit{{Name: "nofile", Soft: 1024, Hard: 4096}}) {
		t.Errorf("LaunchSpec = %+v", spec)
	}

	if err := iso.Isolate(ctx(t), "c1", 4321); err != nil {
		t.Fatal(err)
	}
	err = iso.Isolate(ctx(t), "c1", -1)
	if err == nil || !strings.Contains(err.Error(), "pid -1 is not a process") || errors.Is(err, base.ErrPluginUnavailable) {
		t.Errorf("Isolate(-1) = %v, want the plugin's error", err)
	}
	if err := iso.Update(ctx(t), "c1", resources.MustParse("cpus:2")); err != nil {
		t.Fatal(err)
	}
	if u := read(rec, func() any { return rec.updated }).(resources.Resources); !u.Equal(resources.MustParse("cpus:2")) {
		t.Errorf("plugin got update %s", u)
	}
	if err := iso.Cleanup(ctx(t), "c1"); err != nil {
		t.Fatal(err)
	}

	usages, err := iso.Usage(ctx(t), []string{"c1", "c2"})
	if err != nil {
		t.Fatal(err)
	}
	want := isolator.Usage{ContainerID: "c1", Found: true, CPUUserSeconds: 1.5, CPUSystemSeconds: 0.25, MemRSSBytes: 1 << 20, Processes: 3}
	if len(usages) != 2 || usages[1].ContainerID != "c2" || usages[1].Found {
		t.Fatalf("Usage = %+v", usages)
	}
	got := usages[0]
	if !got.Timestamp.Equal(time.UnixMilli(1_700_000_000_123)) {
		t.Errorf("Timestamp = %v", got.Timestamp)
	}
	got.Timestamp = time.Time{}
	if got != want {
		t.Errorf("Usage[0] = %+v, want %+v", got, want)
	}

	orphans, err := iso.Recover(ctx(t), "agent-1", []isolator.ContainerState{{ContainerID: "c1", Pid: 4321, Resources: res}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(orphans, []string{"orphan-1", "orphan-2"}) {
		t.Errorf("orphans = %v", orphans)
	}
	if k := read(rec, func() any { return rec.known }).([]isolator.ContainerState); len(k) != 1 || k[0].ContainerID != "c1" || k[0].Pid != 4321 || !k[0].Resources.Equal(res) {
		t.Errorf("plugin got known containers %+v", k)
	}

	wantCalls := []string{`config {"root":"/x"} v1`, "isolate c1 4321", "update c1", "cleanup c1"}
	if calls := read(rec, func() any { return rec.calls }).([]string); !slices.Equal(calls, wantCalls) {
		t.Errorf("calls = %q, want %q", calls, wantCalls)
	}
}

func TestWatchStreamsUntilPluginCloses(t *testing.T) {
	rec := &recorder{limits: make(chan isolator.Limitation)}
	iso := contracttest.InProcess(t, rec)
	ch, err := iso.Watch(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	sent := []isolator.Limitation{{ContainerID: "c1", Reason: "memory", Message: "oom"}, {ContainerID: "c2", Reason: "disk"}}
	go func() {
		for _, l := range sent {
			rec.limits <- l
		}
		close(rec.limits)
	}()
	var got []isolator.Limitation
	for l := range ch { // ends only if the client closes the channel
		got = append(got, l)
	}
	if !slices.Equal(got, sent) {
		t.Errorf("got %+v, want %+v", got, sent)
	}
}

func TestWatchEndsWhenHostCancels(t *testing.T) {
	rec := &recorder{limits: make(chan isolator.Limitation)}
	iso := contracttest.InProcess(t, rec)
	c, cancel := context.WithCancel(ctx(t))
	ch, err := iso.Watch(c)
	if err != nil {
		t.Fatal(err)
	}
	// One limitation through proves the plugin's Watch is running.
	go func() { rec.limits <- isolator.Limitation{ContainerID: "c1", Reason: "memory"} }()
	if l := <-ch; l.ContainerID != "c1" {
		t.Fatalf("got %+v", l)
	}
	cancel()
	select {
	case _, open := <-ch:
		if open {
			t.Fatal("got a limitation nobody sent")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel still open 10s after cancel")
	}
	// The plugin side must learn too, or its Watch goroutine leaks.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		wctx := rec.watchCtx
		rec.mu.Unlock()
		if wctx != nil && wctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin's Watch context still live 10s after the host canceled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The contract suite must accept a correct isolator; sessions is one.
func TestContractSuiteAcceptsSessions(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) isolator.Isolator {
		return contracttest.InProcess(t, newSessions())
	})
}

// read returns f() under rec's lock; the plugin side writes from gRPC
// handler goroutines.
func read(rec *recorder, f func() any) any {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return f()
}
