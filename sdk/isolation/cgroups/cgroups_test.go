package cgroups

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/pluginapi/isolator/contracttest"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

func TestContract(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) isolator.Isolator { return testIsolator(t, `{}`) })
}

func TestContractOverGRPC(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) isolator.Isolator {
		return contracttest.InProcess(t, testIsolator(t, `{}`))
	})
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    settings
		wantErr []string
	}{
		{name: "defaults", json: `{}`, want: settings{parent: DefaultParent}},
		{name: "everything", json: `{"parent": "/x/{agent_id}/", "cpu_quota": true, "pids_limit": 64, "swap_mib": 2, "oom_poll": "1s"}`,
			want: settings{parent: "/x/{agent_id}", cpuQuota: true, pidsLimit: 64, swapBytes: 2 * mib, oomPollSet: true}},
		{name: "bad values named", json: `{"parent": "/", "pids_limit": -1, "swap_mib": -2, "oom_poll": "soon"}`,
			wantErr: []string{`parent = "/"`, "pids_limit = -1", "swap_mib = -2", `oom_poll = "soon"`}},
		{name: "climbing parent", json: `{"parent": "/corral/../etc"}`, wantErr: []string{`parent = "/corral/../etc"`}},
		{name: "unknown attribute", json: `{"cpu_quotas": true}`, wantErr: []string{"cpu_quotas"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tt.json), DefaultParent)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("parseConfig(%s) = %+v, want an error", tt.json, got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseConfig(%s) = %+v, %v; want %+v", tt.json, got, err, tt.want)
			}
		})
	}
}

// TestLimitsWritten checks that a container's resources arrive in the
// kernel's files, read back through the library, and that Update changes
// them.
func TestLimitsWritten(t *testing.T) {
	iso := testIsolator(t, `{"cpu_quota": true, "pids_limit": 50}`)
	h := iso.Hierarchy()
	spec := prepare(t, iso, "limits", "cpus:1.5;mem:48")
	rel := filepath.Join(iso.Parent(), "limits")
	if len(spec.CgroupProcs) != len(h.Dirs(rel)) {
		t.Errorf("CgroupProcs = %v, want one per cgroup directory %v", spec.CgroupProcs, h.Dirs(rel))
	}
	for _, p := range spec.CgroupProcs {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("CgroupProcs file: %v", err)
		}
	}
	check := func(wantShares uint64, wantQuota int64, wantMem int64) {
		t.Helper()
		cpuDir, memDir, pidsDir := h.main(rel), h.main(rel), h.main(rel)
		sharesFile, quotaFile, memFile, pidsFile := "cpu.weight", "cpu.max", "memory.max", "pids.max"
		wantSharesText := uintText(cgroups.ConvertCPUSharesToCgroupV2Value(wantShares))
		wantQuotaText := intText(wantQuota) + " 100000"
		if !h.Unified {
			cpuDir, pidsDir = h.Paths(rel)["cpu"], h.Paths(rel)["pids"]
			sharesFile, quotaFile, memFile = "cpu.shares", "cpu.cfs_quota_us", "memory.limit_in_bytes"
			wantSharesText, wantQuotaText = uintText(wantShares), intText(wantQuota)
		}
		for _, c := range []struct{ dir, file, want string }{
			{cpuDir, sharesFile, wantSharesText},
			{cpuDir, quotaFile, wantQuotaText},
			{memDir, memFile, intText(wantMem)},
			{pidsDir, pidsFile, "50"},
		} {
			got, err := cgroups.ReadFile(c.dir, c.file)
			if err != nil || strings.TrimSpace(got) != c.want {
				t.Errorf("%s/%s = %q, %v; want %q", c.dir, c.file, strings.TrimSpace(got), err, c.want)
			}
		}
	}
	check(1536, 150000, 48*mib)
	if err := iso.Update(testCtx(t), "limits", resources.MustParse("cpus:0.25;mem:64")); err != nil {
		t.Fatalf("Update: %v", err)
	}
	check(256, 25000, 64*mib)
}

func uintText(v uint64) string { return strconv.FormatUint(v, 10) }
func intText(v int64) string   { return strconv.FormatInt(v, 10) }
func itoa(v int64) string      { return strconv.FormatInt(v, 10) }

