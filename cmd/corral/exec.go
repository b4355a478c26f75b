package main

// corral exec runs one command as a task on the cluster, streams its output
// and exits with its exit code, like `ssh host cmd` or `docker run`.
//
// Exit codes (also in the usage text):
//
//	0-255  the task's own exit code (128+N when the agent reports death by signal N)
//	124    --timeout expired and the task was killed
//	125    the task was never placed: bad flags, master unreachable, refused,
//	       or no fitting offer before --timeout
//	126    the task could not start (TASK_FAILED or TASK_ERROR without exit code)
//	127    the task was lost (TASK_LOST); this overlaps the shell's "command not
//	       found", so a line on stderr says which one happened
//	130    interrupted (Ctrl-C or SIGTERM): the task was killed first
//	137    the task was killed by someone else (operator, cluster)
//
// Whatever happens, the framework is torn down before exit, so nothing is
// left on the master.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/agent/sandbox"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/scheduler"
)

const (
	exitTimeout     = 124
	exitNotPlaced   = 125
	exitCannotStart = 126
	exitLost        = 127
	exitInterrupted = 130
	exitKilled      = 137
)

const execUsage = `usage: corral exec [flags] -- command [args...]

Runs the command as one task on the cluster, streams its stdout and stderr
here while it runs, and exits with its exit code. A single argument runs
through /bin/sh -c; several run directly as argv.

Flags:
  --master ADDR     master address (default 127.0.0.1:5050, env CORRAL_MASTER)
  --name NAME       framework name (default corral-exec)
  --role ROLE       role to run under (default *)
  --user USER       OS user to run the task as (default: the agent's own);
                    the ACLs' run_tasks must allow it, the agent must have
                    it, and root only where the agent allows root tasks
  --env K=V         environment variable for the task (repeatable)
  --cpus N          CPUs for the task (default 0.1)
  --mem MIB         memory in MiB (default 32)
  --disk MIB        disk in MiB (default 0)
  --gpus N          whole GPUs for the task (default 0); declares the
                    GPU_RESOURCES capability, without which agents with GPUs
                    are not offered at all
  --container TYPE  isolator to run the task under, e.g. cgroups (default:
                    the agent's); agents list theirs in the isolators
                    attribute and refuse a type they lack
  --rootfs DIR      root filesystem for the task, a directory or OCI bundle
                    on the agent (absolute path); implies --container runc
  --timeout D       give up placing / kill the task after D (default 0: none)
  --grace D         SIGTERM-to-SIGKILL grace when killing (default: executor's, 3s)
  --connect-timeout D  give up if the master cannot be reached within D (default 15s)
  --health-cmd CMD  health check: CMD (sh -c, in the sandbox) exiting 0 is healthy
  --health-http PORT[/PATH]  health check: GET http://127.0.0.1:PORT/PATH answers 2xx/3xx
  --health-interval D  time between checks (default 10s; first check after 15s)
  --health-retries N   failures in a row before the task is killed (default 3)
  -i                forward stdin to the task (until EOF; through a FIFO in its
                    sandbox that the task reads as its stdin)
  -q                quiet: no progress lines, only the task's output and errors

Exit codes:
  0-255  the task's own exit code (128+N if it died of signal N)
  124    --timeout expired and the task was killed
  125    the task was never placed (bad flags, master unreachable or refusing,
         no fitting offer before --timeout)
  126    the task could not start (failed or invalid without an exit code)
  127    the task was lost (TASK_LOST); a line on stderr tells it apart from
         the shell's "command not found"
  130    interrupted: the task was killed first
  137    the task was killed by someone else
`

// execOptions are the parsed command line.
type execOptions struct {
	master, name, role string
	user               string // the task's OS user; "" for the agent's own
	env                map[string]string
	cpus, mem, disk    float64
	gpus               float64
	timeout, grace     time.Duration
	connectTimeout     time.Duration
	quiet              bool
	container          string // isolator type; "" for the agent's default
	rootfs             string // the task's root filesystem on the agent; "" for the host's
	health             *corralpb.HealthCheck
	command            []string
	stdin              bool // -i: forward stdin to the task (execstdin.go)
}

