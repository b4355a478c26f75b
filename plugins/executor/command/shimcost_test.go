package command

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/plugins/executor/command/launch"
	"github.com/corral-project/corral/sdk/executor/shim"
)

// TestReportShimCost measures what the per-task shim costs, with the real
// binaries: the time from starting a task's first process to its command's
// exec, through the launcher alone (how tasks started before the shim),
// through the launcher binary as shim + launcher (the shim as a mode of a
// larger binary) and through corral-shim + launcher (ShimBinary), and each
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
	launcher := filepath.Join(bin, "plugins", LauncherName)
	slim := ShimBinary(launcher)
	if slim == launcher {
		t.Fatalf("no %s beside %s (make build)", shim.BinaryName, launcher)
	}
	n := 200
	if v := os.Getenv("CORRAL_BENCH_SHIM_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	paths := []struct{ name, shim string }{
		{"launcher alone (no shim)", ""},
		{"launcher binary as shim + launcher", launcher},
		{shim.BinaryName + " + launcher", slim},
	}
	times := make([][]time.Duration, len(paths))
	for range 2 {
		for i, p := range paths {
			for range n / 2 {
				sandbox := t.TempDir()
				start := time.Now()
				cmd := startFirstStage(t, launcher, p.shim, sandbox, "/bin/true")
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
	t.Logf("task start to command exec'd, %d launches each, real %s", 2*(n/2), launcher)
	t.Logf("| path | median | p90 | median vs launcher alone |")
	t.Logf("|---|---|---|---|")
	base := med(times[0])
	for i, p := range paths {
		m := med(times[i])
		t.Logf("| %s | %v | %v | %.2fx |", p.name, m.Round(time.Microsecond), p90(times[i]).Round(time.Microsecond), float64(m)/float64(base))
	}

	// Memory: 20 shims of each kind holding a running task each.
	const m = 20
	mid := func(v []int) int { sort.Ints(v); return v[len(v)/2] }
	t.Logf("shim memory with its task running, median of %d shims (VmRSS counts the binary's pages, shared by all shims; "+
		"RssAnon is private to each shim; Pss is the proportional share)", m)
	t.Logf("| shim | VmRSS KiB | RssAnon KiB | Pss KiB | threads |")
	t.Logf("|---|---|---|---|---|")
	for _, p := range paths[1:] {
		var rss, anon, pss, threads []int
		for range m {
			sandbox := t.TempDir()
			cmd := startFirstStage(t, launcher, p.shim, sandbox, "/bin/sleep", "600")
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			pid := cmd.Process.Pid
			rss = append(rss, procKiB(t, pid, "status", "VmRSS:"))
			anon = append(anon, procKiB(t, pid, "status", "RssAnon:"))
			pss = append(pss, procKiB(t, pid, "smaps_rollup", "Pss:"))
			threads = append(threads, procKiB(t, pid, "status", "Threads:"))
		}
		t.Logf("| %s | %d | %d | %d | %d |", filepath.Base(p.shim), mid(rss), mid(anon), mid(pss), mid(threads))
	}
}

// startFirstStage starts argv as a task the way the executor does, through
// the launcher alone (shimBin "") or through shimBin + launcher, and returns
// once the command has been exec'd.
func startFirstStage(t *testing.T, launcher, shimBin, sandbox string, argv ...string) *exec.Cmd {
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
	cmd := exec.Command(launcher, LauncherArg)
	withShim := shimBin != ""
	if withShim {
		cmd = exec.Command(shimBin, shim.Arg, launcher, LauncherArg)
	}
	cmd.Dir = sandbox
	cmd.ExtraFiles = []*os.File{controlR, statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = controlR.Close()
	_ = statusW.Close()
	status := bufio.NewReader(statusR)
	if withShim {
		if _, err := shim.ReadStart(status); err != nil {
			t.Fatal(err)
		}
	}
	plan, _ := json.Marshal(launch.Plan{Path: argv[0], Args: argv})
	if _, err := controlW.Write(append(plan, '\n')); err != nil {
		t.Fatal(err)
	}
	if ready, err := launch.ReadStatus(status); err != nil || !ready {
		t.Fatalf("launcher: ready=%v err=%v", ready, err)
	}
	if _, err := controlW.Write([]byte{launch.GoByte}); err != nil {
		t.Fatal(err)
	}
	_ = controlW.Close()
	if _, err := launch.ReadStatus(status); !errors.Is(err, io.EOF) {
		t.Fatalf("launcher after go: %v", err)
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
