package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/base"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// cgroupsCatalog is the built plugins with the cgroups isolator configured
// to put its containers under parent; it skips where the test cannot run.
func cgroupsCatalog(t *testing.T, parent string) *pluginhost.Catalog {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("the cgroups isolator needs root to create cgroups; running as euid %d", os.Geteuid())
	}
	pluginCatalog(t) // skips without built plugins
	body, diags := hclsyntax.ParseConfig([]byte(fmt.Sprintf("parent = %q\n", parent)), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	dir := filepath.Join(os.Getenv("CORRAL_BIN_DIR"), "plugins")
	cat := pluginhost.NewCatalog(dir, []conf.Plugin{{Name: "cgroups", Config: body.Body}})
	if _, err := cat.Resolve(base.KindIsolator, "cgroups"); err != nil {
		t.Fatalf("cgroups isolator binary missing in %s (run `make build`): %v", dir, err)
	}
	return cat
}

// cgroupDirs lists rel's directories in every mounted cgroup hierarchy
// (one per v1 controller, or the unified tree), whether they exist or not.
func cgroupDirs(t *testing.T, rel string) []string {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{filepath.Join("/sys/fs/cgroup", rel)}
	}
	mounts, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m, "cgroup.procs")); err == nil {
			out = append(out, filepath.Join(m, rel))
		}
	}
	return out
}

// childCgroups lists the cgroups under rel in every hierarchy.
func childCgroups(t *testing.T, rel string) []string {
	t.Helper()
	var out []string
	for _, d := range cgroupDirs(t, rel) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				out = append(out, filepath.Join(d, e.Name()))
			}
		}
	}
	return out
}