// parseExecFlags parses args; getenv supplies CORRAL_MASTER (os.Getenv in
// production, a map in tests). flag.ErrHelp means usage was asked for.
func parseExecFlags(args []string, getenv func(string) string) (*execOptions, error) {
	fs, finish := execFlagSet(getenv)
	fs.SetOutput(io.Discard) // runExec prints errors and usage itself
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return finish(fs.Args())
}

// execFlagSet declares corral exec's flags; finish checks them and takes
// the command line to run.
func execFlagSet(getenv func(string) string) (*flag.FlagSet, func(command []string) (*execOptions, error)) {
	o := &execOptions{env: map[string]string{}}
	fs := flag.NewFlagSet("corral exec", flag.ContinueOnError)
	master := getenv("CORRAL_MASTER")
	if master == "" {
		master = "127.0.0.1:5050"
	}
	fs.StringVar(&o.master, "master", master, "")
	fs.StringVar(&o.name, "name", "corral-exec", "")
	fs.StringVar(&o.role, "role", "*", "")
	fs.StringVar(&o.user, "user", "", "")
	fs.Func("env", "", func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want K=V, got %q", kv)
		}
		o.env[k] = v
		return nil
	})
	fs.Float64Var(&o.cpus, "cpus", 0.1, "")
	fs.Float64Var(&o.mem, "mem", 32, "")
	fs.Float64Var(&o.disk, "disk", 0, "")
	fs.Float64Var(&o.gpus, "gpus", 0, "")
	fs.DurationVar(&o.timeout, "timeout", 0, "")
	fs.DurationVar(&o.grace, "grace", 0, "")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 15*time.Second, "")
	fs.BoolVar(&o.quiet, "q", false, "")
	fs.StringVar(&o.container, "container", "", "")
	fs.Func("rootfs", "", func(dir string) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("want an absolute path on the agent, got %q", dir)
		}
		o.rootfs = dir
		return nil
	})
	fs.BoolVar(&o.stdin, "i", false, "")
	var healthCmd, healthHTTP string
	var healthInterval time.Duration
	var healthRetries uint
	fs.StringVar(&healthCmd, "health-cmd", "", "")
	fs.StringVar(&healthHTTP, "health-http", "", "")
	fs.DurationVar(&healthInterval, "health-interval", 0, "")
	fs.UintVar(&healthRetries, "health-retries", 0, "")
	return fs, func(command []string) (*execOptions, error) {
		return finishExec(o, command, healthCmd, healthHTTP, healthInterval, healthRetries)
	}
}

// finishExec checks the parsed flags of corral exec.
func finishExec(o *execOptions, command []string, healthCmd, healthHTTP string, healthInterval time.Duration, healthRetries uint) (*execOptions, error) {
	hc, err := healthFlags(healthCmd, healthHTTP, healthInterval, healthRetries)
	if err != nil {
		return nil, err
	}
	o.health = hc
	o.command = command
	switch {
	case len(o.command) == 0:
		return nil, errors.New("no command given")
	case len(o.command) == 1 && strings.TrimSpace(o.command[0]) == "":
		return nil, errors.New("empty command")
	case o.master == "":
		return nil, errors.New("--master is empty")
	case o.name == "" || o.role == "":
		return nil, errors.New("--name and --role must not be empty")
	case sandbox.ValidateID(o.name) != nil || len(o.name) > 200:
		// The task ID is NAME-<random>, a directory name on the agent.
		return nil, fmt.Errorf("--name %q: want at most 200 characters without / or NUL", o.name)
	case badQuantity(o) != nil:
		return nil, badQuantity(o)
	case o.cpus < 0 || o.mem < 0 || o.disk < 0 || o.gpus < 0:
		return nil, errors.New("--cpus, --mem, --disk and --gpus must not be negative")
	case o.gpus != math.Trunc(o.gpus):
		// GPUs are handed to tasks as devices; a fraction of one cannot be.
		return nil, fmt.Errorf("--gpus must be a whole number, got %g", o.gpus)
	case o.cpus == 0 && o.mem == 0:
		return nil, errors.New("a task needs some --cpus or --mem")
	case o.timeout < 0 || o.grace < 0 || o.connectTimeout <= 0:
		return nil, errors.New("--timeout and --grace must not be negative, --connect-timeout must be positive")
	}
	return o, nil
}

