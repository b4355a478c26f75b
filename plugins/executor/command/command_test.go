package command

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/executor/contracttest"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/isolator/process"
	"github.com/corral-project/corral/plugins/isolator/process/posix"
	"github.com/corral-project/corral/sdk/executor/shim/shimtest"
	"github.com/hashicorp/go-hclog"
)

// TestMain lets this test binary serve as the task shim, exactly as the
// executor binary's main does where corral-shim is not installed.
func TestMain(m *testing.M) {
	MaybeRunShim()
	os.Exit(m.Run())
}

func testLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Output: os.Stderr, Level: hclog.Warn})
}

// newTestExecutor is an executor whose tasks' shim is shimBin (a
// shimtest.Run implementation), or this test binary in its shim mode if
// shimBin is empty.
func newTestExecutor(t *testing.T, shimBin string) *Executor {
	var opts []Option
	if shimBin != "" {
		opts = append(opts, WithShim(shimBin))
	}
	e := New(testLogger(), opts...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.mu.Lock()
		var ids []string
		for id := range e.tasks {
			ids = append(ids, id)
		}
		e.mu.Unlock()
		for _, id := range ids {
			_ = e.Shutdown(ctx, id, 100*time.Millisecond)
		}
	})
	return e
}

func TestContract(t *testing.T) {
	shimtest.Run(t, func(t *testing.T, bin string) {
		contracttest.Run(t, func(t *testing.T) executor.Executor { return newTestExecutor(t, bin) })
	})
}

func TestContractOverGRPC(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) executor.Executor {
		return contracttest.InProcess(t, newTestExecutor(t, ""))
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// isolatorContainers is the ContainerService the agent would serve, backed
// by the real process isolator.
type isolatorContainers struct {
	iso *process.Isolator
}

func newContainers(t *testing.T, configJSON string) *isolatorContainers {
	t.Helper()
	iso := process.New(testLogger())
	if err := iso.SetConfig(testCtx(t), []byte(configJSON), "v1"); err != nil {
		t.Fatalf("isolator SetConfig: %v", err)
	}
	return &isolatorContainers{iso: iso}
}

func (c *isolatorContainers) Prepare(ctx context.Context, id string) (*isolator.LaunchSpec, error) {
	return c.iso.Prepare(ctx, isolator.PrepareRequest{ContainerID: id})
}

func (c *isolatorContainers) Isolate(ctx context.Context, id string, pid int) error {
	return c.iso.Isolate(ctx, id, pid)
}

// fixedSpec is a ContainerService returning a given spec; isolateErr, when
// set, is what Isolate fails with.
type fixedSpec struct {
	spec       isolator.LaunchSpec
	isolateErr error
}

func (f *fixedSpec) Prepare(context.Context, string) (*isolator.LaunchSpec, error) {
	s := f.spec
	return &s, nil
}

func (f *fixedSpec) Isolate(context.Context, string, int) error { return f.isolateErr }

func request(t *testing.T, cmd executor.Command) *executor.LaunchRequest {
	sandbox := t.TempDir()
	return &executor.LaunchRequest{
		ContainerID: "c-" + strings.ReplaceAll(t.Name(), "/", "-"),
		TaskID:      "t1",
		Command:     cmd,
		SandboxDir:  sandbox,
		StdoutPath:  filepath.Join(sandbox, "stdout"),
		StderrPath:  filepath.Join(sandbox, "stderr"),
	}
}

func waitResult(t *testing.T, e executor.Executor) *executor.ExitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := e.Wait(ctx, "t1")
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return res
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		json    string
		want    time.Duration
		wantErr string
	}{
		{json: ``, want: DefaultGrace},
		{json: `{}`, want: DefaultGrace},
		{json: `{"default_grace": "250ms"}`, want: 250 * time.Millisecond},
		{json: `{"default_grace": "soon"}`, wantErr: `default_grace = "soon"`},
		{json: `{"default_grace": "-1s"}`, wantErr: `default_grace = "-1s"`},
		{json: `{"grace": "1s"}`, wantErr: `"grace"`},
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.json))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseConfig = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseConfig = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestRlimitAppliedBeforeExec runs `ulimit -n` as the task under the real
// process isolator configured with nofile 123: the shell must see it.
func TestRlimitAppliedBeforeExec(t *testing.T) { shimtest.Run(t, testRlimitAppliedBeforeExec) }

