// Package command is corral's command executor, after Mesos' command
// executor: one executor process runs one task, a single command, in its own
// session, with output appended to files in the sandbox so that the task
// outlives an agent restart. The container (limits, cgroups) comes from the
// agent through executor.ContainerService and is applied by a launcher stage
// (see LauncherArg) before the command's exec.
//
// The task's parent is its shim (sdk/executor/shim), not the executor: the
// executor may die (the agent then starts another and calls Recover) and
// the task keeps running, its exit status recorded by the shim.
package command

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/executor/command/launch"
	"github.com/corral-project/corral/plugins/isolator/process/posix"
	"github.com/corral-project/corral/sdk/executor/shim"
	"github.com/hashicorp/go-hclog"
)

// Name and Version identify the plugin.
const (
	Name    = "command"
	Version = "0.1.0"
)

// DefaultGrace is Mesos' command executor default for the time between
// SIGTERM and SIGKILL.
const DefaultGrace = 3 * time.Second

// defaultPath is the task's PATH when the executor itself has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config is the plugin's config body.
type Config struct {
	// DefaultGrace is a Go duration ("3s"), used when Shutdown gets none.
	DefaultGrace string `json:"default_grace"`
}

// Executor implements executor.Executor.
type Executor struct {
	logger   hclog.Logger
	launcher string

	mu       sync.Mutex
	grace    time.Duration
	launched bool
	pid      int // 0 until a process exists
	sandbox  string
	done     chan struct{}
	result   *executor.ExitResult // set before done closes
}

var _ executor.Executor = (*Executor)(nil)

// Option configures an Executor.
type Option func(*Executor)

// WithLauncher sets the binary re-executed as the launcher stage (default:
// this process's own executable). It must call MaybeRunLauncher first thing
// in main (or TestMain).
func WithLauncher(path string) Option { return func(e *Executor) { e.launcher = path } }

// New returns an executor that has not launched anything yet.
func New(logger hclog.Logger, opts ...Option) *Executor {
	e := &Executor{logger: logger, grace: DefaultGrace, done: make(chan struct{})}
	for _, o := range opts {
		o(e)
	}
	return e
}

// PluginInfo implements base.Plugin.
func (e *Executor) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindExecutor, Name: Name, Version: Version, APIVersions: executor.APIVersions}, nil
}

// ConfigSchema implements base.Plugin.
func (e *Executor) ConfigSchema(context.Context) (*base.Schema, error) {
	return &base.Schema{Attributes: []base.Attribute{{
		Name:        "default_grace",
		Type:        "string",
		DefaultJSON: strconv.Quote(DefaultGrace.String()),
		Description: "Time between SIGTERM and SIGKILL when Shutdown is given no grace period (Go duration).",
	}}}, nil
}

// SetConfig implements base.Plugin.
func (e *Executor) SetConfig(_ context.Context, configJSON []byte, apiVersion string) error {
	if !slices.Contains(executor.APIVersions, apiVersion) {
		return fmt.Errorf("command executor: unsupported API version %q (supported: %s)",
			apiVersion, strings.Join(executor.APIVersions, ", "))
	}
	grace, err := ParseConfig(configJSON)
	if err != nil {
		return fmt.Errorf("command executor: %w", err)
	}
	e.mu.Lock()
	e.grace = grace
	e.mu.Unlock()
	return nil
}

// ParseConfig decodes a config body and returns the default grace period.
func ParseConfig(configJSON []byte) (time.Duration, error) {
	var cfg Config
	if len(configJSON) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(configJSON)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return 0, fmt.Errorf("decode config: %w", err)
		}
	}
	if cfg.DefaultGrace == "" {
		return DefaultGrace, nil
	}
	d, err := time.ParseDuration(cfg.DefaultGrace)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("default_grace = %q: want a positive duration such as \"3s\"", cfg.DefaultGrace)
	}
	return d, nil
}

// Launch prepares the container, starts the task through the launcher,
// has the container isolate it before its command runs, and returns once
// the command has been exec'd (or has failed to be). A command that cannot
// be started (not found, limit refused) is not a Launch error: Launch
// returns its pid and Wait reports the failure in ExitResult.Err, as the
// task's terminal state.
func (e *Executor) Launch(ctx context.Context, req *executor.LaunchRequest, containers executor.ContainerService) (*executor.LaunchResponse, error) {
	if req == nil || containers == nil {
		return nil, errors.New("command executor: launch: request and container service are required")
	}
	e.mu.Lock()
	if e.launched {
		e.mu.Unlock()
		return nil, errors.New("command executor: launch: a task was already launched (one task per executor)")
	}
	e.launched = true
	e.mu.Unlock()
	log := e.logger.With("task_id", req.TaskID, "container_id", req.ContainerID)

	resp, started, err := e.launch(ctx, log, req, containers)
	if err != nil {
		if !started {
			// No process will ever report: Wait must not block forever.
			e.finish(&executor.ExitResult{ExitCode: -1, Err: err.Error()})
		}
		return nil, fmt.Errorf("command executor: launch %q: %w", req.TaskID, err)
	}
	return resp, nil
}