// healthFlags turns --health-* into a HealthCheck (nil without one).
func healthFlags(cmd, httpSpec string, interval time.Duration, retries uint) (*corralpb.HealthCheck, error) {
	if cmd == "" && httpSpec == "" {
		if interval != 0 || retries != 0 {
			return nil, errors.New("--health-interval and --health-retries need --health-cmd or --health-http")
		}
		return nil, nil
	}
	if cmd != "" && httpSpec != "" {
		return nil, errors.New("give one of --health-cmd and --health-http")
	}
	if interval < 0 {
		return nil, errors.New("--health-interval must not be negative")
	}
	hc := &corralpb.HealthCheck{IntervalSeconds: interval.Seconds(), ConsecutiveFailures: uint32(retries)}
	if cmd != "" {
		hc.Type, hc.Command = corralpb.HealthCheck_COMMAND, cmd
		return hc, nil
	}
	portStr, path, _ := strings.Cut(strings.TrimPrefix(httpSpec, ":"), "/")
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("--health-http %q: want PORT or PORT/PATH, e.g. 8080/health", httpSpec)
	}
	hc.Type, hc.Port, hc.Path = corralpb.HealthCheck_HTTP, uint32(port), "/"+path
	return hc, nil
}

// badQuantity refuses NaN, infinite and absurdly large resource flags: they
// would turn into garbage in fixed point and never fit an offer.
func badQuantity(o *execOptions) error {
	for _, q := range []struct {
		flag string
		v    float64
	}{{"cpus", o.cpus}, {"mem", o.mem}, {"disk", o.disk}, {"gpus", o.gpus}} {
		if q.v < 0 {
			continue // said below, with the other negatives
		}
		if err := resources.ValidateScalar(q.flag, q.v); err != nil {
			return fmt.Errorf("--%s %v: %v", q.flag, q.v, err)
		}
	}
	return nil
}

// want is the task's resources, as TakeScalars and TaskShape take them.
func (o *execOptions) want() map[string]float64 {
	w := map[string]float64{"cpus": o.cpus, "mem": o.mem, "disk": o.disk}
	if o.gpus > 0 {
		w["gpus"] = o.gpus
	}
	return w
}

// describe names the task's resources in progress and error lines.
func (o *execOptions) describe() string {
	s := fmt.Sprintf("cpus=%g mem=%g disk=%g", o.cpus, o.mem, o.disk)
	if o.gpus > 0 {
		s += fmt.Sprintf(" gpus=%g", o.gpus)
	}
	return s
}

// commandInfo runs one argument through the shell, as `sh -c` would, and
// several as argv, so `corral exec -- ls -l "a b"` keeps its quoting.
func commandInfo(o *execOptions) *corralpb.CommandInfo {
	ci := &corralpb.CommandInfo{Environment: o.env, User: o.user}
	if o.stdin {
		argv := o.command
		if len(argv) == 1 {
			argv = []string{"/bin/sh", "-c", argv[0]}
		}
		ci.Value, ci.Arguments = stdinWrapper(argv)
		return ci
	}
	if len(o.command) == 1 {
		ci.Shell, ci.Value = true, o.command[0]
	} else {
		ci.Value, ci.Arguments = o.command[0], o.command[1:]
	}
	return ci
}

// stopCause is why corral exec itself asked for the task to be killed.
type stopCause int

const (
	causeNone stopCause = iota
	causeTimeout
	causeInterrupt
)

// exitCodeFor maps the task's terminal status to corral exec's exit code,
// with a line for stderr when the code alone does not explain what happened.
func exitCodeFor(st *corralpb.TaskStatus, cause stopCause) (int, string) {
	state := st.GetState()
	why := ""
	if m := st.GetMessage(); m != "" {
		why = ": " + m
	}
	if state != corralpb.TaskState_TASK_FINISHED {
		// We asked for the kill: our reason wins over whatever state and exit
		// code the kill produced (as coreutils' timeout does).
		switch cause {
		case causeTimeout:
			return exitTimeout, "timeout expired; task killed"
		case causeInterrupt:
			return exitInterrupted, "interrupted; task killed"
		}
	}
	switch state {
	case corralpb.TaskState_TASK_FINISHED, corralpb.TaskState_TASK_FAILED:
		if st.GetHasExitCode() {
			return foldExitCode(st.GetExitCode()), ""
		}
		if state == corralpb.TaskState_TASK_FINISHED {
			return 0, ""
		}
		return exitCannotStart, "task failed without an exit code (could not start?)" + why
	case corralpb.TaskState_TASK_ERROR:
		return exitCannotStart, "task was refused as invalid" + why
	case corralpb.TaskState_TASK_KILLED:
		return exitKilled, "task was killed by someone else" + why
	case corralpb.TaskState_TASK_LOST:
		return exitLost, "task was LOST (exit code 127 here means TASK_LOST, not \"command not found\")" + why
	}
	return exitNotPlaced, fmt.Sprintf("task ended in unexpected state %s%s", state, why)
}