func testRlimitAppliedBeforeExec(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	cs := newContainers(t, `{"rlimits": {"nofile": "123", "core": "0:1024"}}`)
	// The task waits for the test to let it go, so that it is surely still
	// running while the test looks at it, however loaded the machine.
	release := filepath.Join(t.TempDir(), "release")
	req := request(t, executor.Command{Shell: true,
		Value: `ulimit -n; ulimit -Hn; ulimit -c; while [ ! -e ` + release + ` ]; do sleep 0.02; done`})
	resp, err := e.Launch(testCtx(t), req, cs)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	// The isolator recorded the task: its session is the container.
	usages, err := cs.iso.Usage(testCtx(t), []string{req.ContainerID})
	if err != nil || !usages[0].Found {
		t.Errorf("isolator Usage while the task runs = %+v, %v; want Found (Isolate must have happened)", usages, err)
	}
	st, err := posix.ReadStat(resp.Pid)
	if err != nil || st.StartTicks != resp.StartTicks || st.Session != resp.Pid {
		t.Errorf("task stat = %+v, %v; want start ticks %d and its own session", st, err, resp.StartTicks)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := waitResult(t, e); *res != (executor.ExitResult{}) {
		t.Errorf("Wait = %+v, want success", *res)
	}
	// ulimit -c reports 512-byte blocks: soft core 0.
	if out := readFile(t, req.StdoutPath); out != "123\n123\n0\n" {
		t.Errorf("task saw nofile/hard nofile/core = %q, want %q", out, "123\n123\n0\n")
	}
}

func TestCgroupProcsGetTheTaskPidBeforeExec(t *testing.T) {
	shimtest.Run(t, testCgroupProcsGetTheTaskPidBeforeExec)
}

func testCgroupProcsGetTheTaskPidBeforeExec(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	dir := t.TempDir()
	// Plain files stand in for cgroup.procs: the launcher writes to files
	// that must exist, and refuses ones that do not.
	procs := []string{filepath.Join(dir, "a.procs"), filepath.Join(dir, "b.procs")}
	for _, p := range procs {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	req := request(t, executor.Command{Shell: true, Value: `cat ` + procs[0]})
	resp, err := e.Launch(testCtx(t), req, &fixedSpec{spec: isolator.LaunchSpec{CgroupProcs: procs}})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	waitResult(t, e)
	want := strconv.Itoa(resp.Pid)
	for _, p := range procs {
		if got := readFile(t, p); got != want {
			t.Errorf("%s = %q, want the task pid %s", filepath.Base(p), got, want)
		}
	}
	// The task itself read the file after exec, so the write came first.
	if out := readFile(t, req.StdoutPath); out != want {
		t.Errorf("task read %q from its cgroup.procs, want %q", out, want)
	}

	e2 := newTestExecutor(t, bin)
	req2 := request(t, executor.Command{Shell: true, Value: `exit 0`})
	if _, err := e2.Launch(testCtx(t), req2, &fixedSpec{spec: isolator.LaunchSpec{CgroupProcs: []string{filepath.Join(dir, "missing")}}}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if res := waitResult(t, e2); !strings.Contains(res.Err, "join cgroup") {
		t.Errorf("Wait with a missing cgroup.procs = %+v, want Err about joining the cgroup", *res)
	}
}

func TestEnvironmentLayers(t *testing.T) { shimtest.Run(t, testEnvironmentLayers) }

func testEnvironmentLayers(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	req := request(t, executor.Command{
		Shell:       true,
		Value:       `echo "$HOME|$A|$B|$C|$PWD"`,
		Environment: map[string]string{"C": "command"},
	})
	req.Environment = map[string]string{"B": "agent", "C": "agent"}
	spec := isolator.LaunchSpec{Environment: map[string]string{"A": "container", "B": "container"}}
	if _, err := e.Launch(testCtx(t), req, &fixedSpec{spec: spec}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	waitResult(t, e)
	want := req.SandboxDir + "|container|agent|command|" + req.SandboxDir + "\n"
	if out := readFile(t, req.StdoutPath); out != want {
		t.Errorf("task environment = %q, want %q", out, want)
	}
}

func TestArgumentsAreNotShellParsed(t *testing.T) { shimtest.Run(t, testArgumentsAreNotShellParsed) }

func testArgumentsAreNotShellParsed(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	req := request(t, executor.Command{Value: "printf", Arguments: []string{"%s|%s", "a b", "$HOME"}})
	if _, err := e.Launch(testCtx(t), req, &fixedSpec{}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if res := waitResult(t, e); *res != (executor.ExitResult{}) {
		t.Errorf("Wait = %+v", *res)
	}
	if out := readFile(t, req.StdoutPath); out != "a b|$HOME" {
		t.Errorf("stdout = %q, want %q", out, "a b|$HOME")
	}
}

func TestOutputIsAppended(t *testing.T) { shimtest.Run(t, testOutputIsAppended) }

func testOutputIsAppended(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	req := request(t, executor.Command{Shell: true, Value: `echo new`})
	if err := os.WriteFile(req.StdoutPath, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Launch(testCtx(t), req, &fixedSpec{}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	waitResult(t, e)
	if out := readFile(t, req.StdoutPath); out != "old\nnew\n" {
		t.Errorf("stdout = %q, want the old content kept", out)
	}
}

func TestMissingCommandIsReportedByWait(t *testing.T) {
	shimtest.Run(t, testMissingCommandIsReportedByWait)
}

func testMissingCommandIsReportedByWait(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	cs := &countingContainers{}
	req := request(t, executor.Command{Value: "corral-no-such-command"})
	if _, err := e.Launch(testCtx(t), req, cs); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	res := waitResult(t, e)
	if !strings.Contains(res.Err, "corral-no-such-command") || !strings.Contains(res.Err, "not found") {
		t.Errorf("Wait = %+v, want Err saying the executable was not found", *res)
	}
	if cs.isolated != 0 {
		t.Errorf("Isolate called %d times for a command that never started", cs.isolated)
	}
}

type countingContainers struct {
	fixedSpec
	isolated int
}

func (c *countingContainers) Isolate(ctx context.Context, id string, pid int) error {
	c.isolated++
	return c.fixedSpec.Isolate(ctx, id, pid)
}

func TestIsolateFailureStopsTheCommand(t *testing.T) {
	shimtest.Run(t, testIsolateFailureStopsTheCommand)
}

func testIsolateFailureStopsTheCommand(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	req := request(t, executor.Command{Shell: true, Value: `touch ran`})
	_, err := e.Launch(testCtx(t), req, &fixedSpec{isolateErr: errors.New("no room")})
	if err == nil || !strings.Contains(err.Error(), "no room") {
		t.Fatalf("Launch with a failing Isolate = %v, want its error", err)
	}
	waitResult(t, e) // the launcher was reaped
	if _, err := os.Stat(filepath.Join(req.SandboxDir, "ran")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran although Isolate failed (stat: %v)", err)
	}
}

func TestSkipIsolateStartsWithoutHold(t *testing.T) {
	shimtest.Run(t, testSkipIsolateStartsWithoutHold)
}

// An isolator whose spec says joining its cgroups before the exec is all
// the isolation needed gets no Isolate call, and the command runs without
// waiting for one.
func testSkipIsolateStartsWithoutHold(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	cs := &countingContainers{fixedSpec: fixedSpec{
		spec:       isolator.LaunchSpec{NewSession: true, SkipIsolate: true},
		isolateErr: errors.New("Isolate must not be called when the spec skips it"),
	}}
	req := request(t, executor.Command{Shell: true, Value: `touch ran`})
	if _, err := e.Launch(testCtx(t), req, cs); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if res := waitResult(t, e); res.ExitCode != 0 || res.Err != "" {
		t.Errorf("Wait = %+v, want exit 0", *res)
	}
	if _, err := os.Stat(filepath.Join(req.SandboxDir, "ran")); err != nil {
		t.Errorf("the command did not run: %v", err)
	}
	if cs.isolated != 0 {
		t.Errorf("Isolate called %d times, want none", cs.isolated)
	}
}

func TestLaunchTwiceFails(t *testing.T) {
	e := newTestExecutor(t, "")
	if _, err := e.Launch(testCtx(t), request(t, executor.Command{Shell: true, Value: `exit 0`}), &fixedSpec{}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	_, err := e.Launch(testCtx(t), request(t, executor.Command{Shell: true, Value: `exit 0`}), &fixedSpec{})
	if err == nil || !strings.Contains(err.Error(), "already launched") {
		t.Errorf("second Launch = %v, want an error", err)
	}
}

func TestBeforeLaunch(t *testing.T) {
	e := newTestExecutor(t, "")
	ctx := testCtx(t)
	if _, err := e.Wait(ctx, "t1"); err == nil {
		t.Error("Wait before Launch succeeded")
	}
	if err := e.Signal(ctx, "t1", syscall.SIGTERM); err == nil {
		t.Error("Signal before Launch succeeded")
	}
	if _, err := e.Stats(ctx, "t1"); err == nil {
		t.Error("Stats before Launch succeeded")
	}
	if v, err := e.Version(ctx); err != nil || v.Version != Version || v.Pid != os.Getpid() || v.Tasks != 0 {
		t.Errorf("Version before Launch = %+v, %v", v, err)
	}
}

func TestUnknownUser(t *testing.T) {
	e := newTestExecutor(t, "")
	req := request(t, executor.Command{Shell: true, Value: `exit 0`, User: "corral-no-such-user"})
	_, err := e.Launch(testCtx(t), req, &fixedSpec{})
	if err == nil || !strings.Contains(err.Error(), `"corral-no-such-user"`) {
		t.Fatalf("Launch as an unknown user = %v, want an error naming the user", err)
	}
	if res := waitResult(t, e); res.Err == "" {
		t.Errorf("Wait after a failed Launch = %+v, want Err", *res)
	}
}

// asNobody is the setup of the user-switch tests: the user nobody (the
// test skips without root or without that user), an executor, and a
// root-only file as cgroup.procs, which the shim can write only if it
// joins the task's cgroups before dropping privileges, as it must.
func asNobody(t *testing.T, shimBin string) (nobody *user.User, e *Executor, procs string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("switching users needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	procs = filepath.Join(t.TempDir(), "cgroup.procs")
	if err := os.WriteFile(procs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return nobody, newTestExecutor(t, shimBin), procs
}

func TestRunsAsUser(t *testing.T) { shimtest.Run(t, testRunsAsUser) }

func testRunsAsUser(t *testing.T, bin string) {
	nobody, e, procs := asNobody(t, bin)
	spec := isolator.LaunchSpec{
		CgroupProcs: []string{procs},
		Rlimits:     []isolator.Rlimit{{Name: "nofile", Soft: 64, Hard: 99}},
	}
	req := request(t, executor.Command{Shell: true, Value: `id -u; id -g; ulimit -n; ulimit -Hn`, User: "nobody"})
	if err := os.Chmod(req.SandboxDir, 0o777); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Launch(testCtx(t), req, &fixedSpec{spec: spec})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if res := waitResult(t, e); *res != (executor.ExitResult{}) {
		t.Fatalf("Wait = %+v (stderr %q)", *res, readFile(t, req.StderrPath))
	}
	want := nobody.Uid + "\n" + nobody.Gid + "\n64\n99\n"
	if out := readFile(t, req.StdoutPath); out != want {
		t.Errorf("task printed %q, want uid, gid, soft and hard nofile %q", out, want)
	}
	if got := readFile(t, procs); got != strconv.Itoa(resp.Pid) {
		t.Errorf("root-only cgroup.procs = %q, want the task pid %d", got, resp.Pid)
	}
}

func TestStatsSumTheSession(t *testing.T) { shimtest.Run(t, testStatsSumTheSession) }

func testStatsSumTheSession(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	req := request(t, executor.Command{Shell: true, Value: `sleep 60 & sleep 60 & wait`})
	resp, err := e.Launch(testCtx(t), req, &fixedSpec{})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	// Wait until both children have exec'd sleep and show resident memory.
	// A child between fork and exec can read an RSS of 0 (its copied page
	// tables hold few pages, and since Linux 6.2 /proc reads RSS from
	// per-CPU counters without folding them); on a loaded machine that
	// window is long. A sleeping sleep's RSS does not shrink.
	var leaderRSS uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs, err := posix.SessionProcesses(resp.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(procs) == 3 && sleepersResident(procs, resp.Pid) == 2 {
			st, err := posix.ReadStat(resp.Pid)
			if err != nil {
				t.Fatal(err)
			}
			leaderRSS = st.RSSBytes()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session has %d processes (%d resident sleeps), want the shell and 2 resident sleeps", len(procs), sleepersResident(procs, resp.Pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, err := e.Stats(testCtx(t), "t1")
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.MemRSSBytes <= leaderRSS || st.Timestamp.IsZero() {
		t.Errorf("Stats = %+v, want RSS above the leader's own %d (children included)", st, leaderRSS)
	}
	if err := e.Shutdown(testCtx(t), "t1", time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if res := waitResult(t, e); res.Signal != int(syscall.SIGTERM) {
		t.Errorf("Wait after Shutdown = %+v, want SIGTERM", *res)
	}
}

// sleepersResident counts the processes other than the leader that run
// sleep and whose RSS reads above zero.
func sleepersResident(procs []*posix.Stat, leader int) int {
	n := 0
	for _, p := range procs {
		if p.Pid != leader && p.Comm == "sleep" && p.RSSBytes() > 0 {
			n++
		}
	}
	return n
}

func TestShutdownUsesDefaultGrace(t *testing.T) { shimtest.Run(t, testShutdownUsesDefaultGrace) }

func testShutdownUsesDefaultGrace(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	if err := e.SetConfig(testCtx(t), []byte(`{"default_grace": "300ms"}`), executor.APIVersions[0]); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	req := request(t, executor.Command{Shell: true, Value: `trap "" TERM; echo ready; sleep 60`})
	if _, err := e.Launch(testCtx(t), req, &fixedSpec{}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	// The shell must have run its trap before it is sent SIGTERM.
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(req.StdoutPath); string(b) != "ready\n"; b, _ = os.ReadFile(req.StdoutPath) {
		if time.Now().After(deadline) {
			t.Fatalf("task never printed ready (stdout %q)", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := e.Shutdown(testCtx(t), "t1", 0); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown returns only after the task has been reaped.
	select {
	case <-e.tasks["t1"].done:
	default:
		t.Fatal("Shutdown returned before the task was reaped")
	}
	if res := waitResult(t, e); res.Signal != int(syscall.SIGKILL) {
		t.Errorf("Wait = %+v, want SIGKILL after the grace period", *res)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("Shutdown took %v, less than the configured 300ms grace", took)
	}
}

// The launcher's pipes must not leak into the task: it sees stdin, stdout,
// stderr and nothing else (ls adds the directory it reads as fd 3).
func TestTaskInheritsNoExtraFDs(t *testing.T) { shimtest.Run(t, testTaskInheritsNoExtraFDs) }

func testTaskInheritsNoExtraFDs(t *testing.T, bin string) {
	e := newTestExecutor(t, bin)
	req := request(t, executor.Command{Value: "ls", Arguments: []string{"/proc/self/fd"}})
	if _, err := e.Launch(testCtx(t), req, &fixedSpec{}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if res := waitResult(t, e); *res != (executor.ExitResult{}) {
		t.Fatalf("Wait = %+v", *res)
	}
	if out := readFile(t, req.StdoutPath); out != "0\n1\n2\n3\n" {
		t.Errorf("task's open fds = %q, want 0-2 (and ls's own 3)", out)
	}
}

// TestRunsAsUserWithoutLimits: with no rlimits the shim switches user in
// the task's fork itself (no user stage), still joining cgroups first.
func TestRunsAsUserWithoutLimits(t *testing.T) { shimtest.Run(t, testRunsAsUserWithoutLimits) }

func testRunsAsUserWithoutLimits(t *testing.T, bin string) {
	nobody, e, procs := asNobody(t, bin)
	req := request(t, executor.Command{Value: "id", Arguments: []string{"-u"}, User: "nobody"})
	resp, err := e.Launch(testCtx(t), req, &fixedSpec{spec: isolator.LaunchSpec{CgroupProcs: []string{procs}}})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if res := waitResult(t, e); *res != (executor.ExitResult{}) {
		t.Fatalf("Wait = %+v (stderr %q)", *res, readFile(t, req.StderrPath))
	}
	if out := readFile(t, req.StdoutPath); out != nobody.Uid+"\n" {
		t.Errorf("task printed uid %q, want %q", out, nobody.Uid+"\n")
	}
	if got := readFile(t, procs); got != strconv.Itoa(resp.Pid) {
		t.Errorf("root-only cgroup.procs = %q, want the task pid %d", got, resp.Pid)
	}
}
