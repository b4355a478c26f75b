package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/plugins/isolator/runc/rootfstest"
	"github.com/corral-project/corral/sdk/cpuprofile"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// TestReportIsolationBench is the figure of issue 7: N tasks (`sleep 600`,
// 0.001 cpus, 4 MiB each; N = 1000 by default) launched at once on one
// agent with the cgroups isolator, against a stand-in master: the time
// until all are RUNNING, the time until all are killed and their cgroups
// gone, the CPU each executor, shim and task spent, and the memory (RSS) of
// the agent, the isolator plugin, the executors and the tasks while all
// run. It is a report, not a check, so it runs only when asked:
//
//	make bench-isolation                 (N=1000)
//	make bench-isolation ISO_TASKS=200
//
// CORRAL_BENCH_ISOLATION_PPROF=DIR also writes CPU profiles into DIR: the
// agent's (this process, with the stand-in master) for the launch and for
// the destroy, agent-launch.pprof and agent-destroy.pprof, and the
// isolator's and executor's (see sdk/cpuprofile), whose -1 file runs from
// the plugin's start to all RUNNING and -2 covers the idle window and the
// destroy.
func TestReportIsolationBench(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_ISOLATION") == "" {
		t.Skip("a report, not a test: run it with `make bench-isolation`")
	}
	n := 1000
	if s := os.Getenv("CORRAL_BENCH_ISOLATION_TASKS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("CORRAL_BENCH_ISOLATION_TASKS=%q: want a positive count", s)
		}
	}
	// CORRAL_BENCH_ISOLATION_ISOLATOR=runc runs the tasks in runc containers
	// (busybox rootfs) instead; CORRAL_BENCH_ISOLATION_MEM sets their mem.
	isoName, memMiB := "cgroups", 4.0
	if s := os.Getenv("CORRAL_BENCH_ISOLATION_ISOLATOR"); s != "" {
		isoName = s
	}
	if s := os.Getenv("CORRAL_BENCH_ISOLATION_MEM"); s != "" {
		var err error
		if memMiB, err = strconv.ParseFloat(s, 64); err != nil || memMiB <= 0 {
			t.Fatalf("CORRAL_BENCH_ISOLATION_MEM=%q: want a positive MiB count", s)
		}
	}
	root := fmt.Sprintf("/corral-test/bench-%d", os.Getpid())
	var cat *pluginhost.Catalog
	var container *corralpb.ContainerInfo
	switch isoName {
	case "cgroups":
		cat = cgroupsCatalog(t, root+"/{agent_id}")
	case "runc":
		cat = runcCatalog(t, root+"/{agent_id}", t.TempDir()+"/{agent_id}")
		container = &corralpb.ContainerInfo{Type: "runc", Rootfs: rootfstest.Busybox(t)}
	default:
		t.Fatalf("CORRAL_BENCH_ISOLATION_ISOLATOR=%q: want cgroups or runc", isoName)
	}
	t.Cleanup(func() {
		for _, rel := range []string{root + "/agent-1", root, "/corral-test"} {
			for _, d := range cgroupDirs(t, rel) {
				_ = os.Remove(d)
			}
		}
	})
	profDir := os.Getenv("CORRAL_BENCH_ISOLATION_PPROF")
	if profDir != "" {
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv(cpuprofile.Env, profDir) // the plugins inherit it
	}
	// CORRAL_BENCH_ISOLATION_LAUNCHES overrides the agent's bound on
	// concurrent launches (0: its default, 4 per CPU).
	launches, _ := strconv.Atoi(os.Getenv("CORRAL_BENCH_ISOLATION_LAUNCHES"))
	// The floor first, on a quiet agent-less process: the same launch
	// with the bare shim and cgroups made here (cgroups isolator only).
	var floor floorReport
	if isoName == "cgroups" {
		par := launches
		if par <= 0 {
			par = 4 * runtime.NumCPU() // the agent's default
		}
		floor = launchFloor(t, root+"/floor", n, par, int64(memMiB*(1<<20)))
	}
	m := startFakeMaster(t)
	a := startAgentWith(t, cat, Config{
		Master: m.addr, Address: "127.0.0.1:0", WorkDir: t.TempDir(), Hostname: "bench-host",
		Resources: resources.MustParse(fmt.Sprintf("cpus:2;mem:%d", int(float64(n)*memMiB)+1024)), Isolator: isoName,
		StatusUpdateRetry: 10 * time.Second, MaxConcurrentLaunches: launches,
	})
	waitFor(t, "registration", 10*time.Second, func() bool { return a.ID() == "agent-1" })
	task := func(ti *corralpb.TaskInfo) {
		ti.Resources = []*corralpb.Resource{
			{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: 0.001}},
			{Name: "mem", Value: &corralpb.Resource_Scalar{Scalar: memMiB}},
		}
		ti.Container = container
		ti.Command = &corralpb.CommandInfo{Value: "sleep", Arguments: []string{"600"}}
	}

	before := processMemory(t)
	agentCPU0, isoCPU0 := before.agentCPU, before.isolatorCPU
	stopProfile := startProfile(t, profDir, "agent-launch.pprof")
	start := time.Now()
	for i := range n {
		m.runTask(t, "bench", fmt.Sprintf("t%04d", i), "", task)
	}
	failedStates := []corralpb.TaskState{corralpb.TaskState_TASK_FAILED, corralpb.TaskState_TASK_ERROR, corralpb.TaskState_TASK_LOST}
	waitFor(t, fmt.Sprintf("%d tasks RUNNING or failed", n), 30*time.Minute, func() bool {
		return m.countState(corralpb.TaskState_TASK_RUNNING)+m.countState(failedStates...) >= n
	})
	toRunning := time.Since(start)
	stopProfile()
	nextPluginProfiles(t, profDir)
	if failed := m.countState(failedStates...); failed > 0 {
		t.Errorf("%d of %d tasks failed to start; first: %s", failed, n, m.firstMessage(failedStates...))
	}

	mem := processMemory(t)
	cgroups := len(childCgroups(t, root+"/agent-1"))
	// The isolator's cost of watching N idle containers for OOM kills.
	const idle = 5 * time.Second
	time.Sleep(idle) // a measuring window, not synchronization
	idleISO := processMemory(t).isolatorCPU - mem.isolatorCPU

	stopProfile = startProfile(t, profDir, "agent-destroy.pprof")
	start = time.Now()
	for i := range n {
		m.killTask(t, "bench", fmt.Sprintf("t%04d", i), 1)
	}
	waitFor(t, fmt.Sprintf("%d tasks KILLED", n), 30*time.Minute, func() bool {
		return m.countState(corralpb.TaskState_TASK_KILLED)+m.countState(failedStates...) >= n
	})
	waitFor(t, "every cgroup removed", 10*time.Minute, func() bool { return len(childCgroups(t, root+"/agent-1")) == 0 })
	toDestroyed := time.Since(start)
	stopProfile()
	nextPluginProfiles(t, profDir)

	per := func(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/float64(n)/(1<<20)) }
	t.Logf("\n%d tasks (sleep 600, cpus 0.001, mem %g MiB) on one agent, %s isolator (%d cgroup directories while running), %d CPUs\n"+
		"| measure | value | target |\n|---|---|---|\n"+
		"| launch to all RUNNING | %.2f s | 5 s |\n"+
		"| the floor: the same launch by the bare shim from one process, no agent, executor or isolator (kernel + shim + command) | %.2f s | |\n"+
		"| floor CPU per task: launcher (cgroups made, shim started) / shim / command | %.2f / %.2f / %.2f ms | |\n"+
		"| kill to all KILLED, cgroups removed | %.2f s | 5 s |\n"+
		"| executor CPU per task (all executor processes' CPU / tasks; %d processes) | %.1f ms | |\n"+
		"| task shim CPU per task (corral-shim: its exec, start and fork; schedstat) | %.2f ms | |\n"+
		"| task CPU per task (the command: from the fork, its exec and start; schedstat) | %.2f ms | |\n"+
		"| agent CPU per task (launch to RUNNING, in-process agent and stand-in master) | %.1f ms | |\n"+
		"| isolator CPU per task (Prepare, Isolate) | %.1f ms | |\n"+
		"| CPU per task, all of the above (budget for the target: %.1f ms on %d CPUs) | %.1f ms | |\n"+
		"| isolator CPU with all containers idle (OOM watch; 5 s window) | %.1f%% of a CPU | |\n"+
		"| agent RSS | %.1f MiB | |\n"+
		"| isolator plugin RSS | %.1f MiB | |\n"+
		"| executors RSS | %.1f MiB (%s per task) | |\n"+
		"| task shims RSS | %.1f MiB (%s per task, %d shims) | < 2 MiB per task |\n"+
		"| task shims Pss (the binary's shared pages split between them) | %.1f MiB (%s per task) | |\n"+
		"| agent + isolator + executors + shims, per container (RSS; shims by Pss) | %s | |\n"+
		"| tasks RSS | %.1f MiB (%s per task) | |\n"+
		"| runc starters RSS (runc only) | %.1f MiB (%s per task) | |",
		n, memMiB, isoName, cgroups, runtime.NumCPU(),
		toRunning.Seconds(), floor.wall.Seconds(),
		floor.launcherCPU.Seconds()*1000/float64(n), floor.shimCPU.Seconds()*1000/float64(n), floor.taskCPU.Seconds()*1000/float64(n),
		toDestroyed.Seconds(),
		mem.executors, mem.executorCPU.Seconds()*1000/float64(n),
		mem.shimCPU.Seconds()*1000/float64(max(mem.shims, 1)),
		mem.taskCPU.Seconds()*1000/float64(max(mem.tasks, 1)),
		(mem.agentCPU-agentCPU0).Seconds()*1000/float64(n),
		(mem.isolatorCPU-isoCPU0).Seconds()*1000/float64(n),
		5000*float64(runtime.NumCPU())/float64(n), runtime.NumCPU(),
		(mem.executorCPU+mem.shimCPU+mem.taskCPU+(mem.agentCPU-agentCPU0)+(mem.isolatorCPU-isoCPU0)).Seconds()*1000/float64(n),
		100*idleISO.Seconds()/idle.Seconds(),
		mib(mem.agent), mib(mem.isolator),
		mib(mem.executorRSS), per(mem.executorRSS),
		mib(mem.shimRSS), per(mem.shimRSS), mem.shims,
		mib(mem.shimPss), per(mem.shimPss),
		per(mem.agent+mem.isolator+mem.executorRSS+mem.shimPss),
		mib(mem.taskRSS), per(mem.taskRSS),
		mib(mem.starterRSS), per(mem.starterRSS))
}