// foldExitCode keeps 0-255 and turns "killed by signal N" (reported as -N)
// into the shell's 128+N.
func foldExitCode(c int32) int {
	switch {
	case c >= 0 && c <= 255:
		return int(c)
	case c < 0 && c >= -127:
		return 128 - int(c)
	}
	return 255
}

func isTerminal(s corralpb.TaskState) bool {
	switch s {
	case corralpb.TaskState_TASK_FINISHED, corralpb.TaskState_TASK_FAILED, corralpb.TaskState_TASK_KILLED,
		corralpb.TaskState_TASK_LOST, corralpb.TaskState_TASK_ERROR:
		return true
	}
	return false
}

// runExec runs `corral exec ARGS`.
func runExec(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"exec"}, args...), stdout, stderr)
}

func execCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	fs, finish := execFlagSet(os.Getenv)
	c := command("exec [flags] -- COMMAND [ARGS...]", "run a command as a task and stream its output", execUsage, fs,
		func(cmd *cobra.Command, args []string) int {
			o, err := finish(args)
			if err != nil {
				return failUsage(cmd, err)
			}
			return execute(ctx, o, stdout, &syncWriter{w: stderr})
		})
	c.Annotations[annUsageExit] = strconv.Itoa(exitNotPlaced)
	c.Annotations[annStopAtArg] = "true"
	c.Flags().SetInterspersed(false)
	return c
}

// syncWriter serializes writes: progress lines and the task's stderr share it.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

type phase int

const (
	phaseWaiting   phase = iota // no task yet; looking at offers
	phaseLaunching              // Accept in flight
	phaseLaunched
	phaseAbandoned // gave up before placing; ignore further offers
)

// execFramework is the scheduler side of corral exec. Callbacks run on the
// SDK's goroutine; the main goroutine reads the state under mu and is poked
// through changed.
// execFailoverTimeout is how long the master keeps exec's task while exec
// is disconnected. Past it (plus a margin for clocks and retries) the task
// is gone, so exec stops waiting for a master that does not come back.
const (
	execFailoverTimeout = 10 * time.Second
	execGiveUpAfter     = execFailoverTimeout + 5*time.Second
)

type execFramework struct {
	o      *execOptions
	taskID string
	say    func(format string, args ...any) // progress, silenced by -q
	warn   func(format string, args ...any) // always printed

	mu         sync.Mutex
	driver     scheduler.Driver
	phase      phase
	agentID    string
	status     *corralpb.TaskStatus // latest for our task
	sandboxURL string
	lastErr    string // last ERROR event or disconnect reason
	suppressed bool
	// declared is true while the master holds exec's demand (one task of
	// its shape): from the first subscription until the task is launched.
	// Run re-declares it after re-subscriptions.
	declared bool
	stopping bool // main gave up on the task; a failed launch must not be retried
	// disconnectedAt is when the stream to the master broke; zero while
	// subscribed.
	disconnectedAt time.Time
	changed        chan struct{}
	// frameworkID is exec's framework; stdinStarted says -i's feed began.
	frameworkID  string
	stdinStarted bool
}

func (f *execFramework) poke() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *execFramework) Subscribed(ctx context.Context, d scheduler.Driver, id string, reconnected bool) {
	f.mu.Lock()
	f.driver, f.frameworkID = d, id
	f.disconnectedAt = time.Time{}
	declare := f.phase == phaseWaiting && !f.declared
	f.mu.Unlock()
	if reconnected {
		f.say("re-subscribed to the master as framework %s", id)
	} else {
		f.say("subscribed as framework %s; waiting for an offer with %s", id, f.o.describe())
	}
	if declare {
		f.declare(ctx, d, true)
	}
	f.poke()
}

