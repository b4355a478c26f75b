package pluginhost

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// errNoProcess means the pid does not name a live process.
var errNoProcess = errors.New("no such process")

// procStat returns the state (field 3) and start time in clock ticks since
// boot (field 22) of /proc/<pid>/stat. The start time tells a process from a
// later one that reused its pid.
func procStat(pid int) (state byte, startTicks uint64, err error) {
	if pid <= 0 {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, errNoProcess)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, errNoProcess)
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

// processAlive reports whether pid runs and, when startTicks is non-zero,
// is the process that started at startTicks. Zombies count as dead: their
// parent (or init) only has to reap them.
func processAlive(pid int, startTicks uint64) bool {
	state, ticks, err := procStat(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	return startTicks == 0 || ticks == startTicks
}
