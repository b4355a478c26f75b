package command

import (
	"bufio"
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
)

// TestReportShimCost measures what the per-task shim costs, with the real
// binaries: the time from starting a task's shim to its command running,
// through corral-shim held at the exec as the executor does (limits,
// cgroups, Isolate in between), through corral-shim without the hold, and
// through a larger binary (the executor's) in its shim mode; and each
// shim's resident memory while its task runs. All in one run, alternated,
// so that machine load hits every path alike.
//
//	make bench-shim
func TestReportShimCost(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_SHIM") == "" {
		t.Skip("set CORRAL_BENCH_SHIM=1 (make bench-shim) to measure the task shim")
	}
	bin := os.Getenv("CORRAL_BIN_DIR")
	if bin == "" {
		t.Skip("CORRAL_BIN_DIR is unset (make bench-shim sets it)")
	}
	slim := ShimBeside(filepath.Join(bin, "plugins"))
	if slim == "" {
		t.Fatalf("no %s in %s/plugins (make build)", shim.BinaryName, bin)
	}
	big := filepath.Join(bin, "plugins", "corral-executor-command")
	n := 200
	if v := os.Getenv("CORRAL_BENCH_SHIM_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	paths := []struct {
		name, shim string
		hold       bool
	}{
		{shim.BinaryName + ", held at exec", slim, true},
		{shim.BinaryName + ", not held", slim, false},
		{"executor binary as shim, held at exec", big, true},
	}
	times := make([][]time.Duration, len(paths))
	for range 2 {
		for i, p := range paths {
			for range n / 2 {
				sandbox := t.TempDir()
				start := time.Now()
				cmd := startShimmed(t, p.shim, p.hold, sandbox, "/bin/true")
				times[i] = append(times[i], time.Since(start))
				_ = cmd.Wait()
			}
		}
	}
	med := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	p90 := func(ds []time.Duration) time.Duration { return ds[len(ds)*9/10] }
	t.Logf("shim start to command running, %d launches each", 2*(n/2))
	t.Logf("| path | median | p90 | median vs first |")
	t.Logf("|---|---|---|---|")
	base := med(times[0])
	for i, p := range paths {
		m := med(times[i])
		t.Logf("| %s | %v | %v | %.2fx |", p.name, m.Round(time.Microsecond), p90(times[i]).Round(time.Microsecond), float64(m)/float64(base))
	}

	// Memory: 20 shims of each binary holding a running task each.
	const m = 20
	mid := func(v []int) int { sort.Ints(v); return v[len(v)/2] }
	t.Logf("shim memory with its task running, median of %d shims (VmRSS counts the binary's pages, shared by all shims; "+
		"RssAnon is private to each shim; Pss is the proportional share)", m)
	t.Logf("| shim | VmRSS KiB | RssAnon KiB | Pss KiB | threads |")
	t.Logf("|---|---|---|---|---|")
	for _, p := range []string{slim, big} {
		var rss, anon, pss, threads []int
		for range m {
			sandbox := t.TempDir()
			cmd := startShimmed(t, p, true, sandbox, "/bin/sleep", "600")
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			pid := cmd.Process.Pid
			rss = append(rss, procKiB(t, pid, "status", "VmRSS:"))
			anon = append(anon, procKiB(t, pid, "status", "RssAnon:"))
			pss = append(pss, procKiB(t, pid, "smaps_rollup", "Pss:"))
			threads = append(threads, procKiB(t, pid, "status", "Threads:"))
		}
		t.Logf("| %s | %d | %d | %d | %d |", filepath.Base(p), mid(rss), mid(anon), mid(pss), mid(threads))
	}
}

// startShimmed starts argv as a task the way the executor does, through
// shimBin (held at its exec, then released, if hold), and returns once the
// command runs.
func startShimmed(t *testing.T, shimBin string, hold bool, sandbox string, argv ...string) *exec.Cmd {
	t.Helper()
	controlR, controlW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer statusR.Close()
	defer controlW.Close()
	cmd := exec.Command(shimBin, shim.Options{Hold: hold}.Args(argv)...)
	if !hold {
		cmd = exec.Command(shimBin, append([]string{shim.Arg}, argv...)...)
	}
	cmd.Dir = sandbox
	cmd.ExtraFiles = []*os.File{controlR, statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = controlR.Close()
	_ = statusW.Close()
	if _, err := shim.ReadStart(bufio.NewReader(statusR)); err != nil {
		t.Fatal(err)
	}
	if hold {
		if _, err := controlW.Write([]byte{shim.GoByte}); err != nil {
			t.Fatal(err)
		}
	}
	return cmd
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