// declare tells the master exec wants one task of its shape (on), or
// nothing any more (off). Demand lets the allocator offer just what the task
// needs and share the rest of an agent with other frameworks, instead of
// handing exec a whole agent. A master or allocator without demand support
// still sends whole offers, so a failure is worth a note, not an exit.
func (f *execFramework) declare(ctx context.Context, d scheduler.Driver, on bool) {
	var shapes []scheduler.TaskShape
	what := "withdraw"
	if on {
		shapes = []scheduler.TaskShape{{Resources: f.o.want(), Count: 1}}
		what = "declare"
	}
	if err := d.Request(ctx, f.o.role, shapes...); err != nil {
		f.say("could not %s the task's demand: %v", what, err)
		return
	}
	f.mu.Lock()
	f.declared = on
	f.mu.Unlock()
}

// Offers launches the task on the first offer that fits and declines the
// rest. Unfitting offers are refused only briefly, since resources may free
// up; once placed, everything is refused for long and offers suppressed.
func (f *execFramework) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	want := f.o.want()
	var decline []string
	for _, o := range offers {
		f.mu.Lock()
		waiting := f.phase == phaseWaiting
		var taken []*corralpb.Resource
		fits := false
		if waiting {
			taken, _, fits = scheduler.TakeScalars(o.GetResources(), want)
			if fits {
				f.phase = phaseLaunching
			}
		}
		f.mu.Unlock()
		if !fits {
			decline = append(decline, o.GetId())
			continue
		}
		task := &corralpb.TaskInfo{
			TaskId: f.taskID, Name: strings.Join(f.o.command, " "), AgentId: o.GetAgentId(),
			Resources: taken, Command: commandInfo(f.o), KillGraceSeconds: f.o.grace.Seconds(),
		}
		if f.o.container != "" || f.o.rootfs != "" {
			task.Container = &corralpb.ContainerInfo{Type: f.o.container, Rootfs: f.o.rootfs}
			if task.Container.Type == "" {
				task.Container.Type = "runc" // the isolator that gives a task a filesystem
			}
		}
		task.HealthCheck = f.o.health
		err := d.Launch(ctx, []string{o.GetId()}, []*corralpb.TaskInfo{task}, &corralpb.Filters{RefuseSeconds: proto.Float64(1)})
		f.mu.Lock()
		var refused *scheduler.CallError
		if errors.As(err, &refused) && refused.Code == codes.PermissionDenied && f.phase == phaseLaunching {
			// The ACLs refuse the task itself (run_tasks): no other offer helps.
			f.phase, f.lastErr = phaseAbandoned, fmt.Sprintf("launch refused: %v", err)
		} else if err != nil {
			f.warn("launch on %s failed, waiting for another offer: %v", o.GetHostname(), err)
			if f.phase == phaseLaunching {
				f.phase = phaseWaiting
				if f.stopping {
					f.phase = phaseAbandoned
				}
			}
		} else {
			f.phase, f.agentID = phaseLaunched, o.GetAgentId()
			f.say("launched task %s on %s (agent %s)", f.taskID, o.GetHostname(), o.GetAgentId())
		}
		f.mu.Unlock()
		f.poke()
	}
	f.mu.Lock()
	placed := f.phase != phaseWaiting
	suppress := placed && !f.suppressed
	f.suppressed = f.suppressed || suppress
	withdraw := f.phase == phaseLaunched && f.declared
	f.mu.Unlock()
	if withdraw {
		// Before Suppress (which drops it too), so that the allocator hears
		// of it even if suppressing fails.
		f.declare(ctx, d, false)
	}
	if len(decline) > 0 {
		refuse := 1.0
		if placed {
			refuse = 3600
		}
		if err := d.Decline(ctx, decline, &corralpb.Filters{RefuseSeconds: proto.Float64(refuse)}); err != nil {
			f.warn("decline: %v", err)
		}
	}
	if suppress {
		if err := d.Suppress(ctx); err != nil {
			f.warn("suppress: %v", err)
		}
	}
}

