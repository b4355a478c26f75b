package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/plugins/isolator/runc/rootfstest"
)

// TestDevClusterCgroupsContainer: a dev cluster whose agent loads the
// cgroups isolator beside the default process isolator advertises both,
// and `corral exec --container cgroups` runs the command inside a cgroup
// under the configured parent, with its memory limit.
func TestDevClusterCgroupsContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("the cgroups isolator needs root; running as euid %d", os.Geteuid())
	}
	root := fmt.Sprintf("/corral-test/e2e-%d", os.Getpid())
	cfg := filepath.Join(t.TempDir(), "corral.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
agent { isolators = ["cgroups"] }
plugin "cgroups" {
  config { parent = "%s/{agent_id}" }
}
`, root)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _ := startDev(t, "-config", cfg, "-plugin-dir", filepath.Join(binDir(t), "plugins"))
	t.Cleanup(func() {
		// Every cgroup is gone once its task ended; only the parents stay.
		// Every hierarchy: /sys/fs/cgroup/<controller> on v1, /sys/fs/cgroup on v2.
		hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
		hierarchies = append(hierarchies, "/sys/fs/cgroup/cgroup.procs")
		for _, procs := range hierarchies {
			h := filepath.Dir(procs)
			matches, _ := filepath.Glob(filepath.Join(h, root, "*", "*", "cgroup.procs"))
			if len(matches) > 0 {
				t.Errorf("cgroups left behind: %v", matches)
			}
			agents, _ := filepath.Glob(filepath.Join(h, root, "*"))
			for _, a := range agents {
				if st, err := os.Stat(a); err == nil && st.IsDir() {
					_ = os.Remove(a)
				}
			}
			_ = os.Remove(filepath.Join(h, root))
			_ = os.Remove(filepath.Join(h, "/corral-test"))
		}
	})
	st := waitState(t, addr, "the agent's isolators attribute", func(s master.State) bool {
		return len(s.Agents) == 1 && s.Agents[0].Attributes["isolators"] == "cgroups,process"
	})
	agentID := st.Agents[0].ID

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// v1: one line per hierarchy; v2: "0::/path". Both name the parent.
	code, out, errOut := runCLI(t, ctx, "exec", "--master", addr, "--container", "cgroups", "--mem", "48", "--",
		"sh", "-c", `cat /proc/self/cgroup; for f in /sys/fs/cgroup/memory$(grep :memory: /proc/self/cgroup | cut -d: -f3)/memory.limit_in_bytes /sys/fs/cgroup$(grep ^0:: /proc/self/cgroup | cut -d: -f3)/memory.max; do [ -f "$f" ] && echo "limit $(cat $f)"; done; true`)
	if code != 0 {
		t.Fatalf("exec --container cgroups: code %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, root+"/"+agentID+"/") || !strings.Contains(out, fmt.Sprintf("limit %d", 48<<20)) {
		t.Errorf("the task's cgroups and limit:\n%s\nwant paths under %s/%s and limit %d", out, root, agentID, 48<<20)
	}
	code, out, _ = runCLI(t, ctx, "exec", "--master", addr, "--", "cat", "/proc/self/cgroup")
	if code != 0 || strings.Contains(out, root) {
		t.Errorf("a task of the default (process) isolator: code %d, cgroups %q; want none under %s", code, out, root)
	}
}

// TestDevClusterRuncContainer: a dev cluster whose agent loads the runc
// isolator runs `corral exec --rootfs DIR` in the busybox root filesystem,
// in namespaces of its own: ps sees only the task, the host's files and
// hostname are not visible, the sandbox is /mnt/sandbox and the output
// reaches the CLI. A task past its memory is reported as such; a task
// killed at its timeout and every finished one leave no cgroup (in any
// controller), container state or mount behind.
func TestDevClusterRuncContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("the runc isolator needs root; running as euid %d", os.Geteuid())
	}
	rootfs := rootfstest.Busybox(t)
	root := fmt.Sprintf("/corral-test/e2e-runc-%d", os.Getpid())
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "corral.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
agent { isolators = ["runc"] }
plugin "runc" {
  config {
    parent    = "%s/{agent_id}"
    state_dir = "%s/{agent_id}"
  }
}
`, root, state)), 0o644); err != nil {
		t.Fatal(err)
	}
	mountsBefore := mountCount(t)
	addr, _ := startDev(t, "-config", cfg, "-plugin-dir", filepath.Join(binDir(t), "plugins"))
	t.Cleanup(func() {
		hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
		hierarchies = append(hierarchies, "/sys/fs/cgroup/cgroup.procs")
		for _, procs := range hierarchies {
			h := filepath.Dir(procs)
			agents, _ := filepath.Glob(filepath.Join(h, root, "*"))
			for _, a := range agents {
				_ = os.Remove(a)
			}
			_ = os.Remove(filepath.Join(h, root))
			_ = os.Remove(filepath.Join(h, "/corral-test"))
		}
	})
	st := waitState(t, addr, "the agent's isolators attribute", func(s master.State) bool {
		return len(s.Agents) == 1 && s.Agents[0].Attributes["isolators"] == "process,runc"
	})
	agentID := st.Agents[0].ID
	// leftBehind lists the containers' cgroups in every hierarchy (the
	// isolator's and those libcontainer adds on v1) and state dirs.
	leftBehind := func() []string {
		hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
		hierarchies = append(hierarchies, "/sys/fs/cgroup/cgroup.procs")
		var left []string
		for _, procs := range hierarchies {
			m, _ := filepath.Glob(filepath.Join(filepath.Dir(procs), root, agentID, "*", "cgroup.procs"))
			left = append(left, m...)
		}
		m, _ := filepath.Glob(filepath.Join(state, agentID, "*"))
		return append(left, m...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hostName, _ := os.Hostname()
	code, out, errOut := runCLI(t, ctx, "exec", "--master", addr, "--rootfs", rootfs, "--mem", "64", "--",
		"sh", "-c", `echo "pid1=$(cat /proc/1/comm)"; ps -o pid,comm; `+
			`echo "hostname=$(hostname)"; echo "etc=$(cat /etc/hostname)"; echo "pwd=$(pwd)"; ls /mnt/sandbox | grep -q stdout && echo sandbox-ok`)
	if code != 0 {
		t.Fatalf("exec --rootfs: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("inside the container:\n%s", out)
	// ps sees the task's shell (pid 1) and itself, none of the host's.
	_, listing, _ := strings.Cut(out, "PID   COMMAND\n")
	listing, _, _ = strings.Cut(listing, "hostname=")
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		if f := strings.Fields(line); len(f) != 2 || (f[1] != "sh" && f[1] != "ps") {
			t.Errorf("ps inside the container lists %q: not the task's", line)
		}
	}
	for _, want := range []string{"pid1=sh\n", "etc=busybox-rootfs\n", "pwd=/mnt/sandbox\n", "sandbox-ok\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q", want)
		}
	}
	if strings.Contains(out, "hostname="+hostName+"\n") || !strings.Contains(out, "hostname=") {
		t.Errorf("container hostname: want the task's, not the host's %q", hostName)
	}

	code, _, errOut = runCLI(t, ctx, "exec", "--master", addr, "--rootfs", rootfs, "--mem", "32", "--name", "hog", "--",
		"sh", "-c", `x=$(head -c 200000000 /dev/zero | tr '\0' a); echo survived ${#x}`)
	if code == 0 {
		t.Errorf("a task past its 32 MiB exited 0 (stderr %q)", errOut)
	}
	st = waitState(t, addr, "the hog's terminal status", func(s master.State) bool {
		for _, f := range s.CompletedFrameworks {
			if f.Name == "hog" && len(f.Completed) == 1 {
				return true
			}
		}
		return false
	})
	for _, f := range st.CompletedFrameworks {
		if f.Name != "hog" {
			continue
		}
		if tv := f.Completed[0]; tv.State != "TASK_FAILED" || !strings.Contains(tv.Message, "memory limit exceeded: limit 32.0 MiB") {
			t.Errorf("the hog ended %s %q; want TASK_FAILED with the memory limit", tv.State, tv.Message)
		}
	}

	code, _, errOut = runCLI(t, ctx, "exec", "--master", addr, "--rootfs", rootfs, "--timeout", "5s", "--grace", "1s", "--",
		"sh", "-c", "sleep 600 & sleep 600")
	if code == 0 {
		t.Errorf("a task killed at its timeout exited 0 (stderr %q)", errOut)
	}
	deadline := time.Now().Add(time.Minute)
	for len(leftBehind()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := leftBehind(); len(left) > 0 {
		t.Errorf("left behind after the tasks ended: %v", left)
	}
	if n := mountCount(t); n > mountsBefore {
		t.Errorf("%d mounts more than before the cluster started", n-mountsBefore)
	}
}

func mountCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
