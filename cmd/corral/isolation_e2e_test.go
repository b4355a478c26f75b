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
