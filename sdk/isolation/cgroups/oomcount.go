package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/opencontainers/cgroups/fscommon"
)

// oomCounter reads one container's OOM kill count from a file kept open,
// so that a notification costs one pread, not an open, a read and a close
// through the library's path checks. The file is memory.oom_control on v1
// (whose descriptor also registers the OOM notification) and memory.events
// on v2 (the file inotify watches); the library's OOMKillCount reads the
// same "oom_kill" line.
type oomCounter struct {
	f   *os.File
	buf []byte
}

// read returns the current count. It is not safe for concurrent use.
func (c *oomCounter) read() (uint64, error) {
	n, err := c.f.ReadAt(c.buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read %s: %w", c.f.Name(), err)
	}
	for line := range strings.SplitSeq(string(c.buf[:n]), "\n") {
		if !strings.HasPrefix(line, "oom_kill ") {
			continue
		}
		_, v, err := fscommon.ParseKeyValue(line)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", c.f.Name(), err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("%s has no oom_kill line (Linux 4.13 or later needed)", c.f.Name())
}

func (c *oomCounter) close() { _ = c.f.Close() }