// TestMemoryLimitOOM: a task allocating past its mem is OOM-killed, Watch
// reports the limitation with the limit and the peak, and Usage counts it.
func TestMemoryLimitOOM(t *testing.T) {
	iso := testIsolator(t, `{}`)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	lims, err := iso.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	prepare(t, iso, "hog", "cpus:0.5;mem:32")
	w := start(t, iso, "hog", helper("alloc", "256"))
	var lim isolator.Limitation
	select {
	case lim = <-lims:
	case <-time.After(time.Minute):
		t.Fatal("no limitation reported within a minute of starting a 256 MiB allocation in a 32 MiB container")
	}
	if lim.ContainerID != "hog" || lim.Reason != isolator.ReasonMemory {
		t.Errorf("limitation = %+v, want container hog, reason %q", lim, isolator.ReasonMemory)
	}
	if !strings.Contains(lim.Message, "limit 32.0 MiB (33554432 bytes)") || !strings.Contains(lim.Message, "peak usage") {
		t.Errorf("message %q does not give the limit (32 MiB) and the peak", lim.Message)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("the OOM killer did not end the workload")
	}
	if ws, ok := w.state.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("workload ended with %v, want killed by SIGKILL", w.state)
	}
	u := usage(t, iso, "hog")
	if u.OOMKills < 1 || u.MemLimitBytes != 32*mib || u.MemPeakBytes < 30*mib {
		t.Errorf("usage after OOM = %+v, want OOMKills >= 1, limit 32 MiB, peak near the limit", u)
	}
	t.Logf("OOM reported: %s; usage: peak %d bytes, limit %d, oom kills %d", lim.Message, u.MemPeakBytes, u.MemLimitBytes, u.OOMKills)
}

// TestMemoryUsageMeasured: memory within the limit is reported as usage.
func TestMemoryUsageMeasured(t *testing.T) {
	iso := testIsolator(t, `{}`)
	prepare(t, iso, "mem", "cpus:0.5;mem:128")
	w := start(t, iso, "mem", helper("alloc", "40"))
	if line, err := w.stdout.ReadString('\n'); err != nil || !strings.HasPrefix(line, "allocated 40") {
		t.Fatalf("helper said %q, %v", line, err)
	}
	u := usage(t, iso, "mem")
	if !u.Found || u.MemRSSBytes < 40*mib || u.MemUsageBytes < u.MemRSSBytes || u.MemPeakBytes < u.MemUsageBytes ||
		u.MemLimitBytes != 128*mib || u.Processes != 1 {
		t.Errorf("usage = %+v, want rss >= 40 MiB <= usage <= peak, limit 128 MiB, 1 process", u)
	}
}

// TestCPUSharesUnderContention: two containers with cpus 1 and 3, each
// with more busy processes than the machine has cores, split CPU time
// about 1:3.
//
// Both run on one CPU (taskset), where the two groups' weights decide
// alone. Spread over the machine, the scheduler balanced their tasks
// across CPUs against whatever else ran there (the other test packages
// of make test), and the split wandered: 1:1.4 once in .ci/run.
func TestCPUSharesUnderContention(t *testing.T) {
	iso := testIsolator(t, `{}`)
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	cpu := 0
	for !set.IsSet(cpu) {
		cpu++
	}
	spin := fmt.Sprintf("exec taskset -c %d sh -c 'for i in 1 2 3; do (while :; do :; done) & done; while :; do :; done'", cpu)
	prepare(t, iso, "small", "cpus:1;mem:32")
	prepare(t, iso, "large", "cpus:3;mem:32")
	start(t, iso, "small", shell(spin))
	start(t, iso, "large", shell(spin))
	used := func(id string) float64 {
		u := usage(t, iso, id)
		return u.CPUUserSeconds + u.CPUSystemSeconds
	}
	// Measure from a point where both are running, over 4 CPU-seconds
	// (4 s at best: they share one CPU).
	waitFor(t, time.Minute, "both containers to use CPU", func() bool { return used("small") > 0.05 && used("large") > 0.05 })
	s0, l0 := used("small"), used("large")
	var ds, dl float64
	waitFor(t, 2*time.Minute, "4 CPU-seconds of contention", func() bool {
		ds, dl = used("small")-s0, used("large")-l0
		return ds+dl >= 4
	})
	ratio := ds / dl
	t.Logf("CPU time under contention: cpus 1 got %.2fs, cpus 3 got %.2fs: ratio %.3f (ideal 0.333)", ds, dl, ratio)
	// The band is wide because other work on the machine competes with
	// both containers (make test-stress measured 0.132 with a busy loop on
	// every core): what it must catch is shares not applied, which gives
	// about 1:1, or applied the wrong way round.
	if ratio < 0.08 || ratio > 0.6 {
		t.Errorf("ratio %.3f outside the band [0.08, 0.6] around 1:3", ratio)
	}
}

