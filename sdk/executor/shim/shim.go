// Package shim is the per-task shim: a tiny, long-lived process that is the
// parent of one task (the role containerd-shim and conmon play). It starts
// the task, holds its pid and its stdio files, writes the exit status to a
// file in the sandbox the moment the task ends, and answers its executor
// over a unix socket in the sandbox. The executor, and the agent above it,
// may both die and come back: the task keeps running, and its exit status
// is never lost.
//
// The shim is started with the sandbox as its working directory, the task's
// environment, stdout and stderr (the task inherits them, and nothing else)
// and two pipes as fds 3 (control, executor -> shim) and 4 (status, shim ->
// executor). Its arguments are Arg, options, "--" and the task's argv (or,
// without options, Arg and the argv). The options are what an executor
// would otherwise need a launcher process for, applied to the task before
// its first instruction: the task stops right after its exec (ptrace) and
// the shim sets them on the stopped process.
//
//	-rlimit=RESOURCE:SOFT:HARD  prlimit(2) on the task (RLIMIT_* number; -1 is unlimited)
//	-cgroup=PATH                write the task's pid to PATH (a cgroup.procs file)
//	-user=UID:GID[:G,G...]      the task's user and groups (setgroups, setgid, setuid before exec)
//	-hold                       keep the task stopped until the control pipe brings
//	                            GoByte (EOF or anything else kills it)
//
// On fd 4 the shim writes one line: "pid N\n" once the task exists (held,
// with -hold), "nostart <quoted>\n" if its command could not be started
// (the shim then records exit code 127 and exits: that is the task's end),
// or "error <quoted>\n" if the shim itself could not work.
//
// Socket protocol: the client sends one line, the shim answers one line.
//
//	wait        -> "exit CODE SIGNAL" once the task has ended
//	signal N    -> "ok" after kill(-pid, N) on the task's process group
//	pid         -> "pid N"
//
// The shim has two implementations of this contract, tested alike
// (package shimtest runs the contract tests against both): the C
// corral-shim binary (BinaryName, sdk/executor/shim/cshim, static, libc
// only), which `make build` puts beside the plugins and the command
// executor starts when it is there, because a task launch then costs well
// under a millisecond of CPU where a Go binary's runtime start costs
// several; and package shimrun (one goroutine, one poll loop, no
// fmt/net/os/exec), the built-in shim mode of any binary calling MaybeRun,
// which is the fallback where corral-shim is missing. This package is the
// executor's side: ReadStart, Wait, Signal, Alive, ReadExit.
package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-project/corral/sdk/executor/shim/shimrun"
	"golang.org/x/sys/unix"
)

// Arg, as os.Args[1], makes a binary calling MaybeRun the shim.
const Arg = shimrun.Arg

// Files under the sandbox.
const (
	Dir        = shimrun.Dir        // owner-only directory in the sandbox
	SocketName = shimrun.SocketName // the shim's socket, in Dir
	ExitName   = shimrun.ExitName   // "CODE SIGNAL\n", written once the task ended
)

// BinaryName is the dedicated shim binary (the C one, cshim/corral-shim.c),
// built into the plugin directory beside the executors that start shims.
const BinaryName = "corral-shim"

// Status is how a task ended.
type Status struct {
	ExitCode int // 128+signal when killed by a signal, as shells do
	Signal   int // > 0 when the task died of a signal
}

// ErrGone means neither a shim nor a recorded exit status exists: the task
// ended without anyone recording how.
var ErrGone = errors.New("task shim is gone and no exit status was recorded")

// MaybeRun runs the shim and never returns if os.Args[1] is Arg; otherwise
// it returns at once. Call it first thing in main. A binary that does is a
// fallback for installs without BinaryName, which is far smaller.
func MaybeRun() { shimrun.MaybeRun() }

// GoByte, written to the control pipe of a shim started with -hold, lets
// the task's command run.
const GoByte = shimrun.GoByte

// StartError is a task whose command could not be started (not found,
// limit or cgroup refused): the task's end, with exit code 127 recorded,
// rather than a failure of the shim.
type StartError struct{ Msg string }

func (e *StartError) Error() string { return e.Msg }

// ReadStart reads the shim's first word on the status pipe: the task's pid,
// a *StartError if its command could not be started, or the reason the
// shim failed.
func ReadStart(r *bufio.Reader) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read shim start: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	if v, ok := strings.CutPrefix(line, "pid "); ok {
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("shim start %q: bad pid", line)
		}
		return pid, nil
	}
	if v, ok := strings.CutPrefix(line, "nostart "); ok {
		if unq, err := strconv.Unquote(v); err == nil {
			v = unq
		}
		return 0, &StartError{Msg: v}
	}
	if v, ok := strings.CutPrefix(line, "error "); ok {
		if unq, err := strconv.Unquote(v); err == nil {
			v = unq
		}
		return 0, errors.New(v)
	}
	return 0, fmt.Errorf("shim start %q: not understood", line)
}