// startProfile profiles this process into dir/name until the returned
// function is called; with no dir it does nothing.
func startProfile(t *testing.T, dir, name string) (stop func()) {
	t.Helper()
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
}

// nextPluginProfiles ends the current CPU profile of every isolator and
// executor plugin this process runs and starts their next (SIGUSR2, see
// sdk/cpuprofile); with no dir it does nothing.
func nextPluginProfiles(t *testing.T, dir string) {
	t.Helper()
	if dir == "" {
		return
	}
	for _, pid := range pluginPids(t) {
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			t.Logf("signal plugin %d for its next profile: %v", pid, err)
		}
	}
}

// pluginPids lists the isolator and executor plugins descending from
// this process.
func pluginPids(t *testing.T) []int {
	t.Helper()
	procs := procTable()
	var out []int
	for pid, p := range procs {
		if (strings.HasPrefix(p.exe, "corral-isolator-") || strings.HasPrefix(p.exe, "corral-executor-")) &&
			procs.descends(pid, os.Getpid()) {
			out = append(out, pid)
		}
	}
	return out
}

// procEntry is what the bench reads of one process in /proc.
type procEntry struct {
	ppid     int
	exe      string // base name of the executable
	rss      uint64
	cpuTicks uint64 // user + system, all threads, in clock ticks
	// runNs is the main thread's time on a CPU in ns (schedstat): exact
	// for the one-threaded shims and tasks, whose few ms each round to
	// zero ticks.
	runNs uint64
}