// TestHardQuotaCapsBusyLoop: with cpu_quota, a container of 0.5 cpus
// running two busy loops uses at most about half a CPU per CFS period, as
// the kernel counts periods.
func TestHardQuotaCapsBusyLoop(t *testing.T) {
	iso := testIsolator(t, `{"cpu_quota": true}`)
	prepare(t, iso, "capped", "cpus:0.5;mem:32")
	start(t, iso, "capped", shell("(while :; do :; done) & while :; do :; done"))
	var u isolator.Usage
	// On a quiet machine the loops hit the quota within a few periods. On
	// a saturated one (make test-stress) the container may get less than
	// its half CPU and never be throttled; the cap must hold all the same,
	// so 200 periods (20 s of runnable time) do too.
	waitFor(t, 2*time.Minute, "20 throttled periods, or 200 periods", func() bool {
		u = usage(t, iso, "capped")
		return u.CPUThrottledPeriods >= 20 || u.CPUPeriods >= 200
	})
	used := u.CPUUserSeconds + u.CPUSystemSeconds
	allowed := float64(u.CPUPeriods) * 0.1 * 0.5 // periods of 100 ms, half a CPU each
	t.Logf("quota 0.5 cpus: used %.2fs of CPU over %d periods (%.2fs allowed), throttled in %d periods for %.2fs",
		used, u.CPUPeriods, allowed, u.CPUThrottledPeriods, u.CPUThrottledSeconds)
	// One period of slack: the first may start before the quota applies.
	if used > allowed+0.1 {
		t.Errorf("used %.2fs CPU in %d periods, more than the quota's %.2fs", used, u.CPUPeriods, allowed)
	}
}

// TestPidsLimitStopsForkBomb: a container limited to 20 processes cannot
// start 100, and Cleanup still kills all it did start.
func TestPidsLimitStopsForkBomb(t *testing.T) {
	iso := testIsolator(t, `{"pids_limit": 20}`)
	prepare(t, iso, "bomb", "cpus:0.5;mem:64")
	w := start(t, iso, "bomb", helper("fork", "100"))
	line, err := w.stdout.ReadString('\n')
	var started, failed int
	if _, serr := fmt.Sscanf(line, "started %d failed %d", &started, &failed); err != nil || serr != nil {
		t.Fatalf("fork loop said %q, %v", line, err)
	}
	u := usage(t, iso, "bomb")
	if started+failed != 100 || failed == 0 || u.Processes > 20 || u.PidsLimit != 20 {
		t.Errorf("fork loop started %d and failed %d; usage = %+v; want failures, at most 20 processes and a limit of 20",
			started, failed, u)
	}
	t.Logf("fork loop of 100: %d started, %d refused; %d processes in the container", started, failed, u.Processes)
	if err := iso.Cleanup(testCtx(t), "bomb"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("workload still running a minute after Cleanup")
	}
}

// TestCleanupKillsEverything: processes that left the task's session and
// process group are still in the cgroup, and Cleanup kills them and
// removes the cgroup from every controller.
func TestCleanupKillsEverything(t *testing.T) {
	iso := testIsolator(t, `{}`)
	prepare(t, iso, "escape", "cpus:0.5;mem:64")
	w := start(t, iso, "escape", shell("setsid sleep 600 & setsid sleep 600 & echo started; exec sleep 600"))
	if line, err := w.stdout.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("workload said %q, %v", line, err)
	}
	h := iso.Hierarchy()
	rel := filepath.Join(iso.Parent(), "escape")
	var pids []int
	waitFor(t, time.Minute, "three processes in the cgroup", func() bool {
		pids, _ = h.Pids(rel)
		return len(pids) == 3
	})
	if err := iso.Cleanup(testCtx(t), "escape"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(filepath.Join("/proc", itoa(int64(pid)))); err == nil {
			// Zombies of the test's own child are reaped by Wait; others
			// were reparented to init, which reaps them.
			waitFor(t, time.Minute, "pid "+itoa(int64(pid))+" to disappear", func() bool {
				st, err := os.ReadFile(filepath.Join("/proc", itoa(int64(pid)), "stat"))
				return err != nil || strings.Contains(string(st), ") Z ")
			})
		}
	}
	if h.Exists(rel) {
		t.Errorf("cgroup %s still exists in some controller after Cleanup: %v", rel, h.Dirs(rel))
	}
	if u := usage(t, iso, "escape"); u.Found {
		t.Errorf("usage after Cleanup = %+v, want not found", u)
	}
}

