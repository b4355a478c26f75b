// Package command is corral's command executor, after Mesos' command
// executor, but one process per agent: it runs many tasks, each a single
// command in its own session, told apart by task ID, with output appended
// to files in the sandbox so that the task outlives an agent restart. The
// container (limits, cgroups) comes from the agent through
// executor.ContainerService and is applied by the task's shim to the task,
// stopped at its exec, before the command's first instruction.
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
	logger hclog.Logger
	shim   string

	mu    sync.Mutex
	grace time.Duration
	tasks map[string]*task // by task ID
}

// task is one task the executor holds, from Launch or Recover until Forget.
type task struct {
	id     string
	done   chan struct{}
	mu     sync.Mutex
	pid    int                  // 0 until a process exists
	result *executor.ExitResult // set before done closes
}

func (t *task) getPid() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pid
}

func (t *task) finish(res *executor.ExitResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.result != nil {
		return
	}
	t.result = res
	close(t.done)
}

var _ executor.Executor = (*Executor)(nil)

// Option configures an Executor.
type Option func(*Executor)

// WithShim sets the binary started as each task's shim (default: this
// process's own executable, which must then call MaybeRunShim first thing
// in main, or TestMain).
func WithShim(path string) Option { return func(e *Executor) { e.shim = path } }