type procs map[int]procEntry

// procTable reads every process's parent, executable, RSS and CPU time;
// processes that end meanwhile are left out.
func procTable() procs {
	out := procs{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 22 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseUint(f[11], 10, 64)
		stime, _ := strconv.ParseUint(f[12], 10, 64)
		rssPages, _ := strconv.ParseUint(f[21], 10, 64)
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		var runNs uint64
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "schedstat")); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				runNs, _ = strconv.ParseUint(f[0], 10, 64)
			}
		}
		out[pid] = procEntry{ppid: ppid, exe: filepath.Base(exe), rss: rssPages * uint64(os.Getpagesize()), cpuTicks: utime + stime, runNs: runNs}
	}
	return out
}

// descends reports whether pid is a descendant of ancestor.
func (ps procs) descends(pid, ancestor int) bool {
	for p := ps[pid].ppid; p > 1; p = ps[p].ppid {
		if p == ancestor {
			return true
		}
		if _, ok := ps[p]; !ok {
			return false
		}
	}
	return false
}

// countState counts the tasks that reported any of states.
func (m *fakeMaster) countState(states ...corralpb.TaskState) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for _, u := range m.updates {
		if st := u.GetStatus(); slices.Contains(states, st.GetState()) {
			seen[st.GetTaskId()] = true
		}
	}
	return len(seen)
}

