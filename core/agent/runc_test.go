package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/plugins/isolator/runc/rootfstest"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// runcCatalog is the built plugins with the runc isolator configured to put
// its cgroups under parent and its state under stateDir.
func runcCatalog(t *testing.T, parent, stateDir string) *pluginhost.Catalog {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("the runc isolator needs root to make containers; running as euid %d", os.Geteuid())
	}
	pluginCatalog(t) // skips without built plugins
	body, diags := hclsyntax.ParseConfig([]byte(fmt.Sprintf("parent = %q\nstate_dir = %q\n", parent, stateDir)), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	dir := filepath.Join(os.Getenv("CORRAL_BIN_DIR"), "plugins")
	cat := pluginhost.NewCatalog(dir, []conf.Plugin{{Name: "runc", Config: body.Body}})
	if _, err := cat.Resolve(base.KindIsolator, "runc"); err != nil {
		t.Fatalf("runc isolator binary missing in %s (run `make build`): %v", dir, err)
	}
	return cat
}

// withRootfs runs a task in the runc isolator with the busybox rootfs.
func withRootfs(rootfs string, mib float64) func(*corralpb.TaskInfo) {
	return func(ti *corralpb.TaskInfo) {
		ti.Container = &corralpb.ContainerInfo{Type: "runc", Rootfs: rootfs}
		ti.Resources = append(ti.Resources, &corralpb.Resource{Name: "mem", Value: &corralpb.Resource_Scalar{Scalar: mib}})
	}
}

// TestAgentRuncIsolatorRestart: a task in a runc container survives the
// death of the isolator plugin: the restarted plugin recovers it (usage
// still served), and killing it afterwards leaves no cgroup in any
// hierarchy, no container state and no process behind.
func TestAgentRuncIsolatorRestart(t *testing.T) {
	root := fmt.Sprintf("/corral-test/agent-runc-%d", os.Getpid())
	state := t.TempDir()
	cat := runcCatalog(t, root+"/{agent_id}", state+"/{agent_id}")
	rootfs := rootfstest.Busybox(t)
	t.Cleanup(func() {
		if left := childCgroups(t, root+"/agent-1"); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
		for _, rel := range []string{root + "/agent-1", root, "/corral-test"} {
			for _, d := range cgroupDirs(t, rel) {
				_ = os.Remove(d)
			}
		}
	})
	workDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(workDir, "agent_id"), []byte("agent-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := startFakeMaster(t)
	a := startAgentWith(t, cat, Config{
		Master: m.addr, Address: "127.0.0.1:0", WorkDir: workDir, Hostname: "test-host",
		Resources: resources.MustParse("cpus:2;mem:1024"), Isolator: "runc",
		StatusUpdateRetry: 300 * time.Millisecond,
	})
	waitFor(t, "registration", 10*time.Second, func() bool { return len(m.registrations()) > 0 && a.ID() == "agent-1" })

	m.runTask(t, "fw1", "sleeper", "sleep 600", withRootfs(rootfs, 32))
	m.waitStates(t, "sleeper", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
	var usage []ContainerUsage
	waitFor(t, "the sleeper in /api/v1/monitor", 30*time.Second, func() bool {
		code, body := httpGet(t, a.URL()+"/api/v1/monitor")
		usage = nil
		return code == 200 && json.Unmarshal([]byte(body), &usage) == nil && len(usage) == 1 && usage[0].Processes == 1
	})
	if u := usage[0]; u.Isolator != "runc" || u.MemLimitBytes != 32<<20 {
		t.Errorf("monitor = %+v, want the runc isolator and a 32 MiB limit", u)
	}
	containerDir := filepath.Join(state, "agent-1", usage[0].ContainerID)
	if _, err := os.Stat(containerDir); err != nil {
		t.Fatalf("no container state at %s: %v", containerDir, err)
	}
	var pids []byte
	for _, d := range cgroupDirs(t, root+"/agent-1/"+usage[0].ContainerID) {
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil && len(b) > 0 {
			pids = b
			break
		}
	}
	if len(pids) == 0 {
		t.Fatal("the container's cgroups list no process")
	}
	// A pid with its start time: pids are reused quickly on a busy machine.
	starts := map[string]string{}
	for _, p := range strings.Fields(string(pids)) {
		starts[p] = startTicks(p)
	}

	isoPid := childProcess(t, "corral-isolator-runc")
	if err := syscall.Kill(isoPid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill isolator plugin %d: %v", isoPid, err)
	}
	waitFor(t, "a new isolator plugin serving the sleeper's usage", time.Minute, func() bool {
		code, body := httpGet(t, a.URL()+"/api/v1/monitor")
		usage = nil
		return code == 200 && json.Unmarshal([]byte(body), &usage) == nil && len(usage) == 1 &&
			usage[0].MemLimitBytes == 32<<20 && usage[0].Processes == 1 && childProcess(t, "corral-isolator-runc") != isoPid
	})

	m.killTask(t, "fw1", "sleeper", 1)
	m.waitStates(t, "sleeper", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
	waitFor(t, "the container's cgroups and state removed", 30*time.Second, func() bool {
		_, err := os.Stat(containerDir)
		return len(childCgroups(t, root+"/agent-1")) == 0 && os.IsNotExist(err)
	})
	// Killed processes leave the cgroup at once but stay zombies until
	// their parent (the starter) reaps them: wait for that too.
	waitFor(t, "the container's processes gone and reaped", 30*time.Second, func() bool {
		for p, started := range starts {
			if startTicks(p) == started {
				return false
			}
		}
		return true
	})
}

// startTicks is field 22 of /proc/<pid>/stat, "" if the process is gone.
func startTicks(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 {
		if f := strings.Fields(s[i+2:]); len(f) > 19 {
			return f[19]
		}
	}
	return ""
}