func (f *execFramework) Rescinded(context.Context, scheduler.Driver, string) {}

func (f *execFramework) Update(_ context.Context, _ scheduler.Driver, st *corralpb.TaskStatus) {
	if st.GetTaskId() != f.taskID {
		return
	}
	f.mu.Lock()
	f.status = st
	if st.GetSandboxUrl() != "" {
		f.sandboxURL = st.GetSandboxUrl()
	}
	if st.GetAgentId() != "" {
		f.agentID = st.GetAgentId()
	}
	f.mu.Unlock()
	if !isTerminal(st.GetState()) {
		f.say("task %s is %s", f.taskID, st.GetState())
	}
	f.poke()
}

func (f *execFramework) Error(_ context.Context, _ scheduler.Driver, msg string) {
	f.warn("master: %s", msg)
	f.mu.Lock()
	f.lastErr = msg
	f.mu.Unlock()
	f.poke()
}

func (f *execFramework) Disconnected(_ context.Context, err error) {
	f.mu.Lock()
	f.lastErr = err.Error()
	if f.disconnectedAt.IsZero() {
		f.disconnectedAt = time.Now()
	}
	f.mu.Unlock()
	f.poke()
}

type execSnapshot struct {
	driver     scheduler.Driver
	phase      phase
	agentID    string
	status     *corralpb.TaskStatus
	sandboxURL string
	lastErr    string
}

func (f *execFramework) snapshot() execSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return execSnapshot{f.driver, f.phase, f.agentID, f.status, f.sandboxURL, f.lastErr}
}

// abandon gives up on the task. It reports true when nothing was placed
// (no launch started); otherwise the caller must kill the task.
func (f *execFramework) abandon() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopping = true
	if f.phase == phaseWaiting {
		f.phase = phaseAbandoned
		return true
	}
	return f.phase == phaseAbandoned
}

// execFrameworkInfo is what exec subscribes with.
func execFrameworkInfo(o *execOptions) *corralpb.FrameworkInfo {
	fw := &corralpb.FrameworkInfo{
		Name:  o.name,
		Roles: []string{o.role},
		// Long enough to ride out a master restart or a dropped stream, short
		// enough that a corral exec killed with SIGKILL does not leave its
		// task running for long.
		FailoverTimeoutSeconds: execFailoverTimeout.Seconds(),
	}
	if o.gpus > 0 {
		// Without it the allocator keeps agents with GPUs away from us.
		fw.Capabilities = []string{scheduler.CapabilityGPUResources}
	}
	if u, err := user.Current(); err == nil {
		fw.User = u.Username
	}
	fw.Hostname, _ = os.Hostname()
	return fw
}

func newTaskID(name string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return name + "-" + hex.EncodeToString(b)
}

