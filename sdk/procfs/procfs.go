// Package procfs tells Linux processes apart by pid and start time
// (/proc/<pid>/stat), so that a pid recorded earlier is never mistaken for
// a later process that reused it. pid_max is 32768 on many machines, and
// a busy one wraps it in seconds: signalling a stale pid or process group
// can kill an unrelated process (another test's plugin, a task).
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// ErrNoProcess means the pid does not name a live process.
var ErrNoProcess = errors.New("no such process")

// Stat returns the state (field 3) and start time in clock ticks since
// boot (field 22) of /proc/<pid>/stat.
func Stat(pid int) (state byte, startTicks uint64, err error) {
	if pid <= 0 {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return 0, 0, err
	}
	// comm (field 2) is in parentheses and may itself contain spaces or
	// parentheses, so fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("pid %d: malformed /proc stat line", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("pid %d: malformed /proc stat line", pid)
	}
	ticks, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("pid %d: start time: %w", pid, err)
	}
	return fields[0][0], ticks, nil
}

// Alive reports whether pid runs and, when startTicks is non-zero, is the
// process that started at startTicks. Zombies count as dead: their parent
// (or init) only has to reap them.
func Alive(pid int, startTicks uint64) bool {
	state, ticks, err := Stat(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	return startTicks == 0 || ticks == startTicks
}

// Process is one process: its pid and when it started.
type Process struct {
	Pid        int
	StartTicks uint64
}

// Identify records the process pid names now.
func Identify(pid int) (Process, error) {
	_, ticks, err := Stat(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{Pid: pid, StartTicks: ticks}, nil
}

// Signal sends sig to p if pid still names p; ErrNoProcess if p is gone
// (or its pid now names another process).
func (p Process) Signal(sig syscall.Signal) error {
	if p.StartTicks == 0 || !Alive(p.Pid, p.StartTicks) { // 0: never identified
		return fmt.Errorf("pid %d: %w", p.Pid, ErrNoProcess)
	}
	return syscall.Kill(p.Pid, sig)
}

// SignalGroup sends sig to the process group p leads. The group's id is
// p's pid; while any member lives the kernel gives that pid to no new
// process, so the group is signalled when its leader is p or gone, and
// left alone when the pid names a later process (which may lead a group
// of its own under that id).
func (p Process) SignalGroup(sig syscall.Signal) error {
	if p.Pid <= 1 {
		// kill(0) and kill(-1) would reach the caller's own group or
		// every process: never for an unknown Process.
		return fmt.Errorf("process group %d: %w", p.Pid, ErrNoProcess)
	}
	_, ticks, err := Stat(p.Pid)
	if err == nil && ticks != p.StartTicks {
		return fmt.Errorf("process group %d: its leader's pid names another process: %w", p.Pid, ErrNoProcess)
	}
	return syscall.Kill(-p.Pid, sig)
}