// launch does Launch's work. started reports whether a process exists whose
// reaping will set the result.
func (e *Executor) launch(ctx context.Context, log hclog.Logger, req *executor.LaunchRequest, containers executor.ContainerService) (resp *executor.LaunchResponse, started bool, err error) {
	if req.Command.Value == "" {
		return nil, false, errors.New("empty command")
	}
	spec, err := containers.Prepare(ctx, req.ContainerID)
	if err != nil {
		return nil, false, fmt.Errorf("prepare container: %w", err)
	}
	plan := launch.Plan{CgroupProcs: spec.CgroupProcs}
	for _, rl := range spec.Rlimits {
		plan.Rlimits = append(plan.Rlimits, launch.Rlimit{Name: rl.Name, Soft: rl.Soft, Hard: rl.Hard})
	}
	if req.Command.Shell {
		plan.Path, plan.Args = "/bin/sh", []string{"sh", "-c", req.Command.Value}
	} else {
		plan.Path = req.Command.Value
		plan.Args = append([]string{req.Command.Value}, req.Command.Arguments...)
	}
	if len(spec.Wrapper) > 0 {
		// The isolator's starter builds the container around the command:
		// it is what the launcher execs, and it resolves the command's path
		// and switches to the task's user inside the container.
		args := plan.Args
		if req.Command.Shell {
			args = []string{"/bin/sh", "-c", req.Command.Value} // the container's sh
		}
		plan.Path, plan.Args = spec.Wrapper[0], append(slices.Clone(spec.Wrapper), args...)
	} else if plan.Credential, err = lookupCredential(req.Command.User); err != nil {
		return nil, false, err
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return nil, false, fmt.Errorf("encode launch plan: %w", err)
	}

	launcher := e.launcher
	if launcher == "" {
		if launcher, err = os.Executable(); err != nil {
			return nil, false, fmt.Errorf("find launcher: %w", err)
		}
	}
	stdout, err := openLog(req.StdoutPath)
	if err != nil {
		return nil, false, err
	}
	defer stdout.Close()
	stderr, err := openLog(req.StderrPath)
	if err != nil {
		return nil, false, err
	}
	defer stderr.Close()
	controlR, controlW, err := os.Pipe()
	if err != nil {
		return nil, false, fmt.Errorf("control pipe: %w", err)
	}
	defer controlW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		_ = controlR.Close()
		return nil, false, fmt.Errorf("status pipe: %w", err)
	}
	defer statusR.Close()

	// The shim (launcher binary, shim.Arg) is the task's parent; it starts
	// the launcher stage (LauncherArg) as the task and passes it our pipes.
	cmd := exec.Command(launcher, shim.Arg, launcher, LauncherArg)
	cmd.Env = taskEnvironment(req, spec)
	cmd.Dir = req.SandboxDir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{controlR, statusW} // fds 3 and 4
	// Its own session: signals to the executor's group do not reach the
	// shim or the task (the task gets a session of its own from the shim).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	startErr := cmd.Start()
	_ = controlR.Close()
	_ = statusW.Close()
	if startErr != nil {
		return nil, false, fmt.Errorf("start task shim: %w", startErr)
	}
	// Reap the shim when it exits (after the task). If this executor dies
	// first, init adopts it and the task runs on.
	go func() { _ = cmd.Wait() }()
	status := bufio.NewReader(statusR)
	pid, err := readShimStartCtx(ctx, statusR, status)
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, false, fmt.Errorf("task shim: %w", err)
	}
	log = log.With("pid", pid)
	resp = &executor.LaunchResponse{Pid: pid}
	// exec keeps the process, so the launcher's start time is the task's.
	// Read it now: a command that fails fast may be reaped before Launch ends.
	if st, err := posix.ReadStat(pid); err == nil {
		resp.StartTicks = st.StartTicks
	}

	// The reaper owns cmd from here on; it stores the result once the
	// outcome of the exec is known (startFailure), so that a launcher
	// failure is reported as such rather than as exit code 127.
	var startFailure error
	outcomeKnown := make(chan struct{})
	e.mu.Lock()
	e.pid, e.sandbox = pid, req.SandboxDir
	e.mu.Unlock()
	go e.reap(log, req.SandboxDir, outcomeKnown, &startFailure)
	defer close(outcomeKnown)

	abort := func(cause error) (*executor.LaunchResponse, bool, error) {
		_ = controlW.Close() // the launcher exits without exec
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return nil, true, cause
	}
	if _, err := controlW.Write(append(planJSON, '\n')); err != nil {
		return abort(fmt.Errorf("send launch plan: %w", err))
	}
	ready, err := readStatusCtx(ctx, statusR, status)
	var le *launch.Error
	switch {
	case errors.As(err, &le):
		log.Info("command could not be started", "error", le.Msg)
		startFailure = le
		return resp, true, nil
	case err != nil:
		return abort(fmt.Errorf("launcher: %w", err))
	case !ready:
		return abort(errors.New("launcher: no ready status"))
	}
	if err := containers.Isolate(ctx, req.ContainerID, pid); err != nil {
		return abort(fmt.Errorf("isolate pid %d: %w", pid, err))
	}
	if _, err := controlW.Write([]byte{launch.GoByte}); err != nil {
		return abort(fmt.Errorf("release launcher: %w", err))
	}
	_ = controlW.Close()
	_, err = readStatusCtx(ctx, statusR, status)
	switch {
	case errors.As(err, &le):
		log.Info("command could not be started", "error", le.Msg)
		startFailure = le
	case errors.Is(err, io.EOF):
		log.Info("task started", "command", plan.Path)
	case err != nil:
		return abort(fmt.Errorf("launcher: %w", err))
	}
	return resp, true, nil
}

// readStatusCtx is readStatus that gives up when ctx ends. Closing the read
// end is what unblocks the reader goroutine.
func readStatusCtx(ctx context.Context, f *os.File, r *bufio.Reader) (bool, error) {
	type res struct {
		ready bool
		err   error
	}
	ch := make(chan res, 1)
	go func() {
		ready, err := launch.ReadStatus(r)
		ch <- res{ready, err}
	}()
	select {
	case v := <-ch:
		return v.ready, v.err
	case <-ctx.Done():
		_ = f.Close()
		<-ch
		return false, ctx.Err()
	}
}

// readShimStartCtx reads the shim's first line (the task's pid), giving up
// when ctx ends.
func readShimStartCtx(ctx context.Context, f *os.File, r *bufio.Reader) (int, error) {
	type res struct {
		pid int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		pid, err := shim.ReadStart(r)
		ch <- res{pid, err}
	}()
	select {
	case v := <-ch:
		return v.pid, v.err
	case <-ctx.Done():
		_ = f.Close()
		<-ch
		return 0, ctx.Err()
	}
}

// reap waits, through the shim, for the task to end, then records its
// result once Launch has decided whether the command started at all.
func (e *Executor) reap(log hclog.Logger, sandbox string, outcomeKnown <-chan struct{}, startFailure *error) {
	st, waitErr := shim.Wait(context.Background(), sandbox)
	<-outcomeKnown
	res := &executor.ExitResult{}
	switch {
	case *startFailure != nil:
		res.ExitCode = launch.ExitFailed
		res.Err = (*startFailure).Error()
	case waitErr != nil:
		res.ExitCode = -1
		res.Err = fmt.Sprintf("wait: %v", waitErr)
	default:
		// The shell convention, so that ExitCode alone is never 0 for a killed task.
		res.ExitCode, res.Signal = st.ExitCode, st.Signal
	}
	log.Info("task exited", "exit_code", res.ExitCode, "signal", res.Signal, "error", res.Err)
	e.finish(res)
}

// Recover implements executor.Recoverer: this fresh executor process takes
// over a task its predecessor launched, through the task's shim, or takes
// the exit status the shim recorded if the task has ended.
func (e *Executor) Recover(ctx context.Context, req *executor.RecoverRequest) error {
	if req == nil || req.SandboxDir == "" {
		return errors.New("command executor: recover: sandbox dir is required")
	}
	e.mu.Lock()
	if e.launched {
		e.mu.Unlock()
		return errors.New("command executor: recover: this executor already has a task")
	}
	e.launched, e.pid, e.sandbox = true, req.Pid, req.SandboxDir
	e.mu.Unlock()
	log := e.logger.With("task_id", req.TaskID, "container_id", req.ContainerID, "pid", req.Pid)
	if shim.Alive(ctx, req.SandboxDir) {
		log.Info("took over running task through its shim")
		go e.reap(log, req.SandboxDir, closedChan, new(error))
		return nil
	}
	st, err := shim.ReadExit(req.SandboxDir)
	if errors.Is(err, shim.ErrGone) {
		e.mu.Lock()
		e.launched, e.pid = false, 0
		e.mu.Unlock()
		return fmt.Errorf("%w (task %s, sandbox %s)", executor.ErrNoTask, req.TaskID, req.SandboxDir)
	}
	if err != nil {
		return fmt.Errorf("command executor: recover: %w", err)
	}
	log.Info("task ended while its executor was gone; took its recorded exit status", "exit_code", st.ExitCode, "signal", st.Signal)
	e.finish(&executor.ExitResult{ExitCode: st.ExitCode, Signal: st.Signal})
	return nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (e *Executor) finish(res *executor.ExitResult) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.result != nil {
		return
	}
	e.result = res
	close(e.done)
}