// firstMessage is the message of the first update in any of states.
func (m *fakeMaster) firstMessage(states ...corralpb.TaskState) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.updates {
		if st := u.GetStatus(); slices.Contains(states, st.GetState()) {
			return st.GetTaskId() + ": " + st.GetState().String() + ": " + st.GetMessage()
		}
	}
	return ""
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

type memReport struct {
	agent, isolator, executorRSS, taskRSS uint64
	shimRSS, shimPss                      uint64
	shims                                 int
	starterRSS                            uint64
	executors, tasks                      int
	executorCPU, taskCPU, shimCPU         time.Duration
	agentCPU, isolatorCPU                 time.Duration
}

// processMemory sums RSS and CPU time over this process (the agent) and
// its descendants, by kind: the isolator plugin, executor plugins, the
// task shims and the tasks.
func processMemory(t *testing.T) memReport {
	t.Helper()
	self := os.Getpid()
	procs := procTable()
	descends := func(pid int) bool { return procs.descends(pid, self) }
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	var r memReport
	for pid, p := range procs {
		switch {
		case pid == self:
			r.agent = p.rss
			r.agentCPU = time.Duration(p.cpuTicks) * tick
		case strings.HasPrefix(p.exe, "corral-isolator-") && descends(pid):
			r.isolator += p.rss
			r.isolatorCPU += time.Duration(p.cpuTicks) * tick
		case strings.HasPrefix(p.exe, "corral-executor-") && descends(pid):
			r.executorRSS += p.rss
			r.executorCPU += time.Duration(p.cpuTicks) * tick
			r.executors++
		case p.exe == "corral-shim" && descends(pid):
			r.shimRSS += p.rss
			r.shimPss += pss(pid)
			r.shimCPU += time.Duration(p.runNs)
			r.shims++
		case p.exe == "corral-runc-start" && descends(pid):
			r.starterRSS += p.rss
		case (p.exe == "sleep" || p.exe == "busybox") && descends(pid):
			r.taskRSS += p.rss
			r.taskCPU += time.Duration(p.runNs)
			r.tasks++
		}
	}
	return r
}

// pss is pid's proportional set size (smaps_rollup), 0 if unreadable.
func pss(pid int) uint64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