// TestAgentCgroups runs tasks through the real cgroups isolator: an OOM
// ends its task as TASK_FAILED with the memory limitation and numbers, the
// monitor reports limits and usage, and killed or finished tasks leave no
// cgroup behind in any controller.
func TestAgentCgroups(t *testing.T) {
	root := fmt.Sprintf("/corral-test/agent-%d", os.Getpid())
	cat := cgroupsCatalog(t, root+"/{agent_id}")
	t.Cleanup(func() {
		if left := childCgroups(t, root+"/agent-1"); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
		for _, rel := range []string{root + "/agent-1", root, "/corral-test"} {
			for _, d := range cgroupDirs(t, rel) {
				_ = os.Remove(d) // rmdir; the shared root stays while others use it
			}
		}
	})
	// A container left by an earlier run of this agent (same ID, no
	// record of the task): the isolator's Recover must find and destroy it.
	workDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(workDir, "agent_id"), []byte("agent-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	orphan := startOrphan(t, root+"/agent-1/orphan")

	m := startFakeMaster(t)
	a := startAgentWith(t, cat, Config{
		Master: m.addr, Address: "127.0.0.1:0", WorkDir: workDir, Hostname: "test-host",
		Resources: resources.MustParse("cpus:2;mem:1024"), Isolator: "cgroups", Isolators: []string{"process"},
		StatusUpdateRetry: 300 * time.Millisecond,
	})
	waitFor(t, "registration", 10*time.Second, func() bool { return len(m.registrations()) > 0 && a.ID() == "agent-1" })
	if got := m.registrations()[0].GetAgent().GetAttributes()[IsolatorsAttribute]; got != "cgroups,process" {
		t.Errorf("registered %s attribute %q, want \"cgroups,process\"", IsolatorsAttribute, got)
	}
	t.Run("orphan destroyed on start", func(t *testing.T) {
		select {
		case <-orphan:
		case <-time.After(time.Minute):
			t.Fatal("the orphan container's process still runs a minute after the agent started")
		}
		waitFor(t, "the orphan's cgroups removed", 20*time.Second, func() bool { return len(childCgroups(t, root+"/agent-1")) == 0 })
	})
	withMem := func(mib float64) func(*corralpb.TaskInfo) {
		return func(ti *corralpb.TaskInfo) {
			ti.Resources = append(ti.Resources, &corralpb.Resource{Name: "mem", Value: &corralpb.Resource_Scalar{Scalar: mib}})
		}
	}

	t.Run("OOM", func(t *testing.T) {
		// The shell keeps the whole command substitution in memory.
		m.runTask(t, "fw1", "hog", `x=$(head -c 200000000 /dev/zero | tr '\0' a); echo survived ${#x}`, withMem(32))
		sts := m.waitStates(t, "hog", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FAILED)
		last := sts[2]
		if last.GetReason() != corralpb.TaskStatus_REASON_CONTAINER_LIMITATION_MEMORY ||
			!strings.Contains(last.GetMessage(), "limit 32.0 MiB (33554432 bytes)") || !strings.Contains(last.GetMessage(), "peak usage") {
			t.Fatalf("terminal status %v: want reason CONTAINER_LIMITATION_MEMORY and a message with the limit and peak", last)
		}
		t.Logf("OOM status: %s", last.GetMessage())
	})

	t.Run("container type", func(t *testing.T) {
		typed := func(typ string) func(*corralpb.TaskInfo) {
			return func(ti *corralpb.TaskInfo) { ti.Container = &corralpb.ContainerInfo{Type: typ} }
		}
		m.runTask(t, "fw1", "wants-runc", "true", typed("runc"))
		sts := m.waitStates(t, "wants-runc", corralpb.TaskState_TASK_ERROR)
		if msg := sts[0].GetMessage(); sts[0].GetReason() != corralpb.TaskStatus_REASON_INVALID ||
			!strings.Contains(msg, `no "runc" isolator`) || !strings.Contains(msg, "cgroups,process") {
			t.Errorf("refusal %v: want REASON_INVALID naming runc and the isolators the agent has", sts[0])
		}
		m.runTask(t, "fw1", "plain", "sleep 600", typed("process"))
		m.waitStates(t, "plain", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
		var usage []ContainerUsage
		waitFor(t, "the plain task in /api/v1/monitor", 20*time.Second, func() bool {
			code, body := httpGet(t, a.URL()+"/api/v1/monitor")
			usage = nil
			return code == 200 && json.Unmarshal([]byte(body), &usage) == nil && len(usage) == 1
		})
		if u := usage[0]; u.Isolator != "process" || u.MemLimitBytes != 0 {
			t.Errorf("monitor = %+v, want the process isolator and no memory limit", u)
		}
		if left := childCgroups(t, root+"/agent-1"); len(left) != 0 {
			t.Errorf("a task of the process isolator made cgroups: %v", left)
		}
		m.killTask(t, "fw1", "plain", 1)
		m.waitStates(t, "plain", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
	})

	t.Run("monitor and kill", func(t *testing.T) {
		quota := true
		m.runTask(t, "fw1", "sleeper", "sleep 600", withMem(16), func(ti *corralpb.TaskInfo) {
			ti.Container = &corralpb.ContainerInfo{CpuQuota: &quota}
		})
		m.waitStates(t, "sleeper", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING)
		var usage []ContainerUsage
		// RUNNING is sent once the task is released from its hold at exec;
		// on a loaded machine sleep may not have run (nor touched memory
		// charged to its cgroup) by the first read, so wait for both.
		waitFor(t, "the sleeper in /api/v1/monitor, using memory", 20*time.Second, func() bool {
			code, body := httpGet(t, a.URL()+"/api/v1/monitor")
			usage = nil
			return code == 200 && json.Unmarshal([]byte(body), &usage) == nil && len(usage) == 1 &&
				usage[0].Processes >= 1 && usage[0].MemUsageBytes > 0
		})
		if u := usage[0]; u.TaskID != "sleeper" || u.MemLimitBytes != 16<<20 || u.MemUsageBytes == 0 {
			t.Errorf("monitor = %+v, want the sleeper with a 16 MiB limit and some memory used", u)
		}
		// Narrowed to one task (the master's usage endpoint asks so).
		for query, want := range map[string]int{"?framework_id=fw1&task_id=sleeper": 1, "?framework_id=fw1&task_id=other": 0, "?framework_id=fw2": 0} {
			code, body := httpGet(t, a.URL()+"/api/v1/monitor"+query)
			var got []ContainerUsage
			if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got) != want {
				t.Errorf("monitor%s: %d %s; want %d entries", query, code, body, want)
			}
		}
		// The task asked for a hard quota at its 0.1 cpus.
		quotaFile, want := filepath.Join("/sys/fs/cgroup/cpu", root, "agent-1", usage[0].ContainerID, "cpu.cfs_quota_us"), "10000"
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			quotaFile, want = filepath.Join("/sys/fs/cgroup", root, "agent-1", usage[0].ContainerID, "cpu.max"), "10000 100000"
		}
		if got, err := os.ReadFile(quotaFile); err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s = %q, %v; want %q", quotaFile, got, err, want)
		}
		_, metrics := httpGet(t, a.URL()+"/metrics")
		labels := `{container_id="` + usage[0].ContainerID + `",framework_id="fw1",task_id="sleeper"}`
		for _, want := range []string{
			"corral_container_memory_limit_bytes" + labels + " 1.6777216e+07",
			`corral_container_cpu_seconds_total{container_id="` + usage[0].ContainerID + `",framework_id="fw1",mode="user",task_id="sleeper"}`,
			"corral_container_memory_bytes" + labels,
			"corral_container_processes" + labels,
			"corral_container_oom_kills_total" + labels + " 0",
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if left := childCgroups(t, root+"/agent-1"); len(left) == 0 {
			t.Errorf("no cgroup for the running task under %s", root+"/agent-1")
		}
		// The isolator dies and is restarted: Recover keeps the running
		// container, and its usage and cleanup still work.
		isoPid := childProcess(t, "corral-isolator-cgroups")
		if err := syscall.Kill(isoPid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill isolator plugin %d: %v", isoPid, err)
		}
		waitFor(t, "a new isolator plugin serving the sleeper's usage", time.Minute, func() bool {
			code, body := httpGet(t, a.URL()+"/api/v1/monitor")
			usage = nil
			return code == 200 && json.Unmarshal([]byte(body), &usage) == nil && len(usage) == 1 &&
				usage[0].MemLimitBytes == 16<<20 && childProcess(t, "corral-isolator-cgroups") != isoPid
		})
		m.killTask(t, "fw1", "sleeper", 1)
		m.waitStates(t, "sleeper", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLED)
		waitFor(t, "the container's cgroups removed", 20*time.Second, func() bool { return len(childCgroups(t, root+"/agent-1")) == 0 })
	})
}

// startOrphan makes cgroup rel in every hierarchy, as the cgroups isolator
// would, with a `sleep 600` inside; the channel closes when sleep ends.
func startOrphan(t *testing.T, rel string) <-chan struct{} {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		for _, d := range cgroupDirs(t, rel) {
			_ = os.Remove(d)
		}
	})
	pid := []byte(strconv.Itoa(cmd.Process.Pid))
	dirs := cgroupDirs(t, rel)
	v1Controllers := map[string]bool{"cpu": true, "cpuacct": true, "memory": true, "pids": true, "freezer": true}
	for _, d := range dirs {
		if ctl := filepath.Base(strings.TrimSuffix(d, rel)); len(dirs) > 1 && !v1Controllers[ctl] {
			continue // on v1 the isolator uses these controllers only
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), pid, 0); err != nil {
			t.Fatalf("put pid %s in %s: %v", pid, d, err)
		}
	}
	return done
}

// childProcess is the pid of this process's child running exe (by base
// name), or 0.
func childProcess(t *testing.T, exe string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		path, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || filepath.Base(path) != exe {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+2:]); len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && f[0] != "Z" {
				return pid
			}
		}
	}
	return 0
}
