// Package launch is the command executor's launcher stage: the short-lived
// first stage of a task's process that applies what Go's fork/exec cannot
// (setrlimit, cgroup membership, credentials, all before exec) and then
// replaces itself with the task's command, keeping its pid and session.
//
// It is its own package, importing nothing heavier than the standard
// library and x/sys, so that its binary (corral-launcher, built from ./cmd)
// starts in about a millisecond: every task pays for one launcher start.
// The executor binary can still serve as the launcher (MaybeRun in its
// main) where corral-launcher is not installed.
package launch

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/corral-project/corral/plugins/isolator/process/posix"
	"golang.org/x/sys/unix"
)

// Arg, as os.Args[1], turns a binary calling MaybeRun into the launcher:
// the short-lived first stage of a task's process that applies what Go's
// fork/exec cannot (setrlimit, cgroup membership, all before exec) and then
// replaces itself with the task's command, keeping its pid and session.
//
// The executor talks to the launcher over two pipes:
//   - fd 3 (control, executor -> launcher): the launchPlan as one JSON line,
//     later a single "go" byte once the container has isolated the pid.
//     EOF instead of "go" means abort.
//   - fd 4 (status, launcher -> executor): "ready\n" once the plan is
//     applied, or "error <quoted message>\n" if anything fails, exec
//     included. The launcher marks it close-on-exec, so EOF after "go"
//     means the exec succeeded.
const Arg = "__corral-launch"

const (
	controlFD = 3
	statusFD  = 4

	// GoByte, written to the control pipe, lets the launcher exec.
	GoByte = 'g'
	// ExitFailed is the exit code of a launcher that could not exec, as in shells.
	ExitFailed = 127

	statusReady = "ready"
	statusError = "error"
)

// Plan is what the launcher applies before exec.
type Plan struct {
	Path        string      `json:"path"` // resolved with the task's PATH
	Args        []string    `json:"args"` // argv, argv[0] included
	Rlimits     []Rlimit    `json:"rlimits,omitempty"`
	CgroupProcs []string    `json:"cgroup_procs,omitempty"`
	Credential  *Credential `json:"credential,omitempty"`
}

// Rlimit is one resource limit, by name (see posix.RlimitResource).
type Rlimit struct {
	Name       string
	Soft, Hard uint64
}

// Credential is the user the command runs as.
type Credential struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// MaybeRun runs the launcher and never returns if os.Args[1] is Arg;
// otherwise it returns at once. The launcher's and the executor's mains,
// and the TestMain of any test that launches tasks in-process, call it first.
func MaybeRun() {
	if len(os.Args) < 2 || os.Args[1] != Arg {
		return
	}
	status := os.NewFile(statusFD, "status")
	if err := runLauncher(status); err != nil {
		_, _ = fmt.Fprintf(status, "%s %s\n", statusError, strconv.Quote(err.Error()))
		os.Exit(ExitFailed)
	}
	// runLauncher only returns nil when the executor aborted the launch.
	os.Exit(1)
}

func runLauncher(status *os.File) error {
	// Nothing but stdin, stdout and stderr may leak into the task: not our
	// pipes, nor descriptors the agent or executor inherited without
	// close-on-exec from whoever started them.
	closeOnExecFrom(controlFD)
	control := bufio.NewReader(os.NewFile(controlFD, "control"))
	line, err := control.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read launch plan: %w", err)
	}
	var plan Plan
	if err := json.Unmarshal(line, &plan); err != nil {
		return fmt.Errorf("decode launch plan: %w", err)
	}
	// Limits first, while still privileged: raising a hard limit needs
	// CAP_SYS_RESOURCE, which the task's user may not have.
	for _, rl := range plan.Rlimits {
		res, err := posix.RlimitResource(rl.Name)
		if err != nil {
			return err
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("setrlimit %s to %d:%d: %w", rl.Name, rl.Soft, rl.Hard, err)
		}
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, path := range plan.CgroupProcs {
		if err := writeExisting(path, pid); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if c := plan.Credential; c != nil {
		// Go applies these to every thread of the process (Linux, Go 1.16+).
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setgid(int(c.GID)); err != nil {
			return fmt.Errorf("setgid %d: %w", c.GID, err)
		}
		if err := syscall.Setuid(int(c.UID)); err != nil {
			return fmt.Errorf("setuid %d: %w", c.UID, err)
		}
	}
	// Resolve after switching user, so that the permission check is the task's.
	path, err := exec.LookPath(plan.Path)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(status, "%s\n", statusReady); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	if b, err := control.ReadByte(); err != nil || b != GoByte {
		return nil // aborted by the executor
	}
	err = syscall.Exec(path, plan.Args, os.Environ())
	return fmt.Errorf("exec %s: %w", path, err)
}

// closeOnExecFrom marks every descriptor >= first close-on-exec.
func closeOnExecFrom(first int) {
	if unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Kernels before 5.11: walk our descriptors instead.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		syscall.CloseOnExec(controlFD)
		syscall.CloseOnExec(statusFD)
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			syscall.CloseOnExec(fd)
		}
	}
}

// writeExisting writes data to a file that must already exist (a cgroup's
// cgroup.procs), in one write as the kernel expects.
func writeExisting(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// ReadStatus reads one status line from the launcher. io.EOF means the
// launcher closed the pipe without a word: after "go" that is a successful
// exec; before "ready" it means the launcher died.
func ReadStatus(r *bufio.Reader) (ready bool, err error) {
	line, err := r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && line == "" {
			return false, io.EOF
		}
		return false, fmt.Errorf("read launcher status: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	if line == statusReady {
		return true, nil
	}
	if msg, ok := strings.CutPrefix(line, statusError+" "); ok {
		if unq, err := strconv.Unquote(msg); err == nil {
			msg = unq
		}
		return false, &Error{Msg: msg}
	}
	return false, fmt.Errorf("launcher status %q: not understood", line)
}

// Error is a failure the launcher reported: the command could not be
// started. It becomes the task's ExitResult.Err, not a Launch error.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }
