package command

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/executor/shim"
	"github.com/corral-project/corral/sdk/executor/shim/shimtest"
)

// TestReportShimCost measures what the per-task shim costs, with the real
// binaries: the C corral-shim (what the executor starts), the Go shim built
// alone (corral-shim-go) and the executor's own binary in its shim mode
// (the fallback). Per launch of /bin/true: the time from starting the shim
// to the command running (held at the exec and released, as the executor
// does, or not held), and the CPU time and page faults of the shim process,
// from its rusage, less those of /bin/true started directly (the shim's
// rusage includes the task it reaps); then each shim's resident memory
// while its task runs. All in one run, launches alternated across the
// shims, so that machine load hits every one alike.
//
//	make bench-shim                      (CORRAL_BENCH_SHIM_N=400: more launches)
func TestReportShimCost(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_SHIM") == "" {
		t.Skip("set CORRAL_BENCH_SHIM=1 (make bench-shim) to measure the task shim")
	}
	bin := os.Getenv("CORRAL_BIN_DIR")
	if bin == "" {
		t.Skip("CORRAL_BIN_DIR is unset (make bench-shim sets it)")
	}
	cshim := shimtest.CBinary(t)
	goshim := filepath.Join(bin, "corral-shim-go")
	big := filepath.Join(bin, "plugins", "corral-executor-command")
	for _, p := range []string{goshim, big} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v (make build)", err)
		}
	}
	n := 200
	if v := os.Getenv("CORRAL_BENCH_SHIM_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	paths := []struct {
		name, shim string
		hold       bool
	}{
		{"C corral-shim, held at exec", cshim, true},
		{"C corral-shim, not held", cshim, false},
		{"Go corral-shim-go, held at exec", goshim, true},
		{"Go corral-shim-go, not held", goshim, false},
		{"Go, executor binary as shim, held", big, true},
	}
	type sample struct {
		wall, cpu time.Duration
		minflt    int64
	}
	samples := make([][]sample, len(paths))
	var direct []sample // /bin/true alone: what every shim's rusage includes
	for range n {
		for i, p := range paths {
			start := time.Now()
			task := launchTrue(t, p.shim, p.hold)
			wall := time.Since(start)
			<-task.ShimExited
			ru := task.Shim.ProcessState.SysUsage().(*syscall.Rusage)
			samples[i] = append(samples[i], sample{wall, rusageCPU(ru), ru.Minflt})
		}
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		direct = append(direct, sample{cpu: rusageCPU(ru), minflt: ru.Minflt})
	}
	mean := func(ss []sample) (cpu time.Duration, minflt float64) {
		for _, s := range ss {
			cpu += s.cpu
			minflt += float64(s.minflt)
		}
		return cpu / time.Duration(len(ss)), minflt / float64(len(ss))
	}
	wallQ := func(ss []sample, q float64) time.Duration {
		ds := make([]time.Duration, len(ss))
		for i, s := range ss {
			ds[i] = s.wall
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[int(float64(len(ds))*q)]
	}
	baseCPU, baseFlt := mean(direct)
	c0, _ := mean(samples[0])
	c0 -= baseCPU
	t.Logf("per launch of /bin/true, %d launches each, alternated; CPU and page faults are the shim's rusage (itself, the "+
		"task's fork and exec, the end and its fsync'd record) less /bin/true started directly (%v, %.0f minor faults)",
		n, baseCPU.Round(time.Microsecond), baseFlt)
	t.Logf("| shim | start to running, median | p90 | CPU per launch | minor faults | CPU vs C held |")
	t.Logf("|---|---|---|---|---|---|")
	for i, p := range paths {
		cpu, flt := mean(samples[i])
		cpu -= baseCPU
		t.Logf("| %s | %v | %v | %v | %.0f | %.1fx |", p.name, wallQ(samples[i], 0.5).Round(time.Microsecond),
			wallQ(samples[i], 0.9).Round(time.Microsecond), cpu.Round(time.Microsecond), flt-baseFlt, float64(cpu)/float64(c0))
	}

	// Memory: 20 shims of each binary holding a running task each.
	const m = 20
	mid := func(v []int) int { sort.Ints(v); return v[len(v)/2] }
	t.Logf("shim memory with its task running, median of %d shims (VmRSS counts the binary's pages, shared by all shims; "+
		"RssAnon is private to each shim; Pss is the proportional share)", m)
	t.Logf("the same shims' own CPU from start to holding the running task (the sum of their threads' /proc schedstat run " +
		"times, in ns: not the task's fork and exec, nor the end and its record)")
	t.Logf("| shim | VmRSS KiB | RssAnon KiB | Pss KiB | threads | Pss vs C | shim CPU to running task, median | CPU vs C |")
	t.Logf("|---|---|---|---|---|---|---|---|")
	var cPss int
	var cCPU time.Duration
	for _, p := range []string{cshim, goshim, big} {
		var rss, anon, pss, threads []int
		var cpus []time.Duration
		for range m {
			task, err := shimtest.Start(t, p, t.TempDir(), shim.Options{Hold: true}.Args([]string{"/bin/sleep", "600"})[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Release(); err != nil {
				t.Fatal(err)
			}
			pid := task.Shim.Process.Pid
			rss = append(rss, procKiB(t, pid, "status", "VmRSS:"))
			anon = append(anon, procKiB(t, pid, "status", "RssAnon:"))
			pss = append(pss, procKiB(t, pid, "smaps_rollup", "Pss:"))
			threads = append(threads, procKiB(t, pid, "status", "Threads:"))
			cpus = append(cpus, schedCPU(t, pid))
		}
		sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
		if p == cshim {
			cPss, cCPU = mid(pss), cpus[m/2]
		}
		t.Logf("| %s | %d | %d | %d | %d | %.1fx | %v | %.1fx |", filepath.Base(p), mid(rss), mid(anon), mid(pss), mid(threads),
			float64(mid(pss))/float64(cPss), cpus[m/2].Round(time.Microsecond), float64(cpus[m/2])/float64(cCPU))
	}
}

// launchTrue starts /bin/true as a task through shimBin, as the executor
// does (held at its exec, then released, if hold), and returns once the
// command runs.
func launchTrue(t *testing.T, shimBin string, hold bool) *shimtest.Task {
	t.Helper()
	args := []string{"/bin/true"}
	if hold {
		args = shim.Options{Hold: true}.Args(args)[1:]
	}
	task, err := shimtest.Start(t, shimBin, t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	if hold {
		if err := task.Release(); err != nil {
			t.Fatal(err)
		}
	}
	return task
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// schedCPU is the CPU time pid's threads have run: the first field of
// /proc/<pid>/task/<tid>/schedstat (ns, exact, unlike the tick-sampled
// times of /proc/<pid>/stat).
func schedCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tids, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	for _, tid := range tids {
		b, err := os.ReadFile(dir + "/" + tid.Name() + "/schedstat")
		if err != nil {
			t.Fatal(err)
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			t.Fatalf("%s/%s/schedstat: %v", dir, tid.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// procKiB reads one "Key: N kB" line of /proc/<pid>/<file>.
func procKiB(t *testing.T, pid int, file, key string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/%s", key, pid, file)
	return 0
}