// TestRecoverFindsOrphans: a restarted isolator keeps the containers the
// agent knows and returns the others, which Cleanup then removes.
func TestRecoverFindsOrphans(t *testing.T) {
	first := testIsolator(t, `{}`)
	prepare(t, first, "known", "cpus:0.5;mem:32")
	prepare(t, first, "forgotten", "cpus:0.5;mem:32")
	w := start(t, first, "forgotten", shell("exec sleep 600"))

	second := New(first.logger, WithDefaultParent(first.set.parent))
	if err := second.SetConfig(testCtx(t), []byte(`{}`), "v1"); err != nil {
		t.Fatal(err)
	}
	orphans, err := second.Recover(testCtx(t), "", []isolator.ContainerState{
		{ContainerID: "known", Resources: resources.MustParse("cpus:0.5;mem:32")},
		{ContainerID: "gone", Resources: resources.MustParse("cpus:0.5;mem:32")},
	})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if !slices.Equal(orphans, []string{"forgotten"}) {
		t.Errorf("orphans = %v, want [forgotten]", orphans)
	}
	if u := usage(t, second, "known"); !u.Found || u.MemLimitBytes != 32*mib {
		t.Errorf("usage of recovered container = %+v, want found with its limit", u)
	}
	if err := second.Cleanup(testCtx(t), "forgotten"); err != nil {
		t.Fatalf("Cleanup(orphan): %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("orphan's process still running a minute after Cleanup")
	}
}

func TestPrepareRefusesPathIDs(t *testing.T) {
	iso := testIsolator(t, `{}`)
	for _, id := range []string{"", ".", "..", "a/b", "../x"} {
		if _, err := iso.Prepare(testCtx(t), isolator.PrepareRequest{ContainerID: id}); err == nil {
			t.Errorf("Prepare(%q) succeeded", id)
		}
	}
}

// TestTaskQuotaChoice: a task's own cpu_quota choice wins over the config.
func TestTaskQuotaChoice(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name   string
		config string
		task   *bool
		want   bool
	}{
		{"config off, task unset", `{}`, nil, false},
		{"config off, task on", `{}`, &yes, true},
		{"config on, task unset", `{"cpu_quota": true}`, nil, true},
		{"config on, task off", `{"cpu_quota": true}`, &no, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso := testIsolator(t, tt.config)
			if _, err := iso.Prepare(testCtx(t), isolator.PrepareRequest{ContainerID: "q",
				Resources: resources.MustParse("cpus:0.3;mem:16"), CPUQuota: tt.task}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = iso.Cleanup(context.Background(), "q") })
			h, rel := iso.Hierarchy(), filepath.Join(iso.Parent(), "q")
			dir, file, capped := h.Paths(rel)["cpu"], "cpu.cfs_quota_us", "30000"
			if h.Unified {
				dir, file, capped = h.main(rel), "cpu.max", "30000 100000"
			}
			got, err := cgroups.ReadFile(dir, file)
			if err != nil {
				t.Fatal(err)
			}
			if isCapped := strings.TrimSpace(got) == capped; isCapped != tt.want {
				t.Errorf("%s/%s = %q; want capped=%v", dir, file, strings.TrimSpace(got), tt.want)
			}
		})
	}
}

// TestCleanupKillsInSubCgroups: a process a task moved into a cgroup of its
// own below the container's is still found, killed and removed by Cleanup
// (Pids reads only cgroup.procs unless the container has sub-cgroups).
func TestCleanupKillsInSubCgroups(t *testing.T) {
	iso := testIsolator(t, `{}`)
	prepare(t, iso, "nested", "cpus:0.5;mem:64")
	w := start(t, iso, "nested", shell("echo started; exec sleep 600"))
	if line, err := w.stdout.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("workload said %q, %v", line, err)
	}
	h := iso.Hierarchy()
	rel := filepath.Join(iso.Parent(), "nested")
	sub := filepath.Join(rel, "inner")
	for _, d := range h.Dirs(sub) {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := cgroups.WriteCgroupProc(d, w.cmd.Process.Pid); err != nil {
			t.Fatalf("move the workload to %s: %v", d, err)
		}
	}
	if pids, err := cgroups.GetPids(h.main(rel)); err != nil || len(pids) != 0 {
		t.Fatalf("container's own cgroup.procs = %v, %v; want the workload moved below it", pids, err)
	}
	if pids, err := h.Pids(rel); err != nil || !slices.Equal(pids, []int{w.cmd.Process.Pid}) {
		t.Errorf("Pids(%s) = %v, %v; want the workload %d in the sub-cgroup", rel, pids, err, w.cmd.Process.Pid)
	}
	if err := iso.Cleanup(testCtx(t), "nested"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("workload in the sub-cgroup still running a minute after Cleanup")
	}
	if h.Exists(rel) {
		t.Errorf("cgroup %s still exists in some controller after Cleanup", rel)
	}
}
