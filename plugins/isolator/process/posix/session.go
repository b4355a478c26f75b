package posix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Processes returns the stat of every live (not zombie) process on the
// machine. Processes that exit while /proc is being walked are skipped.
func Processes() ([]*Stat, error) {
	dir, err := os.Open(ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []*Stat
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue // not a process directory
		}
		st, err := ReadStat(pid)
		if errors.Is(err, ErrNoProcess) {
			continue // exited meanwhile
		}
		if err != nil {
			return nil, err
		}
		if !st.Gone() {
			out = append(out, st)
		}
	}
	return out, nil
}

// BySession groups live processes by session ID.
func BySession() (map[int][]*Stat, error) {
	procs, err := Processes()
	if err != nil {
		return nil, err
	}
	out := make(map[int][]*Stat)
	for _, p := range procs {
		out[p.Session] = append(out[p.Session], p)
	}
	return out, nil
}

// SessionProcesses returns the live processes whose session ID is sid.
func SessionProcesses(sid int) ([]*Stat, error) {
	all, err := BySession()
	if err != nil {
		return nil, err
	}
	return all[sid], nil
}

// Usage is the summed usage of a set of processes.
type Usage struct {
	CPUUserSeconds   float64
	CPUSystemSeconds float64
	MemRSSBytes      uint64
	Processes        int
}

// Sum adds up the CPU time and resident memory of procs.
func Sum(procs []*Stat) Usage {
	var u Usage
	var utime, stime uint64
	for _, p := range procs {
		utime += p.UTimeTicks
		stime += p.STimeTicks
		u.MemRSSBytes += p.RSSBytes()
	}
	u.CPUUserSeconds = TicksToSeconds(utime)
	u.CPUSystemSeconds = TicksToSeconds(stime)
	u.Processes = len(procs)
	return u
}

// pollInterval is how often KillSession looks at /proc while waiting.
const pollInterval = 10 * time.Millisecond

// KillSession sends SIGKILL to every process of session sid and returns
// once none is left alive (zombies count as gone: their parent reaps them).
// It rescans until the session is empty because a process may fork between
// a scan and its kill; a killed process cannot fork any more, so this ends.
// sid must be > 1: session 0 and 1 belong to the kernel and init.
func KillSession(ctx context.Context, sid int) error {
	if sid <= 1 {
		return fmt.Errorf("kill session %d: refusing to kill a kernel or init session", sid)
	}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		procs, err := SessionProcesses(sid)
		if err != nil {
			return fmt.Errorf("kill session %d: %w", sid, err)
		}
		if len(procs) == 0 {
			return nil
		}
		for _, p := range procs {
			if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill session %d: pid %d: %w", sid, p.Pid, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill session %d: %d processes still alive: %w", sid, len(procs), ctx.Err())
		case <-ticker.C:
		}
	}
}