// execute runs the framework until the task is terminal (or never placed)
// and returns the exit code. It owns the only blocking loop of corral exec.
func execute(ctx context.Context, o *execOptions, stdout io.Writer, stderr io.Writer) int {
	say := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, "corral exec: "+format+"\n", args...)
		}
	}
	warn := func(format string, args ...any) { fmt.Fprintf(stderr, "corral exec: "+format+"\n", args...) }
	f := &execFramework{o: o, taskID: newTaskID(o.name), say: say, warn: warn, changed: make(chan struct{}, 1)}

	fw := execFrameworkInfo(o)
	// Run must survive Ctrl-C long enough to kill the task and tear down, so
	// it gets a context of its own, ended only on the way out.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	tc, err := cliTLS()
	if err != nil {
		stopRun()
		warn("%v", err)
		return exitNotPlaced
	}
	runDone := make(chan error, 1)
	go func() {
		runDone <- scheduler.Run(runCtx, scheduler.Config{
			Master: o.master, Framework: fw, TLS: tc, Credential: cliCredential(),
			Logger: hclog.New(&hclog.LoggerOptions{Name: "corral-exec", Level: hclog.Off}),
		}, f)
	}()
	runEnded := false
	defer func() {
		stopRun()
		if !runEnded {
			<-runDone
		}
	}()

	lostCheck := time.NewTicker(time.Second)
	defer lostCheck.Stop()
	// While no offer fits, say why now and then (execwait.go).
	waitReport := time.NewTimer(execFirstWaitReport)
	defer waitReport.Stop()
	waitExplained := make(chan fitReport, 1)
	var (
		connectC  = time.After(o.connectTimeout)
		timeoutC  <-chan time.Time
		killC     <-chan time.Time // kill retries
		giveUpC   <-chan time.Time // the kill was not confirmed in time
		interrupt = ctx.Done()
		cause     = causeNone
		logs      *follower
		finalLine string
	)
	if o.timeout > 0 {
		timeoutC = time.After(o.timeout)
	}
	// teardown removes the framework and so anything still running.
	teardown := func() {
		s := f.snapshot()
		if s.driver == nil {
			return
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.driver.Teardown(tctx); err != nil && !errors.Is(err, scheduler.ErrNotSubscribed) {
			warn("teardown: %v", err)
		}
	}
	kill := func() {
		s := f.snapshot()
		killC = nil
		if s.driver != nil {
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := s.driver.Kill(kctx, f.taskID, s.agentID)
			cancel()
			if err == nil {
				return
			}
			warn("kill: %v (retrying)", err)
		}
		killC = time.After(time.Second)
	}
	stopTask := func(c stopCause) {
		cause = c
		kill()
		grace := o.grace
		if grace == 0 {
			grace = 3 * time.Second
		}
		giveUpC = time.After(grace + 10*time.Second)
	}
	finish := func(code int, msg string) int {
		if logs != nil {
			logs.stopAndDrain()
		}
		if msg != "" {
			warn("%s", msg)
		}
		if finalLine != "" {
			say("%s", finalLine)
		}
		teardown()
		return code
	}

	for {
		select {
		case <-f.changed:
			s := f.snapshot()
			if s.sandboxURL != "" && logs == nil {
				logs = startFollower(ctx, s.sandboxURL, stdout, stderr, warn)
			}
			f.startStdin(ctx, os.Stdin)
			if s.status != nil && isTerminal(s.status.GetState()) {
				code, msg := exitCodeFor(s.status, cause)
				// The final state goes last, after the task's output.
				finalLine = fmt.Sprintf("task %s %s (exit %d)", f.taskID, s.status.GetState(), code)
				return finish(code, msg)
			}
			if s.phase == phaseAbandoned && cause != causeNone {
				// A launch failed after we had decided to stop.
				return finish(stopCode(cause), "")
			}
			if s.phase == phaseAbandoned && cause == causeNone {
				return finish(exitNotPlaced, s.lastErr) // the master refused the launch for good
			}
		case <-connectC:
			if s := f.snapshot(); s.driver == nil {
				return finish(exitNotPlaced, fmt.Sprintf("cannot reach the master at %s within %s: %s",
					o.master, o.connectTimeout, orUnknown(s.lastErr)))
			}
		case <-timeoutC:
			timeoutC = nil
			if f.abandon() {
				if s := f.snapshot(); s.driver == nil {
					return finish(exitNotPlaced, fmt.Sprintf("cannot reach the master at %s within %s: %s",
						o.master, o.timeout, orUnknown(s.lastErr)))
				}
				return finish(exitNotPlaced, fmt.Sprintf("no offer fitting %s within %s", o.describe(), o.timeout))
			}
			warn("timeout of %s expired; killing task %s", o.timeout, f.taskID)
			stopTask(causeTimeout)
		case <-interrupt:
			interrupt = nil
			if f.abandon() {
				return finish(exitInterrupted, "interrupted before the task was placed")
			}
			warn("interrupted; killing task %s", f.taskID)
			stopTask(causeInterrupt)
		case <-lostCheck.C:
			f.mu.Lock()
			since, launched := f.disconnectedAt, f.agentID != ""
			f.mu.Unlock()
			if since.IsZero() || time.Since(since) < execGiveUpAfter {
				break
			}
			if !launched {
				return finish(exitNotPlaced, fmt.Sprintf("lost the master at %s for %s before the task was placed",
					o.master, execGiveUpAfter))
			}
			return finish(exitLost, fmt.Sprintf("lost the master at %s for %s, past the framework's %s failover timeout: "+
				"the task is gone (exit code 127 here means TASK_LOST)", o.master, execGiveUpAfter, execFailoverTimeout))
		case <-waitReport.C:
			if s := f.snapshot(); s.driver != nil && s.phase == phaseWaiting {
				go func() {
					if r, err := explainWait(ctx, o); err == nil {
						waitExplained <- r
					}
				}()
			}
			waitReport.Reset(execWaitReportEvery)
		case r := <-waitExplained:
			if s := f.snapshot(); s.phase != phaseWaiting {
				break
			}
			if r.never && f.abandon() {
				return finish(exitNotPlaced, r.msg)
			}
			say("%s", r.msg)
		case <-killC:
			kill()
		case <-giveUpC:
			return finish(stopCode(cause), "the task's end was not confirmed in time; tearing the framework down")
		case err := <-runDone:
			runEnded = true
			if err == nil {
				err = errors.New("scheduler stopped unexpectedly")
			}
			return finish(exitNotPlaced, err.Error())
		}
	}
}

