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
// corral-launcher binary: the time from starting a task's first process to
// its command's exec, through the launcher alone (how tasks started before
// the shim) and through shim + launcher (now), and the shim's resident
// memory while its task runs.
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
	n := 200
	if v := os.Getenv("CORRAL_BENCH_SHIM_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	measure := func(withShim bool) []time.Duration {
		var ds []time.Duration
		for range n {
			sandbox := t.TempDir()
			start := time.Now()
			cmd := startFirstStage(t, launcher, sandbox, withShim, "/bin/true")
			ds = append(ds, time.Since(start))
			_ = cmd.Wait()
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds
	}
	// Alternate, so that machine load hits both alike.
	direct, shimmed := measure(false), measure(true)
	direct2, shimmed2 := measure(false), measure(true)
	direct, shimmed = append(direct, direct2...), append(shimmed, shimmed2...)
	sort.Slice(direct, func(i, j int) bool { return direct[i] < direct[j] })
	sort.Slice(shimmed, func(i, j int) bool { return shimmed[i] < shimmed[j] })

	// Memory: 20 shims holding a running task each.
	const m = 20
	var rss, anon, pss []int
	for range m {
		sandbox := t.TempDir()
		cmd := startFirstStage(t, launcher, sandbox, true, "/bin/sleep", "600")
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		pid := cmd.Process.Pid
		rss = append(rss, procKiB(t, pid, "status", "VmRSS:"))
		anon = append(anon, procKiB(t, pid, "status", "RssAnon:"))
		pss = append(pss, procKiB(t, pid, "smaps_rollup", "Pss:"))
	}
	med := func(ds []time.Duration) time.Duration { return ds[len(ds)/2] }
	p90 := func(ds []time.Duration) time.Duration { return ds[len(ds)*9/10] }
	t.Logf("task start to command exec'd, %d launches each, real %s", 2*n, launcher)
	t.Logf("| path | median | p90 | median vs launcher alone |")
	t.Logf("|---|---|---|---|")
	t.Logf("| launcher alone (before the shim) | %v | %v | 1.00x |", med(direct).Round(time.Microsecond), p90(direct).Round(time.Microsecond))
	t.Logf("| shim + launcher | %v | %v | %.2fx |", med(shimmed).Round(time.Microsecond), p90(shimmed).Round(time.Microsecond), float64(med(shimmed))/float64(med(direct)))
	mid := func(v []int) int { sort.Ints(v); return v[len(v)/2] }
	t.Logf("shim memory with its task running, median of %d shims: VmRSS %d KiB (binary pages shared by all shims included), "+
		"RssAnon %d KiB (private to each shim), Pss %d KiB (proportional share)", m, mid(rss), mid(anon), mid(pss))
}

// startFirstStage starts argv as a task the way the executor does, through
// the launcher alone or through shim + launcher, and returns once the
// command has been exec'd.
func startFirstStage(t *testing.T, launcher, sandbox string, withShim bool, argv ...string) *exec.Cmd {
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
	args := []string{LauncherArg}
	if withShim {
		args = []string{shim.Arg, launcher, LauncherArg}
	}
	cmd := exec.Command(launcher, args...)
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
