package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/sdk/procfs"
	"github.com/hashicorp/hcl/v2"
)

func writeExec(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	writeExec(t, filepath.Join(dir, "drf"))
	writeExec(t, filepath.Join(dir, "corral-isolator-process"))
	if err := os.WriteFile(filepath.Join(dir, "noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	custom := filepath.Join(t.TempDir(), "my-drf")
	writeExec(t, custom)
	cat := NewCatalog(dir, []conf.Plugin{
		{Name: "custom", Path: custom, Args: []string{"-x"}},
		{Name: "gone", Path: "/nonexistent/gone"},
	})
	tests := []struct {
		kind, name string
		wantPath   string
		wantErr    []string
	}{
		{kind: "allocator", name: "drf", wantPath: filepath.Join(dir, "drf")},
		{kind: "isolator", name: "process", wantPath: filepath.Join(dir, "corral-isolator-process")},
		{kind: "allocator", name: "custom", wantPath: custom},
		{kind: "allocator", name: "priority", wantErr: []string{
			`allocator plugin "priority" not found`,
			filepath.Join(dir, "priority") + " (does not exist)",
			filepath.Join(dir, "corral-allocator-priority") + " (does not exist)",
			"CORRAL_ALLOCATOR_PLUGIN", "protocol version 1",
		}},
		{kind: "isolator", name: "noexec", wantErr: []string{filepath.Join(dir, "noexec") + " (not executable)", "CORRAL_ISOLATOR_PLUGIN"}},
		{kind: "executor", name: "gone", wantErr: []string{"/nonexistent/gone (does not exist)", `fix path in the plugin "gone" block`}},
		{kind: "scheduler", name: "drf", wantErr: []string{`unknown plugin kind "scheduler"`}},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.name, func(t *testing.T) {
			spec, err := cat.Resolve(tt.kind, tt.name)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("resolved to %+v, want error", spec)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if spec.Path != tt.wantPath || spec.Kind != tt.kind || spec.Name != tt.name {
				t.Fatalf("got %+v, want path %s", spec, tt.wantPath)
			}
		})
	}
	spec, _ := cat.Resolve("allocator", "custom")
	if len(spec.Args) != 1 || spec.Args[0] != "-x" {
		t.Errorf("args = %v, want [-x]", spec.Args)
	}
}

func allocSpec(args ...string) Spec {
	return Spec{Kind: base.KindAllocator, Name: "test", Path: testPlugin, Args: append([]string{"-kind=allocator"}, args...)}
}

func startAlloc(t *testing.T, spec Spec, opts Options) *Instance {
	t.Helper()
	inst, err := Start(context.Background(), spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Kill)
	return inst
}

func allocate(t *testing.T, inst *Instance, base, target uint64) (*allocator.AllocateResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return inst.Raw().(allocator.Allocator).Allocate(ctx, &allocator.AllocateRequest{BaseVersion: base, TargetVersion: target})
}

func TestStartAllocator(t *testing.T) {
	logger, sink := testLogger(t)
	inst := startAlloc(t, allocSpec(), Options{Logger: logger})

	if info := inst.Info(); info.Kind != base.KindAllocator || info.Name != "testplugin" || info.Version != "0.0.1" {
		t.Errorf("Info = %+v", info)
	}
	if inst.APIVersion() != "v2" {
		t.Errorf("APIVersion = %q", inst.APIVersion())
	}
	if !procfs.Alive(inst.Pid(), 0) || inst.Exited() {
		t.Fatalf("pid %d not alive after start", inst.Pid())
	}
	// The config block was absent: the schema's defaults were applied.
	resp, err := allocate(t, inst, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Metrics["config.max_offers"] != 10 || resp.Metrics["config.min_offer=cpus:0.01"] != 1 || resp.Metrics["config.tags.len"] != 1 {
		t.Errorf("metrics = %v, want the schema defaults", resp.Metrics)
	}
	// The plugin's stderr (JSON hclog) arrives on the host logger.
	waitFor(t, "plugin log line on host.plugin.test", 5*time.Second, func() bool {
		return sink.contains("host.plugin.test: testplugin started")
	})

	pid := inst.Pid()
	inst.Kill()
	if !inst.Exited() {
		t.Error("Exited() = false after Kill")
	}
	if procfs.Alive(pid, 0) {
		t.Errorf("pid %d alive after Kill", pid)
	}
}

func TestStartErrors(t *testing.T) {
	notPlugin := filepath.Join(t.TempDir(), "not-a-plugin")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"isolator as allocator", Spec{Kind: "allocator", Name: "iso", Path: testPlugin, Args: []string{"-kind=isolator"}}, []string{
			`allocator plugin "iso" (` + testPlugin + `)`,
			"not a corral allocator plugin or speaks another protocol version",
			"handshake cookie CORRAL_ALLOCATOR_PLUGIN, protocol version 1",
			"This binary is a plugin", // the plugin's own stderr
		}},
		{"other protocol version", allocSpec("-protocol-version=2"), []string{
			"not a corral allocator plugin or speaks another protocol version",
			"protocol version 1",
			"Plugin version: 2",
		}},
		{"not a plugin", Spec{Kind: "allocator", Name: "sh", Path: notPlugin}, []string{
			"not a corral allocator plugin", "hello",
		}},
		{"claims another kind", allocSpec("-info-kind=isolator"), []string{
			`says it is a "isolator" plugin (name "testplugin") but is configured as kind "allocator"`,
		}},
		{"no common API version", allocSpec("-api-version=v9"), []string{
			"no common API version: host supports [v2], plugin supports [v9]",
		}},
		{"missing binary", Spec{Kind: "allocator", Name: "x", Path: "/nonexistent/x"}, []string{
			"/nonexistent/x (does not exist)", "CORRAL_ALLOCATOR_PLUGIN",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := Start(context.Background(), tt.spec, Options{StartTimeout: 5 * time.Second})
			if err == nil {
				inst.Kill()
				t.Fatal("Start succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\ndoes not contain\n  %s", err, w)
				}
			}
		})
	}
}