// New returns an executor that has not launched anything yet.
func New(logger hclog.Logger, opts ...Option) *Executor {
	e := &Executor{logger: logger, grace: DefaultGrace, tasks: map[string]*task{}}
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

// Launch prepares the container, starts the task through its shim, has
// the container isolate it before its command runs, and returns once the
// command runs (or has failed to start). A command that cannot be started
// (not found, limit or cgroup refused) is not a Launch error: Launch
// returns no pid and Wait reports the failure in ExitResult.Err (exit code
// 127), as the task's terminal state.
func (e *Executor) Launch(ctx context.Context, req *executor.LaunchRequest, containers executor.ContainerService) (*executor.LaunchResponse, error) {
	if req == nil || containers == nil {
		return nil, errors.New("command executor: launch: request and container service are required")
	}
	if req.TaskID == "" {
		return nil, errors.New("command executor: launch: task ID is required")
	}
	t, err := e.add(req.TaskID)
	if err != nil {
		return nil, fmt.Errorf("command executor: launch: %w", err)
	}
	log := e.logger.With("task_id", req.TaskID, "container_id", req.ContainerID)

	resp, started, err := e.launch(ctx, log, t, req, containers)
	if err != nil {
		if !started {
			// No process will ever report: Wait must not block forever.
			t.finish(&executor.ExitResult{ExitCode: -1, Err: err.Error()})
		}
		return nil, fmt.Errorf("command executor: launch %q: %w", req.TaskID, err)
	}
	return resp, nil
}

// add registers a new task; a task ID the executor holds is refused.
func (e *Executor) add(id string) (*task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.tasks[id]; ok {
		return nil, fmt.Errorf("task %q was already launched", id)
	}
	t := &task{id: id, done: make(chan struct{})}
	e.tasks[id] = t
	return t, nil
}

// get is the task id, or an error naming it.
func (e *Executor) get(op, id string) (*task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.tasks[id]
	if !ok {
		return nil, fmt.Errorf("command executor: %s: no task %q", op, id)
	}
	return t, nil
}

// launch does Launch's work. started reports whether a process exists whose
// reaping will set the result.
//
// One process is started per task: the shim (sdk/executor/shim), which
// forks and execs the command itself. The task stops at its exec, before
// its first instruction, with its rlimits set and its pid in the
// container's cgroup.procs files (the C corral-shim does both in the fork,
// the Go shim mode on the stopped task); the executor has the container
// isolate it, and only then does the command run. The user switch is part
// of the fork (setgroups, setgid, setuid before exec).
func (e *Executor) launch(ctx context.Context, log hclog.Logger, t *task, req *executor.LaunchRequest, containers executor.ContainerService) (resp *executor.LaunchResponse, started bool, err error) {
	if req.Command.Value == "" {
		return nil, false, errors.New("empty command")
	}
	spec, err := containers.Prepare(ctx, req.ContainerID)
	if err != nil {
		return nil, false, fmt.Errorf("prepare container: %w", err)
	}
	// Both shims write the cgroups and set the rlimits before the command's
	// exec, so when the isolator says that is all the container needs, the
	// command starts at once: no hold at its exec, no Isolate round trip.
	isolate := !spec.SkipIsolate
	opts := shim.Options{CgroupProcs: spec.CgroupProcs, Hold: isolate}
	for _, rl := range spec.Rlimits {
		res, err := posix.RlimitResource(rl.Name)
		if err != nil {
			return nil, false, fmt.Errorf("container rlimits: %w", err)
		}
		opts.Rlimits = append(opts.Rlimits, shim.Rlimit{Resource: res, Soft: rl.Soft, Hard: rl.Hard})
	}
	var argv []string
	if req.Command.Shell {
		argv = []string{"/bin/sh", "-c", req.Command.Value}
	} else {
		argv = append([]string{req.Command.Value}, req.Command.Arguments...)
	}
	if len(spec.Wrapper) > 0 {
		// The isolator's starter builds the container around the command:
		// it is what the shim execs, and it resolves the command's path
		// and switches to the task's user inside the container.
		argv = append(slices.Clone(spec.Wrapper), argv...)
	} else if opts.User, err = lookupCredential(req.Command.User); err != nil {
		return nil, false, err
	}

	shimBin := e.shim
	if shimBin == "" {
		if shimBin, err = os.Executable(); err != nil {
			return nil, false, fmt.Errorf("find task shim: %w", err)
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

	// The shim is the task's parent: corral-shim beside the executor (C,
	// under 1 MiB RSS, most of it shared), else the executor binary itself
	// in its shim mode.
	cmd := &exec.Cmd{Path: shimBin, Args: append([]string{shimBin}, opts.Args(argv)...)}
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
	pid, err := readShimStartCtx(ctx, statusR, bufio.NewReader(statusR))
	var se *shim.StartError
	switch {
	case errors.As(err, &se):
		// The command never ran; the shim recorded exit code 127.
		log.Info("command could not be started", "error", se.Msg)
		t.finish(&executor.ExitResult{ExitCode: ExitFailed, Err: se.Msg})
		return &executor.LaunchResponse{}, true, nil
	case err != nil:
		_ = cmd.Process.Kill()
		return nil, false, fmt.Errorf("task shim: %w", err)
	}
	log = log.With("pid", pid)
	resp = &executor.LaunchResponse{Pid: pid}
	// exec keeps the process, so the fork's start time is the task's.
	if st, err := posix.ReadStat(pid); err == nil {
		resp.StartTicks = st.StartTicks
	}
	t.mu.Lock()
	t.pid = pid
	t.mu.Unlock()
	go e.reap(log, t, req.SandboxDir)

	if isolate {
		if err := containers.Isolate(ctx, req.ContainerID, pid); err != nil {
			_ = controlW.Close() // the shim kills the held task
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return nil, true, fmt.Errorf("isolate pid %d: %w", pid, err)
		}
		if _, err := controlW.Write([]byte{shim.GoByte}); err != nil {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return nil, true, fmt.Errorf("release task: %w", err)
		}
	}
	log.Info("task started", "command", argv[0])
	return resp, true, nil
}

// ExitFailed is the exit code of a task whose command could not be
// started, as in shells.
const ExitFailed = 127

// readShimStartCtx reads the shim's first line (the task's pid), giving up
// when ctx ends. Closing the read end is what unblocks the reader.
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
// result.
func (e *Executor) reap(log hclog.Logger, t *task, sandbox string) {
	st, waitErr := shim.Wait(context.Background(), sandbox)
	res := &executor.ExitResult{}
	if waitErr != nil {
		res.ExitCode = -1
		res.Err = fmt.Sprintf("wait: %v", waitErr)
	} else {
		// The shell convention, so that ExitCode alone is never 0 for a killed task.
		res.ExitCode, res.Signal = st.ExitCode, st.Signal
	}
	log.Info("task exited", "exit_code", res.ExitCode, "signal", res.Signal, "error", res.Err)
	t.finish(res)
}

// Recover implements executor.Recoverer: this executor process takes over
// a task a predecessor launched, through the task's shim, or takes the exit
// status the shim recorded if the task has ended. A task this process
// already holds is only reported (an agent that restarted asks for each).
func (e *Executor) Recover(ctx context.Context, req *executor.RecoverRequest) (*executor.RecoverResponse, error) {
	if req == nil || req.SandboxDir == "" || req.TaskID == "" {
		return nil, errors.New("command executor: recover: task ID and sandbox dir are required")
	}
	e.mu.Lock()
	if t, ok := e.tasks[req.TaskID]; ok {
		e.mu.Unlock()
		return e.recovered(t), nil
	}
	t := &task{id: req.TaskID, done: make(chan struct{}), pid: req.Pid}
	e.tasks[req.TaskID] = t
	e.mu.Unlock()
	log := e.logger.With("task_id", req.TaskID, "container_id", req.ContainerID)
	if shim.Alive(ctx, req.SandboxDir) {
		if t.pid == 0 {
			// The agent stopped before it heard the pid; the shim knows it.
			if pid, err := shimTaskPid(req.SandboxDir); err == nil {
				t.mu.Lock()
				t.pid = pid
				t.mu.Unlock()
			}
		}
		log.Info("took over running task through its shim", "pid", t.getPid())
		go e.reap(log.With("pid", t.getPid()), t, req.SandboxDir)
		return e.recovered(t), nil
	}
	st, err := shim.ReadExit(req.SandboxDir)
	if err != nil {
		e.mu.Lock()
		delete(e.tasks, req.TaskID)
		e.mu.Unlock()
		if errors.Is(err, shim.ErrGone) {
			return nil, fmt.Errorf("%w (task %s, sandbox %s)", executor.ErrNoTask, req.TaskID, req.SandboxDir)
		}
		return nil, fmt.Errorf("command executor: recover %q: %w", req.TaskID, err)
	}
	log.Info("task ended while its executor was gone; took its recorded exit status", "exit_code", st.ExitCode, "signal", st.Signal)
	t.finish(&executor.ExitResult{ExitCode: st.ExitCode, Signal: st.Signal})
	return e.recovered(t), nil
}

func (e *Executor) recovered(t *task) *executor.RecoverResponse {
	resp := &executor.RecoverResponse{Pid: t.getPid()}
	if resp.Pid != 0 {
		if st, err := posix.ReadStat(resp.Pid); err == nil {
			resp.StartTicks = st.StartTicks
		}
	}
	return resp
}

// Forget drops an ended task. A running task stays: its reaper still
// needs it, and the agent may ask again.
func (e *Executor) Forget(_ context.Context, taskID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tasks[taskID]; ok {
		select {
		case <-t.done:
			delete(e.tasks, taskID)
		default:
		}
	}
	return nil
}

// Wait blocks until the task has exited and been reaped. Every call returns
// the same result.
func (e *Executor) Wait(ctx context.Context, taskID string) (*executor.ExitResult, error) {
	t, err := e.get("wait", taskID)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.done:
		t.mu.Lock()
		defer t.mu.Unlock()
		res := *t.result
		return &res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("command executor: wait %q: %w", taskID, ctx.Err())
	}
}

// taskPid returns the task's pid, or an error if no task process exists.
func (e *Executor) taskPid(op, taskID string) (int, error) {
	t, err := e.get(op, taskID)
	if err != nil {
		return 0, err
	}
	pid := t.getPid()
	if pid == 0 {
		return 0, fmt.Errorf("command executor: %s: task %q has no process", op, taskID)
	}
	return pid, nil
}

// Signal sends sig to the task's process group. A task that has exited with
// its whole group is not an error.
func (e *Executor) Signal(_ context.Context, taskID string, sig syscall.Signal) error {
	pid, err := e.taskPid("signal", taskID)
	if err != nil {
		return err
	}
	if err := signalGroup(pid, sig); err != nil {
		return fmt.Errorf("command executor: signal %d to %q: %w", int(sig), taskID, err)
	}
	e.logger.Debug("signalled task", "task_id", taskID, "pid", pid, "signal", int(sig))
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
// once the task has been reaped. An unknown task has nothing to stop.
func (e *Executor) Shutdown(ctx context.Context, taskID string, grace time.Duration) error {
	e.mu.Lock()
	t := e.tasks[taskID]
	if grace <= 0 {
		grace = e.grace
	}
	e.mu.Unlock()
	if t == nil {
		return nil // nothing to stop
	}
	pid := t.getPid()
	if pid != 0 {
		if err := signalGroup(pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("command executor: shutdown %q: SIGTERM: %w", taskID, err)
		}
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
		e.logger.Info("grace period over, killing task", "task_id", taskID, "pid", pid, "grace", grace)
	case <-ctx.Done():
		return fmt.Errorf("command executor: shutdown %q: %w", taskID, ctx.Err())
	}
	// SIGKILL the group even if the leader is gone: children it left in
	// the group received SIGTERM too and get no more time than it did.
	if pid != 0 {
		if err := signalGroup(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("command executor: shutdown %q: SIGKILL: %w", taskID, err)
		}
	}
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("command executor: shutdown %q: waiting for exit: %w", taskID, ctx.Err())
	}
}

// Stats sums usage over the task's session. Once the task is gone it
// reports zero usage.
func (e *Executor) Stats(_ context.Context, taskID string) (*executor.Stats, error) {
	pid, err := e.taskPid("stats", taskID)
	if err != nil {
		return nil, err
	}
	procs, err := posix.SessionProcesses(pid)
	if err != nil {
		return nil, fmt.Errorf("command executor: stats %q: %w", taskID, err)
	}
	u := posix.Sum(procs)
	return &executor.Stats{
		CPUUserSeconds:   u.CPUUserSeconds,
		CPUSystemSeconds: u.CPUSystemSeconds,
		MemRSSBytes:      u.MemRSSBytes,
		Timestamp:        time.Now(),
	}, nil
}

// Version reports the plugin version, this process's pid and how many of
// its tasks are still running.
func (e *Executor) Version(context.Context) (*executor.VersionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, t := range e.tasks {
		select {
		case <-t.done:
		default:
			n++
		}
	}
	return &executor.VersionInfo{Version: Version, Pid: os.Getpid(), Tasks: n}, nil
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
func lookupCredential(name string) (*shim.Credential, error) {
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
	c := &shim.Credential{UID: uint32(uid), GID: uint32(gid)}
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