// Wait blocks until the task has exited and been reaped. Every call returns
// the same result.
func (e *Executor) Wait(ctx context.Context) (*executor.ExitResult, error) {
	e.mu.Lock()
	launched := e.launched
	e.mu.Unlock()
	if !launched {
		return nil, errors.New("command executor: wait: no task launched")
	}
	select {
	case <-e.done:
		e.mu.Lock()
		defer e.mu.Unlock()
		res := *e.result
		return &res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("command executor: wait: %w", ctx.Err())
	}
}

// taskPid returns the task's pid, or an error if no task process exists.
func (e *Executor) taskPid(op string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pid == 0 {
		return 0, fmt.Errorf("command executor: %s: no task launched", op)
	}
	return e.pid, nil
}

// Signal sends sig to the task's process group. A task that has exited with
// its whole group is not an error.
func (e *Executor) Signal(_ context.Context, sig syscall.Signal) error {
	pid, err := e.taskPid("signal")
	if err != nil {
		return err
	}
	if err := signalGroup(pid, sig); err != nil {
		return fmt.Errorf("command executor: signal %d: %w", int(sig), err)
	}
	e.logger.Debug("signalled task", "pid", pid, "signal", int(sig))
	return nil
}

func signalGroup(pgid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Shutdown sends SIGTERM to the task's process group, waits up to grace (the
// configured default_grace when grace <= 0), then sends SIGKILL, and returns
// once the task has been reaped.
func (e *Executor) Shutdown(ctx context.Context, grace time.Duration) error {
	e.mu.Lock()
	pid, launched := e.pid, e.launched
	if grace <= 0 {
		grace = e.grace
	}
	e.mu.Unlock()
	if !launched {
		return nil // nothing to stop
	}
	if pid != 0 {
		if err := signalGroup(pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("command executor: shutdown: SIGTERM: %w", err)
		}
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-e.done:
	case <-timer.C:
		e.logger.Info("grace period over, killing task", "pid", pid, "grace", grace)
	case <-ctx.Done():
		return fmt.Errorf("command executor: shutdown: %w", ctx.Err())
	}
	// SIGKILL the group even if the leader is gone: children it left in
	// the group received SIGTERM too and get no more time than it did.
	if pid != 0 {
		if err := signalGroup(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("command executor: shutdown: SIGKILL: %w", err)
		}
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("command executor: shutdown: waiting for exit: %w", ctx.Err())
	}
}

// Stats sums usage over the task's session. Once the task is gone it
// reports zero usage.
func (e *Executor) Stats(context.Context) (*executor.Stats, error) {
	pid, err := e.taskPid("stats")
	if err != nil {
		return nil, err
	}
	procs, err := posix.SessionProcesses(pid)
	if err != nil {
		return nil, fmt.Errorf("command executor: stats: %w", err)
	}
	u := posix.Sum(procs)
	return &executor.Stats{
		CPUUserSeconds:   u.CPUUserSeconds,
		CPUSystemSeconds: u.CPUSystemSeconds,
		MemRSSBytes:      u.MemRSSBytes,
		Timestamp:        time.Now(),
	}, nil
}

// Version reports the plugin version and the task's pid (0 before Launch).
func (e *Executor) Version(context.Context) (*executor.VersionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &executor.VersionInfo{Version: Version, Pid: e.pid}, nil
}

// taskEnvironment is a minimal base (PATH, HOME = sandbox) overlaid with
// the container's, the agent's and then the command's own variables.
func taskEnvironment(req *executor.LaunchRequest, spec *isolator.LaunchSpec) []string {
	env := map[string]string{"PATH": defaultPath, "HOME": req.SandboxDir}
	if p := os.Getenv("PATH"); p != "" {
		env["PATH"] = p
	}
	for _, layer := range []map[string]string{spec.Environment, req.Environment, req.Command.Environment} {
		for k, v := range layer {
			env[k] = v
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// lookupCredential resolves the task's user. No user, or the executor's own
// user, needs no switch.
func lookupCredential(name string) (*launch.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("task user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("task user %q: uid %q: %w", name, u.Uid, err)
	}
	if int(uid) == os.Getuid() {
		return nil, nil
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("task user %q: gid %q: %w", name, u.Gid, err)
	}
	c := &launch.Credential{UID: uint32(uid), GID: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("task user %q: groups: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			c.Groups = append(c.Groups, uint32(n))
		}
	}
	return c, nil
}

// openLog opens a task output file for appending, creating it if needed.
func openLog(path string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open task output: %w", err)
	}
	return f, nil
}