// pluginConfig parses a config file and returns the body of plugin "test".
func pluginConfig(t *testing.T, src string) hcl.Body {
	t.Helper()
	cfg, err := conf.Parse("corral.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Plugin("test").Config
}

func TestStartConfig(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		args    []string
		metrics map[string]float64
		wantErr []string
	}{
		{name: "values", src: `plugin "test" {
  config {
    max_offers = 3
    verbose    = true
    min_offer  = "mem:32"
    weights    = [1, 2.5]
    labels     = { a = "b" }
  }
}`, metrics: map[string]float64{"config.max_offers": 3, "config.verbose": 1, "config.min_offer=mem:32": 1, "config.weights.len": 2, "config.tags.len": 1}},
		{name: "empty block keeps defaults", src: "plugin \"test\" {\n  config {}\n}\n",
			metrics: map[string]float64{"config.max_offers": 10}},
		{name: "typo", src: "plugin \"test\" {\n  config {\n    max_ofers = 3\n  }\n}\n", wantErr: []string{
			`corral.hcl:3,5-14: Unsupported argument; An argument named "max_ofers" is not expected here. Did you mean "max_offers"?`,
			`allocator plugin "test"`,
		}},
		{name: "wrong type", src: "plugin \"test\" {\n  config {\n    max_offers = \"many\"\n  }\n}\n", wantErr: []string{
			`corral.hcl:3,18-24: Incorrect attribute value type`,
		}},
		{name: "missing required", src: "plugin \"test\" {\n  config {}\n}\n", args: []string{"-require=token"}, wantErr: []string{
			`Missing required argument; The argument "token" is required`,
		}},
		{name: "rejected by plugin", src: "plugin \"test\" {\n  config {\n    max_offers = -1\n  }\n}\n", wantErr: []string{
			"SetConfig: ", "max_offers must not be negative, got -1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := allocSpec(tt.args...)
			spec.Config = pluginConfig(t, tt.src)
			inst, err := Start(context.Background(), spec, Options{})
			if tt.wantErr != nil {
				if err == nil {
					inst.Kill()
					t.Fatal("Start succeeded, want error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error\n  %v\ndoes not contain\n  %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(inst.Kill)
			resp, err := allocate(t, inst, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.metrics {
				if resp.Metrics[k] != v {
					t.Errorf("metric %s = %v, want %v (all: %v)", k, resp.Metrics[k], v, resp.Metrics)
				}
			}
		})
	}
}

func TestDecodeConfigSchemaErrors(t *testing.T) {
	tests := []struct {
		attr base.Attribute
		want string
	}{
		{base.Attribute{Name: "x", Type: "set(string)"}, `attribute "x": unknown attribute type "set(string)"`},
		{base.Attribute{Name: "x", Type: "number", DefaultJSON: `"ten"`}, `attribute "x": default "ten" is not a number`},
	}
	for _, tt := range tests {
		_, err := decodeConfig(nil, &base.Schema{Attributes: []base.Attribute{tt.attr}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.attr, err, tt.want)
		}
	}
	js, err := decodeConfig(nil, &base.Schema{Attributes: []base.Attribute{{Name: "unset", Type: "string"}}})
	if err != nil || string(js) != `{}` {
		t.Errorf("unset attribute without default: got %s, %v; want {}", js, err)
	}
}

func TestSupervisorRestartsKilledPlugin(t *testing.T) {
	var (
		mu     sync.Mutex
		starts []int
	)
	onStart := func(ctx context.Context, inst *Instance) error {
		// What the master does: rebuild the allocator's state.
		if _, err := inst.Raw().(allocator.Allocator).Init(ctx, &allocator.Snapshot{Version: 7}); err != nil {
			return err
		}
		mu.Lock()
		starts = append(starts, inst.Pid())
		mu.Unlock()
		return nil
	}
	s := NewSupervisor(allocSpec(), Options{}, onStart)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	first, err := s.Current()
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, first.Pid())
	if _, err := allocate(t, first, 7, 8); err != nil {
		t.Fatalf("Allocate after onStart's Init: %v", err)
	}

	if err := syscall.Kill(first.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var second *Instance
	waitFor(t, "a restarted plugin", 20*time.Second, func() bool {
		inst, err := s.Current()
		if err != nil && !errors.Is(err, base.ErrPluginUnavailable) {
			t.Fatalf("Current error %v does not wrap ErrPluginUnavailable", err)
		}
		second = inst
		return inst != nil && inst != first
	})
	killOnCleanup(t, second.Pid())
	if s.Restarts() != 1 {
		t.Errorf("Restarts = %d, want 1", s.Restarts())
	}
	if second.Pid() == first.Pid() || !procfs.Alive(second.Pid(), 0) {
		t.Errorf("new pid %d (old %d) not a live new process", second.Pid(), first.Pid())
	}
	mu.Lock()
	if len(starts) != 2 || starts[1] != second.Pid() {
		t.Errorf("onStart saw pids %v, want [%d %d]", starts, first.Pid(), second.Pid())
	}
	mu.Unlock()
	// The new instance was Init-ed by onStart: it holds version 7.
	if _, err := allocate(t, second, 7, 8); err != nil {
		t.Fatalf("Allocate on restarted plugin: %v", err)
	}

	s.Stop()
	if procfs.Alive(second.Pid(), 0) {
		t.Errorf("pid %d alive after Stop", second.Pid())
	}
	if _, err := s.Current(); !errors.Is(err, base.ErrPluginUnavailable) {
		t.Errorf("Current after Stop = %v, want ErrPluginUnavailable", err)
	}
}

func TestSupervisorRestartsCrashingPlugin(t *testing.T) {
	// The plugin exits on its second Allocate call, as a buggy policy might.
	s := NewSupervisor(allocSpec("-exit-after=2"), Options{}, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	inst, _ := s.Current()
	if _, err := allocate(t, inst, 0, 1); err != nil {
		t.Fatal(err)
	}
	_, err := allocate(t, inst, 1, 2)
	if !errors.Is(err, base.ErrPluginUnavailable) {
		t.Fatalf("Allocate on crashing plugin: %v, want ErrPluginUnavailable", err)
	}
	waitFor(t, "restart after crash", 20*time.Second, func() bool { return s.Restarts() == 1 })
	next, err := s.Current()
	if err != nil || next == inst {
		t.Fatalf("Current = %v, %v; want a new instance", next, err)
	}
	if _, err := allocate(t, next, 0, 1); err != nil {
		t.Fatal(err)
	}
}

func TestSupervisorStartFails(t *testing.T) {
	s := NewSupervisor(Spec{Kind: "allocator", Name: "x", Path: "/nonexistent/x"}, Options{}, nil)
	err := s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/x") {
		t.Fatalf("Start = %v, want an error naming the path", err)
	}
	if _, err := s.Current(); !errors.Is(err, base.ErrPluginUnavailable) {
		t.Errorf("Current = %v, want ErrPluginUnavailable", err)
	}
	s.Stop()

	onStartErr := errors.New("init failed")
	s = NewSupervisor(allocSpec(), Options{}, func(context.Context, *Instance) error { return onStartErr })
	if err := s.Start(context.Background()); !errors.Is(err, onStartErr) {
		t.Fatalf("Start = %v, want the onStart error", err)
	}
	s.Stop()
}

func execSpec() Spec {
	return Spec{Kind: base.KindExecutor, Name: "exec", Path: testPlugin, Args: []string{"-kind=executor"}}
}

func execOptions(t *testing.T) ExecutorOptions {
	dir := t.TempDir()
	return ExecutorOptions{LogPath: filepath.Join(dir, "executor.log"), SocketDir: filepath.Join(dir, "plugins")}
}

func version(t *testing.T, inst *Instance) *executor.VersionInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := inst.Raw().(executor.Executor).Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestExecutorDetachReattach(t *testing.T) {
	ctx := context.Background()
	opts := execOptions(t)
	inst, info, err := StartExecutor(ctx, execSpec(), opts)
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, inst.Pid())
	if v := version(t, inst); v.Pid != inst.Pid() {
		t.Fatalf("Version pid %d, instance pid %d", v.Pid, inst.Pid())
	}
	if fi, err := os.Stat(opts.SocketDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket dir: %v, %v; want mode 0700", fi, err)
	}
	if !strings.HasPrefix(info.Addr, opts.SocketDir+"/") || info.Network != "unix" || info.StartTicks == 0 {
		t.Errorf("reattach info %+v, want a unix socket under %s and a start time", info, opts.SocketDir)
	}
	// Stderr went to the log file, not to the host.
	waitFor(t, "executor log file", 5*time.Second, func() bool {
		b, _ := os.ReadFile(opts.LogPath)
		return strings.Contains(string(b), "testplugin started")
	})

	// The agent checkpoints the info as JSON.
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var saved ReattachInfo
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}

	inst.Detach()
	if !procfs.Alive(saved.Pid, saved.StartTicks) {
		t.Fatal("executor died on Detach")
	}
	again, err := ReattachExecutor(ctx, execSpec(), &saved, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Pid() != saved.Pid || again.Info().Kind != base.KindExecutor || again.APIVersion() != executor.APIVersions[0] {
		t.Errorf("reattached pid %d info %+v api %q", again.Pid(), again.Info(), again.APIVersion())
	}
	if v := version(t, again); v.Pid != saved.Pid {
		t.Errorf("reattached Version pid %d, want %d", v.Pid, saved.Pid)
	}

	again.Kill()
	waitFor(t, "executor exit after Kill", 10*time.Second, func() bool { return !procfs.Alive(saved.Pid, saved.StartTicks) })
	waitFor(t, "Exited after Kill", 5*time.Second, again.Exited)
	if _, err := os.Stat(filepath.Dir(saved.Addr)); !os.IsNotExist(err) {
		t.Errorf("socket dir %s still there after Kill: %v", filepath.Dir(saved.Addr), err)
	}

	_, err = ReattachExecutor(ctx, execSpec(), &saved, opts)
	if err == nil || !strings.Contains(err.Error(), "is not running") && !strings.Contains(err.Error(), "has exited") {
		t.Fatalf("reattach to dead executor: %v, want a not-running error", err)
	}
}

func TestReattachRejectsReusedPid(t *testing.T) {
	// Our own pid is alive but did not start at tick 1: as if the executor
	// died and the kernel gave its pid to this process.
	info := &ReattachInfo{Pid: os.Getpid(), StartTicks: 1, Network: "unix", Addr: "/nonexistent/sock", Protocol: "grpc", ProtocolVersion: 1}
	_, err := ReattachExecutor(context.Background(), execSpec(), info, execOptions(t))
	if err == nil || !strings.Contains(err.Error(), "now belongs to another process") {
		t.Fatalf("got %v, want a pid reuse error", err)
	}
	if !procfs.Alive(os.Getpid(), 0) {
		t.Fatal("unreachable")
	}
}

func TestReattachNothingListening(t *testing.T) {
	_, ticks, err := procfs.Stat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	info := &ReattachInfo{Pid: os.Getpid(), StartTicks: ticks, Network: "unix", Addr: filepath.Join(t.TempDir(), "sock"), Protocol: "grpc", ProtocolVersion: 1}
	_, err = ReattachExecutor(context.Background(), execSpec(), info, execOptions(t))
	if err == nil || !strings.Contains(err.Error(), "nothing answers at") {
		t.Fatalf("got %v, want a nothing-answers error", err)
	}
}

// An allocator dies with its host, even when the host is SIGKILLed.
func TestPluginDiesWithHost(t *testing.T) {
	var report struct{ Pid int }
	host := startHelperHost(t, base.KindAllocator, &report)
	killOnCleanup(t, report.Pid)
	if !procfs.Alive(report.Pid, 0) {
		t.Fatalf("plugin %d not running under the helper host", report.Pid)
	}
	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	waitFor(t, "plugin to die with its host", 10*time.Second, func() bool { return !procfs.Alive(report.Pid, 0) })
}

// An executor outlives its host and a new host reattaches to it.
func TestExecutorSurvivesHost(t *testing.T) {
	var info ReattachInfo
	host := startHelperHost(t, base.KindExecutor, &info)
	killOnCleanup(t, info.Pid)
	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	if !procfs.Alive(info.Pid, info.StartTicks) {
		t.Fatal("executor died with its host")
	}
	inst, err := ReattachExecutor(context.Background(), execSpec(), &info, ExecutorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := version(t, inst); v.Pid != info.Pid {
		t.Errorf("Version pid %d, want %d", v.Pid, info.Pid)
	}
	inst.Kill()
	waitFor(t, "executor exit after Kill", 10*time.Second, func() bool { return !procfs.Alive(info.Pid, info.StartTicks) })
}

// A work dir deep enough to overflow sun_path must not break executors.
func TestStartExecutorWithLongSocketDir(t *testing.T) {
	deep := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	got, err := usableSocketDir(deep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(got) })
	if len(got) > maxSocketDir {
		t.Fatalf("socket dir %q is %d bytes, over %d", got, len(got), maxSocketDir)
	}
	st, err := os.Stat(got)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir %s: %v, mode %v; want 0700", got, err, st.Mode())
	}
	if again, _ := usableSocketDir(deep); again != got {
		t.Fatalf("socket dir not stable: %s then %s", got, again)
	}
	if short := t.TempDir(); socketDirFor(short) != short {
		t.Fatalf("a short dir must be used as is")
	}
}