func stopCode(c stopCause) int {
	if c == causeInterrupt {
		return exitInterrupted
	}
	return exitTimeout
}

func orUnknown(s string) string {
	if s == "" {
		return "no answer"
	}
	return s
}

// sizeHeader is the agent's answer header carrying the file's current size.
const sizeHeader = "X-Corral-File-Size"

// follower copies a task's stdout and stderr from the agent's sandbox API:
// it polls while the task runs and drains both files once it is terminal.
type follower struct {
	client *http.Client
	base   string
	files  []*followedFile
	warn   func(format string, args ...any)
	stop   chan struct{}
	done   chan struct{}
}

type followedFile struct {
	name   string
	out    io.Writer
	offset int64
	errs   int // consecutive failures, to stop shouting after a few
}

const pollInterval = 100 * time.Millisecond

func startFollower(ctx context.Context, base string, stdout, stderr io.Writer, warn func(string, ...any)) *follower {
	client := &http.Client{Timeout: 10 * time.Second}
	if c, err := cliClient(); err == nil && c.Transport != nil {
		client.Transport = c.Transport // the agent speaks TLS when the cluster does
	}
	fl := &follower{
		client: client,
		base:   strings.TrimRight(base, "/"),
		files:  []*followedFile{{name: "stdout", out: stdout}, {name: "stderr", out: stderr}},
		warn:   warn,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go fl.run(context.WithoutCancel(ctx))
	return fl
}

func (fl *follower) run(ctx context.Context) {
	defer close(fl.done)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		for _, f := range fl.files {
			fl.pull(ctx, f, false)
		}
		select {
		case <-fl.stop:
			// The task is terminal: its files no longer grow, so read each to
			// its end. Bounded so a vanished agent cannot hang us.
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			for _, f := range fl.files {
				fl.pull(dctx, f, true)
			}
			return
		case <-t.C:
		}
	}
}

func (fl *follower) stopAndDrain() {
	close(fl.stop)
	<-fl.done
}

// pull copies what is new in one file, chunk by chunk, up to the size the
// agent reported. When draining it also retries a few transient failures,
// since that is the last chance to get the output.
func (fl *follower) pull(ctx context.Context, f *followedFile, drain bool) {
	for {
		n, size, err := fl.fetch(ctx, f)
		if err != nil {
			f.errs++
			if f.errs == 3 || drain {
				fl.warn("reading task %s: %v", f.name, err)
			}
			if drain && f.errs < 6 && ctx.Err() == nil {
				time.Sleep(pollInterval) // a transient agent hiccup; try again
				continue
			}
			return
		}
		f.errs = 0
		if n == 0 || f.offset >= size {
			return
		}
	}
}

// fetch reads one chunk at f.offset and writes it out. A missing file (the
// sandbox not created yet) reads as empty.
func (fl *follower) fetch(ctx context.Context, f *followedFile) (n, size int64, err error) {
	u := fl.base + "/" + f.name + "?offset=" + strconv.FormatInt(f.offset, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := fl.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, 0, nil
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, 0, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	size, err = strconv.ParseInt(resp.Header.Get(sizeHeader), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("GET %s: bad %s header: %w", u, sizeHeader, err)
	}
	n, err = io.Copy(f.out, resp.Body)
	f.offset += n
	if err != nil {
		return n, size, fmt.Errorf("GET %s: %w", u, err)
	}
	return n, size, nil
}
