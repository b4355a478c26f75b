package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/examples/ntasks"
	"github.com/corral-project/corral/sdk/procfs"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Hot swap of the allocator on a live cluster of real binaries: every
// swap, rollback reason, the watchdog, checksums, SIGHUP reload,
// durability and shadow mode.

var (
	faultyOnce sync.Once
	faultyPath string
	faultyErr  error
	faultyDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if faultyDir != "" {
		_ = os.RemoveAll(faultyDir)
	}
	os.Exit(code)
}

// faultyPlugin builds testdata/faultyalloc once per test binary.
func faultyPlugin(t *testing.T) string {
	t.Helper()
	faultyOnce.Do(func() {
		faultyDir, faultyErr = os.MkdirTemp("", "corral-faultyalloc")
		if faultyErr != nil {
			return
		}
		faultyPath = filepath.Join(faultyDir, "faultyalloc")
		out, err := exec.Command("go", "build", "-o", faultyPath, "./testdata/faultyalloc").CombinedOutput()
		if err != nil {
			faultyErr = fmt.Errorf("building testdata/faultyalloc: %v\n%s", err, out)
		}
	})
	if faultyErr != nil {
		t.Fatal(faultyErr)
	}
	return faultyPath
}

func skipSwapShort(t *testing.T) {
	t.Helper()
	needPlugins(t, "corral-allocator-quota", "corral-allocator-binpack")
}

