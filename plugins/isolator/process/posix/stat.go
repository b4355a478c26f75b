// Package posix holds what the plain-process isolator and the command
// executor share: reading /proc/<pid>/stat, finding and killing the
// processes of a session, and the names of POSIX resource limits.
package posix

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// ProcRoot is where procfs is mounted.
const ProcRoot = "/proc"

// Stat is the part of /proc/<pid>/stat (see proc(5)) corral uses.
type Stat struct {
	Pid        int
	Comm       string
	State      byte
	PPid       int
	Pgrp       int
	Session    int
	UTimeTicks uint64 // field 14
	STimeTicks uint64 // field 15
	StartTicks uint64 // field 22: start time in clock ticks after boot
	RSSPages   int64  // field 24
}

// Gone reports whether the process has exited and only waits to be reaped
// (zombie) or is being torn down. Such a process holds no resources and
// cannot be signalled meaningfully, so callers treat it as not there.
func (s *Stat) Gone() bool { return s.State == 'Z' || s.State == 'X' || s.State == 'x' }

// ParseStat parses the contents of /proc/<pid>/stat. The command name (field
// 2) is whatever the process put there, spaces and parentheses included, so
// it is taken as everything between the first '(' and the LAST ')'; the
// fields after it never contain ')'.
func ParseStat(data []byte) (*Stat, error) {
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return nil, fmt.Errorf("parse stat %q: no (comm)", truncate(data))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data[:open])))
	if err != nil {
		return nil, fmt.Errorf("parse stat %q: pid: %w", truncate(data), err)
	}
	// rest[0] is field 3 (state).
	rest := bytes.Fields(data[closing+1:])
	const lastField = 24
	if len(rest) < lastField-2 {
		return nil, fmt.Errorf("parse stat %q: %d fields after comm, want at least %d",
			truncate(data), len(rest), lastField-2)
	}
	field := func(n int) []byte { return rest[n-3] }
	s := &Stat{Pid: pid, Comm: string(data[open+1 : closing])}
	if len(field(3)) != 1 {
		return nil, fmt.Errorf("parse stat %q: state %q", truncate(data), field(3))
	}
	s.State = field(3)[0]
	ints := []struct {
		n   int
		dst *int
	}{{4, &s.PPid}, {5, &s.Pgrp}, {6, &s.Session}}
	for _, f := range ints {
		v, err := strconv.Atoi(string(field(f.n)))
		if err != nil {
			return nil, fmt.Errorf("parse stat %q: field %d: %w", truncate(data), f.n, err)
		}
		*f.dst = v
	}
	uints := []struct {
		n   int
		dst *uint64
	}{{14, &s.UTimeTicks}, {15, &s.STimeTicks}, {22, &s.StartTicks}}
	for _, f := range uints {
		v, err := strconv.ParseUint(string(field(f.n)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse stat %q: field %d: %w", truncate(data), f.n, err)
		}
		*f.dst = v
	}
	rss, err := strconv.ParseInt(string(field(24)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("parse stat %q: field 24: %w", truncate(data), err)
	}
	s.RSSPages = rss
	return s, nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// ErrNoProcess is returned (wrapped) when a pid does not exist.
var ErrNoProcess = errors.New("no such process")

// ReadStat reads and parses /proc/<pid>/stat.
func ReadStat(pid int) (*Stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", ProcRoot, pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
		}
		return nil, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return ParseStat(data)
}

// Alive reports whether pid names a process that has not exited.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := ReadStat(pid)
	return err == nil && !st.Gone()
}

// atClkTck is the auxiliary vector entry (getauxval(3)) in which the kernel
// tells every process its clock tick rate; sysconf(_SC_CLK_TCK) reads it.
const atClkTck = 17

// defaultClockTicks is USER_HZ on every Linux architecture Go supports; it
// is used only if /proc/self/auxv cannot be read.
const defaultClockTicks = 100

var clockTicks = sync.OnceValue(func() uint64 {
	auxv, err := os.ReadFile(ProcRoot + "/self/auxv")
	if err != nil {
		return defaultClockTicks
	}
	if hz := clockTicksFromAuxv(auxv); hz > 0 {
		return hz
	}
	return defaultClockTicks
})

// clockTicksFromAuxv finds AT_CLKTCK in an auxiliary vector: pairs of
// native-endian, word-sized (key, value), ending with key 0.
func clockTicksFromAuxv(auxv []byte) uint64 {
	word := strconv.IntSize / 8 // int and uintptr have the same size in Go
	read := func(b []byte) uint64 {
		if word == 4 {
			return uint64(binary.NativeEndian.Uint32(b))
		}
		return binary.NativeEndian.Uint64(b)
	}
	for i := 0; i+2*word <= len(auxv); i += 2 * word {
		key, val := read(auxv[i:]), read(auxv[i+word:])
		if key == 0 {
			break
		}
		if key == atClkTck {
			return val
		}
	}
	return 0
}

// ClockTicks is the rate (per second) of the tick counts in /proc/<pid>/stat.
func ClockTicks() uint64 { return clockTicks() }

// TicksToSeconds converts /proc tick counts to seconds.
func TicksToSeconds(ticks uint64) float64 { return float64(ticks) / float64(ClockTicks()) }

// RSSBytes is the resident set size in bytes.
func (s *Stat) RSSBytes() uint64 {
	if s.RSSPages <= 0 {
		return 0
	}
	return uint64(s.RSSPages) * uint64(os.Getpagesize())
}