// request sends one line to the shim of the task in sandbox and returns its
// answer. The socket is reached through /proc/self/fd, so the sandbox path
// may be longer than a unix socket path can be.
func request(ctx context.Context, sandbox, line string) (string, error) {
	dir, err := os.OpenFile(filepath.Join(sandbox, Dir), os.O_RDONLY|unix.O_DIRECTORY|unix.O_PATH, 0)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), SocketName))
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", err
	}
	return strings.TrimSuffix(reply, "\n"), nil
}

// Wait blocks until the task in sandbox has ended and returns how. If the
// shim is gone it reads the recorded exit status; ErrGone if there is none.
func Wait(ctx context.Context, sandbox string) (Status, error) {
	reply, err := request(ctx, sandbox, "wait")
	if err != nil {
		if ctx.Err() != nil {
			return Status{}, ctx.Err()
		}
		return ReadExit(sandbox)
	}
	var st Status
	if _, err := fmt.Sscanf(reply, "exit %d %d", &st.ExitCode, &st.Signal); err != nil {
		return Status{}, fmt.Errorf("shim wait: answer %q: %w", reply, err)
	}
	return st, nil
}

// Signal sends sig to the task's process group through its shim. A task
// that has already ended is not an error.
func Signal(ctx context.Context, sandbox string, sig syscall.Signal) error {
	reply, err := request(ctx, sandbox, "signal "+strconv.Itoa(int(sig)))
	if err != nil {
		if _, ok, _ := readExit(sandbox); ok {
			return nil
		}
		return fmt.Errorf("shim signal: %w", err)
	}
	if reply != "ok" {
		return fmt.Errorf("shim signal: %s", reply)
	}
	return nil
}

// Alive reports whether the task's shim answers.
func Alive(ctx context.Context, sandbox string) bool {
	reply, err := request(ctx, sandbox, "pid")
	return err == nil && strings.HasPrefix(reply, "pid ")
}

// ReadExit returns the exit status the shim recorded in sandbox, ErrGone
// if it recorded none.
func ReadExit(sandbox string) (Status, error) {
	st, ok, err := readExit(sandbox)
	if err != nil {
		return Status{}, err
	}
	if !ok {
		return Status{}, ErrGone
	}
	return st, nil
}

func readExit(sandbox string) (Status, bool, error) {
	path := filepath.Join(sandbox, Dir, ExitName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Status{}, false, nil
	}
	if err != nil {
		return Status{}, false, fmt.Errorf("read exit status: %w", err)
	}
	var st Status
	if _, err := fmt.Sscanf(string(b), "%d %d", &st.ExitCode, &st.Signal); err != nil {
		return Status{}, false, fmt.Errorf("exit status file %s holds %q: %w", path, b, err)
	}
	return st, true, nil
}

// Rlimit is one resource limit the shim sets on the task.
type Rlimit struct {
	Resource   int // RLIMIT_* number
	Soft, Hard uint64
}

// Credential is the user the task runs as.
type Credential struct {
	UID, GID uint32
	Groups   []uint32
}

// Options is what the shim applies to the task before its command runs.
type Options struct {
	Rlimits     []Rlimit
	CgroupProcs []string // cgroup.procs files the task joins
	User        *Credential
	// Hold keeps the task stopped after its exec, once it has its limits
	// and cgroups, until the executor writes GoByte to the control pipe.
	Hold bool
}

// Args is the shim's command line after the binary: Arg, the options,
// "--" and the task's argv.
func (o Options) Args(argv []string) []string {
	args := []string{Arg}
	for _, rl := range o.Rlimits {
		args = append(args, "-rlimit="+strconv.Itoa(rl.Resource)+":"+limitText(rl.Soft)+":"+limitText(rl.Hard))
	}
	for _, p := range o.CgroupProcs {
		args = append(args, "-cgroup="+p)
	}
	if u := o.User; u != nil {
		groups := make([]string, len(u.Groups))
		for i, g := range u.Groups {
			groups[i] = strconv.FormatUint(uint64(g), 10)
		}
		args = append(args, fmt.Sprintf("-user=%d:%d:%s", u.UID, u.GID, strings.Join(groups, ",")))
	}
	if o.Hold {
		args = append(args, "-hold")
	}
	args = append(args, "--")
	return append(args, argv...)
}

func limitText(v uint64) string {
	if v == ^uint64(0) {
		return "-1"
	}
	return strconv.FormatUint(v, 10)
}