// writeConfig writes an HCL config into dir and returns its path.
func writeConfig(t *testing.T, dir, hcl string) string {
	t.Helper()
	p := filepath.Join(dir, "corral.hcl")
	if err := os.WriteFile(p, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startDevConfig runs `corral dev` with a config file and a work dir of
// its own; it returns the master address and the process.
func startDevConfig(t *testing.T, config, work string, extra ...string) (string, *proc) {
	t.Helper()
	args := append([]string{"dev", "-config", config, "-master", "127.0.0.1:0", "-address", "127.0.0.1:0",
		"-work-dir", work, "-plugin-dir", filepath.Join(binDir(t), "plugins")}, extra...)
	p := startCorral(t, args...)
	addr := p.waitLine(masterLine)
	p.waitLine(agentLine)
	waitState(t, addr, "one connected agent", func(s master.State) bool { return len(s.Agents) == 1 && s.Agents[0].Connected })
	return addr, p
}

func getAllocator(t *testing.T, addr string) master.AllocatorStatus {
	t.Helper()
	var st master.AllocatorStatus
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/api/v1/allocator")), &st); err != nil {
		t.Fatalf("/api/v1/allocator: %v", err)
	}
	return st
}

// waitAllocator polls the slot until cond holds.
func waitAllocator(t *testing.T, addr, what string, timeout time.Duration, cond func(master.AllocatorStatus) bool) master.AllocatorStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := getAllocator(t, addr)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("timed out after %v waiting for %s; allocator:\n%s", timeout, what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setAllocator runs `corral allocator set ... -wait -json` and returns the
// exit code and the outcome.
func setAllocator(t *testing.T, addr string, args ...string) (int, *master.SwapRecord, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	all := append([]string{"allocator", "set"}, args...)
	all = append(all, "-wait", "-json", "-master", addr)
	code, out, errOut := runCLI(t, ctx, all...)
	var res struct {
		Outcome *master.SwapRecord `json:"outcome"`
	}
	if code == 0 || strings.HasPrefix(strings.TrimSpace(out), "{") {
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("corral %v: decoding %q: %v", all, out, err)
		}
	}
	return code, res.Outcome, errOut
}

// metricValue reads one sample of /metrics ("name{labels}" as printed).
func metricValue(t *testing.T, addr, sample string) float64 {
	t.Helper()
	// The sum over every label set (offer counters are by role).
	sum := 0.0
	for _, l := range strings.Split(httpGet(t, "http://"+addr+"/metrics"), "\n") {
		if !strings.HasPrefix(l, sample+" ") && !strings.HasPrefix(l, sample+"{") {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// TestSwapTenTimesUnderLoad swaps the policy ten times between drf and
// quota while two frameworks run 500 short tasks: every task finishes,
// none is killed, no offer is made twice or lost, and shares stay sane.
func TestSwapTenTimesUnderLoad(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	cfg := writeConfig(t, work, `
master {
  allocator           = "drf"
  allocation_interval = "100ms"
}
`)
	addr, _ := startDevConfig(t, cfg, filepath.Join(work, "dev"), "-resources", "cpus:4;mem:4096")

	var mu sync.Mutex
	seen := map[string]string{} // offer ID -> framework
	var dup []string
	received := 0
	onOffers := func(name string) func([]*corralpb.Offer) {
		return func(offers []*corralpb.Offer) {
			mu.Lock()
			defer mu.Unlock()
			for _, o := range offers {
				received++
				if by, ok := seen[o.GetId()]; ok {
					dup = append(dup, fmt.Sprintf("%s to %s and %s", o.GetId(), by, name))
				}
				seen[o.GetId()] = name
			}
		}
	}
	const perFramework = 250
	var fws []*fwRun
	for _, name := range []string{"alpha", "beta"} {
		fws = append(fws, startNtasks(t, ntasks.Config{Master: addr, Name: name, Tasks: perFramework, Command: "true",
			CPUs: 0.2, Mem: 16, OnOffers: onOffers(name)}))
	}

	policies := []string{"quota", "drf"}
	var latencies []float64
	for i := 0; i < 10; i++ {
		want := policies[i%2]
		code, out, errOut := setAllocator(t, addr, want)
		if code != 0 || out == nil || out.Event != "swap" {
			t.Fatalf("swap %d to %s: exit %d, outcome %+v, stderr %s", i+1, want, code, out, errOut)
		}
		latencies = append(latencies, out.LatencyMS)
		s := mustState(t, addr)
		if s.Allocator.Name != want {
			t.Fatalf("after swap %d the active allocator is %q, want %q", i+1, s.Allocator.Name, want)
		}
		for _, f := range s.Frameworks {
			if f.DominantShare < 0 || f.DominantShare > 1 {
				t.Errorf("after swap %d framework %s has dominant share %v", i+1, f.Name, f.DominantShare)
			}
		}
	}
	sort.Float64s(latencies)
	t.Logf("10 swaps under load: latency median %.1f ms, max %.1f ms", latencies[len(latencies)/2], latencies[len(latencies)-1])

	for _, fw := range fws {
		select {
		case <-fw.done:
		case <-time.After(5 * time.Minute):
			t.Fatalf("framework %s did not finish its %d tasks within 5 minutes (%d finished)", fw.name, perFramework, fw.finished())
		}
		if fw.err != nil {
			t.Fatalf("framework %s: %v", fw.name, fw.err)
		}
		if n := fw.finished(); n != perFramework {
			t.Errorf("framework %s: %d of %d tasks finished; others: %v", fw.name, n, perFramework, fw.failedUpdates())
		}
	}
	st := getAllocator(t, addr)
	swaps := 0
	for _, r := range st.History {
		if r.Event == "swap" {
			swaps++
		}
	}
	if swaps != 10 || st.Generation != 11 {
		t.Errorf("history has %d swaps and generation %d, want 10 and 11", swaps, st.Generation)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(dup) > 0 {
		t.Errorf("offer IDs offered twice: %v", dup)
	}
	// The ledger: every offer the master made reached a framework, and
	// each was accepted, declined, rescinded or is still outstanding.
	made := metricValue(t, addr, "corral_master_offers_made_total")
	if int(made) != received {
		t.Errorf("the master made %v offers; the frameworks received %d", made, received)
	}
	outstanding := 0
	for _, f := range mustState(t, addr).Frameworks {
		outstanding += f.Offers
	}
	closed := metricValue(t, addr, "corral_master_offers_accepted_total") +
		metricValue(t, addr, "corral_master_offers_declined_total") + metricValue(t, addr, "corral_master_offers_rescinded_total")
	if int(closed)+outstanding != int(made) {
		t.Errorf("offers made %v != accepted+declined+rescinded %v + outstanding %d", made, closed, outstanding)
	}
	t.Logf("%d offers, all distinct, all accounted for", received)
}

// faultyConfig declares the faulty plugin with its fault as a plugin
// block called faulty-<fault>.
func faultyConfig(t *testing.T, extraMaster string, faults ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "master {\n  allocator = \"drf\"\n  allocation_interval = \"100ms\"\n%s}\n", extraMaster)
	for _, f := range faults {
		fmt.Fprintf(&b, "plugin %q {\n  path = %q\n  args = [\"-fault=%s\"]\n}\n", "faulty-"+f, faultyPlugin(t), f)
	}
	return b.String()
}

// TestSwapRollbackOnStartFailure: a plugin that is not there, and one
// whose config it refuses, never become active; each is recorded.
func TestSwapRollbackOnStartFailure(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	addr, _ := startDevConfig(t, writeConfig(t, work, faultyConfig(t, "")), filepath.Join(work, "dev"))

	code, _, errOut := setAllocator(t, addr, "no-such-policy")
	if code != 1 || !strings.Contains(errOut, `allocator plugin "no-such-policy" not found`) {
		t.Errorf("swap to a missing plugin: exit %d, stderr %q", code, errOut)
	}
	badConfig := filepath.Join(work, "bad.hcl")
	if err := os.WriteFile(badConfig, []byte("no_such_setting = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = setAllocator(t, addr, "drf", "-config", badConfig)
	if code != 1 || !strings.Contains(errOut, "no_such_setting") {
		t.Errorf("swap with a config the plugin refuses: exit %d, stderr %q", code, errOut)
	}
	st := getAllocator(t, addr)
	if st.Active == nil || st.Active.Name != "drf" || st.Generation != 1 || st.Candidate != nil {
		t.Errorf("after failed starts: active %+v, generation %d, candidate %+v", st.Active, st.Generation, st.Candidate)
	}
	if got := metricValue(t, addr, `corral_allocator_rollbacks_total{reason="start"}`); got != 2 {
		t.Errorf(`corral_allocator_rollbacks_total{reason="start"} = %v, want 2`, got)
	}
	assertRollbacks(t, st, "start", 2)
}

func assertRollbacks(t *testing.T, st master.AllocatorStatus, reason string, want int) {
	t.Helper()
	n := 0
	for _, r := range st.History {
		if r.Event == "rollback" && r.Reason == reason {
			n++
		}
	}
	if n != want {
		t.Errorf("history has %d rollbacks for %q, want %d: %+v", n, reason, want, st.History)
	}
}

// TestSwapRollbackOnInitFailure: a candidate whose Init fails is dropped
// and the active allocator never stops serving.
func TestSwapRollbackOnInitFailure(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	addr, _ := startDevConfig(t, writeConfig(t, work, faultyConfig(t, "", "init")), filepath.Join(work, "dev"))
	code, out, errOut := setAllocator(t, addr, "faulty-init")
	if code != 1 || out == nil || out.Event != "rollback" || out.Reason != "init" || !strings.Contains(out.Detail, "fails on purpose") {
		t.Fatalf("swap to a plugin whose Init fails: exit %d, outcome %+v, stderr %s", code, out, errOut)
	}
	st := getAllocator(t, addr)
	if st.Active.Name != "drf" || st.Candidate != nil {
		t.Errorf("after the rollback: active %q, candidate %+v", st.Active.Name, st.Candidate)
	}
	assertRollbacks(t, st, "init", 1)
	if got := metricValue(t, addr, `corral_allocator_rollbacks_total{reason="init"}`); got != 1 {
		t.Errorf(`corral_allocator_rollbacks_total{reason="init"} = %v, want 1`, got)
	}
	execTrue(t, addr)
}

// execTrue shows offers flow: a one-task framework runs to completion.
func execTrue(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code, _, errOut := runCLI(t, ctx, "exec", "-master", addr, "--", "true"); code != 0 {
		t.Fatalf("corral exec true after the rollback: exit %d: %s", code, errOut)
	}
}

// TestSwapRollbackOnDeadline: a new plugin that answers the handshake but
// never answers Allocate is rolled back after three missed deadlines.
func TestSwapRollbackOnDeadline(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	addr, _ := startDevConfig(t, writeConfig(t, work, faultyConfig(t, "  allocator_timeout = \"300ms\"\n", "hang")),
		filepath.Join(work, "dev"))
	code, out, errOut := setAllocator(t, addr, "faulty-hang")
	if code != 1 || out == nil || out.Event != "rollback" || out.Reason != "deadline" {
		t.Fatalf("swap to a plugin that hangs: exit %d, outcome %+v, stderr %s", code, out, errOut)
	}
	st := getAllocator(t, addr)
	if st.Active.Name != "drf" || st.Previous != nil {
		t.Errorf("after the rollback: active %q, previous %+v", st.Active.Name, st.Previous)
	}
	assertRollbacks(t, st, "deadline", 1)
	execTrue(t, addr)
}

// TestSwapRollbackOnInvalidProposals: a new plugin whose proposals the
// master keeps refusing is rolled back.
func TestSwapRollbackOnInvalidProposals(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	addr, _ := startDevConfig(t, writeConfig(t, work, faultyConfig(t, "", "invalid")), filepath.Join(work, "dev"))
	// A framework that keeps wanting offers, so proposals are made.
	fw := startNtasks(t, ntasks.Config{Master: addr, Name: "steady", Tasks: 100000, Command: "sleep 0.2", CPUs: 0.5, Mem: 16})
	fw.waitLog(t, "launched")
	code, out, errOut := setAllocator(t, addr, "faulty-invalid")
	if code != 1 || out == nil || out.Event != "rollback" || out.Reason != "invalid_proposals" {
		t.Fatalf("swap to a plugin proposing invalid offers: exit %d, outcome %+v, stderr %s", code, out, errOut)
	}
	assertRollbacks(t, getAllocator(t, addr), "invalid_proposals", 1)
	before := fw.finished()
	waitState(t, addr, "tasks finish again under the restored drf", func(s master.State) bool { return fw.finished() >= before+3 })
}

// TestAllocatorWatchdogRestartsStoppedPlugin: a SIGSTOPped allocator is
// killed and restarted, and offers resume, without anyone's help.
func TestAllocatorWatchdogRestartsStoppedPlugin(t *testing.T) {
	skipSwapShort(t)
	addr, _ := startDev(t)
	st := getAllocator(t, addr)
	pid := st.Active.Pid
	if pid <= 0 {
		t.Fatalf("no allocator pid: %+v", st.Active)
	}
	stopped, err := procfs.Identify(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %d: %v", pid, err)
	}
	t.Cleanup(func() { _ = stopped.Signal(syscall.SIGKILL) })
	began := time.Now()
	after := waitAllocator(t, addr, "the stopped plugin replaced", 90*time.Second, func(s master.AllocatorStatus) bool {
		return s.Active.Pid > 0 && s.Active.Pid != pid && s.Active.Faults >= 1 && s.Active.Restarts >= 1
	})
	t.Logf("stopped allocator pid %d replaced by pid %d after %v", pid, after.Active.Pid, time.Since(began).Round(time.Millisecond))
	if alive(pid) {
		t.Errorf("the stopped plugin pid %d is still alive", pid)
	}
	execTrue(t, addr)
}

// TestPluginChecksumMismatch: a sha256 in a plugin block is checked
// before the binary runs; a mismatch names path, expected and actual sum,
// at start and on a swap.
func TestPluginChecksumMismatch(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	plugins := filepath.Join(binDir(t), "plugins")
	wrong := strings.Repeat("0", 64)
	cfg := writeConfig(t, work, fmt.Sprintf("plugin \"drf\" {\n  sha256 = %q\n}\n", wrong))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, _, errOut := runCLI(t, ctx, "master", "-config", cfg, "-master", "127.0.0.1:0", "-work-dir", filepath.Join(work, "m"),
		"-plugin-dir", plugins)
	path := filepath.Join(plugins, "corral-allocator-drf")
	if code == 0 || !strings.Contains(errOut, path) || !strings.Contains(errOut, wrong) || !regexp.MustCompile(`[0-9a-f]{64}`).MatchString(strings.ReplaceAll(errOut, wrong, "")) {
		t.Errorf("master with a wrong drf checksum: exit %d, stderr %q; want the path, the expected and the actual sum", code, errOut)
	}

	// The right sum (as `corral allocator list` prints it) starts; a wrong
	// one on another plugin refuses the swap.
	dir := t.TempDir()
	addr, _ := startDevConfig(t, writeConfig(t, dir, fmt.Sprintf("plugin \"quota\" {\n  sha256 = %q\n}\n", wrong)), filepath.Join(dir, "dev"))
	code, list, errOut := runCLI(t, ctx, "allocator", "list", "-master", addr)
	if code != 0 || !strings.Contains(list, "drf") {
		t.Fatalf("corral allocator list: exit %d, %s %s", code, list, errOut)
	}
	var drfSum string
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "drf" {
			drfSum = regexp.MustCompile(`[0-9a-f]{64}`).FindString(l)
		}
	}
	if drfSum == "" {
		t.Fatalf("corral allocator list printed no sha256 for drf:\n%s", list)
	}
	code, _, errOut = setAllocator(t, addr, "quota")
	if code != 1 || !strings.Contains(errOut, "checksum") || !strings.Contains(errOut, wrong) {
		t.Errorf("swap to a plugin with a wrong checksum: exit %d, stderr %q", code, errOut)
	}
	good := t.TempDir()
	startDevConfig(t, writeConfig(t, good, fmt.Sprintf("plugin \"drf\" {\n  sha256 = %q\n}\n", drfSum)), filepath.Join(good, "dev"))
}

// TestSIGHUPReloadSwapsAndUpdatesRoles: a changed config file applied by
// SIGHUP swaps the allocator, re-configures it when only its plugin block
// changed, and updates roles.
func TestSIGHUPReloadSwapsAndUpdatesRoles(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	cfg := writeConfig(t, work, "master {\n  allocator = \"drf\"\n  allocation_interval = \"100ms\"\n  role \"eng\" {\n    weight = 1\n  }\n}\n")
	addr, p := startDevConfig(t, cfg, filepath.Join(work, "dev"))

	writeConfig(t, work, "master {\n  allocator = \"quota\"\n  allocation_interval = \"100ms\"\n  role \"eng\" {\n    weight = 3\n  }\n}\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	st := waitAllocator(t, addr, "quota active after SIGHUP", time.Minute, func(s master.AllocatorStatus) bool {
		return s.Active != nil && s.Active.Name == "quota"
	})
	if last := st.History[len(st.History)-1]; last.Source != "sighup" {
		t.Errorf("the swap's source is %q, want sighup", last.Source)
	}
	waitRoleWeight(t, addr, "eng", 3)

	// Only the plugin's config block changes: same name, new process.
	gen := st.Generation
	writeConfig(t, work, "master {\n  allocator = \"quota\"\n  allocation_interval = \"100ms\"\n  role \"eng\" {\n    weight = 3\n  }\n}\n"+
		"plugin \"quota\" {\n  config {\n    min_offer = \"cpus:0.5\"\n  }\n}\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitAllocator(t, addr, "quota re-configured after SIGHUP", time.Minute, func(s master.AllocatorStatus) bool {
		return s.Generation == gen+1 && s.Active.Name == "quota"
	})

	// A broken file changes nothing and says why.
	writeConfig(t, work, "master {\n  allocator = \n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLine(regexp.MustCompile(`(SIGHUP: the configuration has errors)`))
	if g := getAllocator(t, addr).Generation; g != gen+1 {
		t.Errorf("a broken config changed the allocator generation to %d", g)
	}
}

func waitRoleWeight(t *testing.T, addr, role string, w float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		for _, r := range getRoles(t, addr) {
			if r.Name == role && r.Weight == w {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("role %s did not get weight %v: %+v", role, w, getRoles(t, addr))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSwapSurvivesMasterRestart: a master restarted after a swap comes
// back with the swapped policy and its config.
func TestSwapSurvivesMasterRestart(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	cfg := writeConfig(t, work, "master {\n  allocator = \"drf\"\n}\n")
	mwork := filepath.Join(work, "master")
	m, addr := startAllocMaster2(t, cfg, mwork)
	conf := filepath.Join(work, "quota.hcl")
	if err := os.WriteFile(conf, []byte("min_offer = \"cpus:0.25\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := setAllocator(t, addr, "quota", "-config", conf); code != 0 || out.Event != "swap" {
		t.Fatalf("swap: exit %d, %+v, %s", code, out, errOut)
	}
	m.stop()
	_, addr = startAllocMaster2(t, cfg, mwork)
	st := getAllocator(t, addr)
	if st.Active.Name != "quota" || !strings.Contains(st.Active.Config, "cpus:0.25") {
		t.Fatalf("after a restart the active allocator is %q with config %q, want quota with the swapped config", st.Active.Name, st.Active.Config)
	}
	if st.History[0].Source != "registry" {
		t.Errorf("the restarted master says its allocator came from %q, want registry", st.History[0].Source)
	}
}

func startAllocMaster2(t *testing.T, cfg, work string) (*proc, string) {
	t.Helper()
	m := startCorral(t, "master", "-config", cfg, "-master", "127.0.0.1:0", "-work-dir", work,
		"-plugin-dir", filepath.Join(binDir(t), "plugins"))
	return m, m.waitLine(masterLine)
}

// TestShadowModeReportsDifference: binpack shadows drf on a churning
// two-agent cluster; the diff shows they would offer differently, nothing
// the candidate proposes is sent, and abort keeps drf.
func TestShadowModeReportsDifference(t *testing.T) {
	skipSwapShort(t)
	work := t.TempDir()
	cfg := writeConfig(t, work, "master {\n  allocator = \"drf\"\n  allocation_interval = \"100ms\"\n}\n")
	addr, _ := startDevConfig(t, cfg, filepath.Join(work, "dev"), "-resources", "cpus:4;mem:4096")
	startAllocAgent(t, addr, "cpus:3;mem:4096")
	for _, r := range []string{"a", "b"} {
		fw := startNtasks(t, ntasks.Config{Master: addr, Name: "churn-" + r, Role: r, Tasks: 100000, Command: "sleep 0.3",
			CPUs: 1, Mem: 64})
		fw.waitLog(t, "launched")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, errOut := runCLI(t, ctx, "allocator", "set", "binpack", "-shadow", "5", "-promote", "manual", "-master", addr)
	if code != 0 {
		t.Fatalf("allocator set binpack -shadow 5 -promote manual: exit %d: %s %s", code, out, errOut)
	}
	st := waitAllocator(t, addr, "shadow cycles that differ", 2*time.Minute, func(s master.AllocatorStatus) bool {
		return s.Candidate != nil && s.Candidate.Diff.Cycles >= 5 && s.Candidate.Diff.Differs() && s.Candidate.State == "awaiting promotion"
	})
	d := st.Candidate.Diff
	t.Logf("shadow: %d cycles, offers drf %d / binpack %d, to other frameworks %d, roles %v, shares %v",
		d.Cycles, d.ActiveOffers, d.CandidateOffers, d.OffersToOtherFrameworks, d.Roles, d.ProjectedShares)
	if st.Active.Name != "drf" {
		t.Errorf("while shadowing, the active allocator is %q", st.Active.Name)
	}
	code, show, _ := runCLI(t, ctx, "allocator", "show", "-master", addr)
	if code != 0 || !strings.Contains(show, "candidate") || !strings.Contains(show, "offers to other frameworks") {
		t.Errorf("corral allocator show during shadow: exit %d:\n%s", code, show)
	}
	if v := metricValue(t, addr, "corral_allocator_shadow_cycles_total"); v < 5 {
		t.Errorf("corral_allocator_shadow_cycles_total = %v, want >= 5", v)
	}
	if code, _, errOut := runCLI(t, ctx, "allocator", "abort", "-master", addr); code != 0 {
		t.Fatalf("allocator abort: exit %d: %s", code, errOut)
	}
	st = waitAllocator(t, addr, "the candidate dropped", time.Minute, func(s master.AllocatorStatus) bool { return s.Candidate == nil })
	if last := st.History[len(st.History)-1]; last.Event != "abort" || st.Active.Name != "drf" || st.Generation != 1 {
		t.Errorf("after abort: last record %+v, active %q, generation %d", last, st.Active.Name, st.Generation)
	}
}

// TestReportSwapLatency prints the swap latency figure of `make
// bench-swap`: from `corral allocator set` to the end of the first cycle run
// by the new plugin, over 20 swaps between drf and quota on a dev cluster
// with the default 1 s allocation interval. A report, not a check: it runs
// only with CORRAL_BENCH_SWAP=1.
func TestReportSwapLatency(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_SWAP") == "" {
		t.Skip("a report: set CORRAL_BENCH_SWAP=1 (make bench-swap)")
	}
	skipSwapShort(t)
	work := t.TempDir()
	addr, _ := startDevConfig(t, writeConfig(t, work, "master {\n  allocator = \"drf\"\n}\n"), filepath.Join(work, "dev"))
	fw := startNtasks(t, ntasks.Config{Master: addr, Name: "steady", Tasks: 100000, Command: "sleep 0.5", CPUs: 0.5, Mem: 16})
	fw.waitLog(t, "launched")
	var lat, start, cli []float64
	for i := 0; i < 20; i++ {
		began := time.Now()
		code, out, errOut := setAllocator(t, addr, []string{"quota", "drf"}[i%2])
		if code != 0 || out == nil || out.Event != "swap" {
			t.Fatalf("swap %d: exit %d, %+v, %s", i+1, code, out, errOut)
		}
		lat = append(lat, out.LatencyMS)
		start = append(start, out.StartMS)
		cli = append(cli, float64(time.Since(began).Microseconds())/1000)
	}
	sort.Float64s(lat)
	sort.Float64s(start)
	sort.Float64s(cli)
	fmt.Printf("\nswap latency, 20 swaps drf<->quota, dev cluster, allocation_interval 1s, one busy framework\n")
	fmt.Printf("%-44s %10s %10s %10s\n", "", "min", "median", "max")
	fmt.Printf("%-44s %8.1fms %8.1fms %8.1fms\n", "set -> first cycle of the new plugin", lat[0], lat[len(lat)/2], lat[len(lat)-1])
	fmt.Printf("%-44s %8.1fms %8.1fms %8.1fms\n", "  of which starting the plugin process", start[0], start[len(start)/2], start[len(start)-1])
	fmt.Printf("%-44s %8.1fms %8.1fms %8.1fms\n", "CLI set -wait (incl. 3 probation cycles)", cli[0], cli[len(cli)/2], cli[len(cli)-1])
}
