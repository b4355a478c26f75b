package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/corral-project/corral/core/master/agentproto"
)

// lockWorkDir takes an exclusive lock on the agent's work dir for as long
// as the agent runs: two agents on one work dir would share an ID and a
// checkpoint and knock each other off the master forever. The lock is an
// flock on <work_dir>/agent.lock, which the kernel drops when the process
// dies, so a crashed agent never leaves a stale lock. The file holds the
// holder's pid, for the error message.
func lockWorkDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "agent.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("agent work dir %s: opening the lock file: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf("the agent with pid %d", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("agent work dir %s is in use by %s (it holds %s); give each agent its own work_dir", dir, holder, path)
		}
		return nil, fmt.Errorf("agent work dir %s: locking %s: %w", dir, path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// checkStoredID validates the ID read from the agent_id file.
func checkStoredID(path, id string) error {
	if id == "" {
		return nil
	}
	if err := agentproto.ValidateAgentID(id); err != nil {
		return fmt.Errorf("agent ID file %s does not hold an agent ID: %w; remove the file to register as a new agent", path, err)
	}
	return nil
}
