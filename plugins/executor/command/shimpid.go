package command

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/sdk/executor/shim"
)

// shimTaskPid asks the task's shim for the task's pid (the shim protocol's
// "pid" request, documented in package shim, which exports no call for it).
// Recover needs it when the agent stopped before it heard the pid from
// Launch: without the pid the isolator would not know the container.
func shimTaskPid(sandbox string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Through /proc/self/fd, as the shim's own client does: a sandbox path
	// may be longer than a unix socket path can be.
	dir, err := os.OpenFile(filepath.Join(sandbox, shim.Dir), os.O_RDONLY|unix.O_DIRECTORY|unix.O_PATH, 0)
	if err != nil {
		return 0, fmt.Errorf("shim pid: %w", err)
	}
	defer dir.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), shim.SocketName))
	if err != nil {
		return 0, fmt.Errorf("shim pid: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("pid\n")); err != nil {
		return 0, fmt.Errorf("shim pid: %w", err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("shim pid: %w", err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(reply), "pid ")
	pid, err := strconv.Atoi(v)
	if !ok || err != nil || pid <= 0 {
		return 0, fmt.Errorf("shim pid: answer %q not understood", reply)
	}
	return pid, nil
}
