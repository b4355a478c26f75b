// Package allocators_test benchmarks the shipped allocator policies in the
// shape of Mesos' allocator benchmarks, in process and through the real
// plugin binaries (see allocatortest.BenchShape for the workload).
//
//	go test -run '^$' -bench 'Allocate/policy=drf/agents=10000/frameworks=1000' -benchtime 5x ./plugins/allocator
//	make bench-alloc   # the whole table, with ratios and RSS
package allocators_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/plugins/allocator/drf"
	"github.com/corral-project/corral/plugins/allocator/priority"
	"github.com/corral-project/corral/plugins/allocator/quota"
	"github.com/corral-project/corral/sdk/allocator/allocatortest"
)

type benchCase struct {
	policy string
	shape  allocatortest.BenchShape
}

// cases are the sizes of issue 5: agents 1k to 50k, frameworks 100 to 2k,
// and the quota case of 3k agents, roles and frameworks.
var cases = func() []benchCase {
	var out []benchCase
	for _, p := range []string{"drf", "priority"} {
		for _, s := range [][2]int{{1000, 100}, {10000, 100}, {10000, 1000}, {20000, 1000}, {20000, 2000}, {50000, 100}} {
			out = append(out, benchCase{p, allocatortest.BenchShape{Agents: s[0], Frameworks: s[1], Roles: 5, Tiers: p == "priority"}})
		}
	}
	return append(out, benchCase{"quota", allocatortest.BenchShape{Agents: 3000, Frameworks: 3000, Roles: 3000, Quota: true}})
}()

func (c benchCase) name(mode string) string {
	return fmt.Sprintf("policy=%s/agents=%d/frameworks=%d/mode=%s", c.policy, c.shape.Agents, c.shape.Frameworks, mode)
}

func inProcess(policy string) allocator.Allocator {
	switch policy {
	case "quota":
		return quota.NewPlugin()
	case "priority":
		return priority.NewPlugin()
	}
	return drf.NewPlugin()
}

// binary starts the built plugin, or skips: benchmarks never build. Mode
// "baseline" starts the one under CORRAL_BENCH_ALLOC_BASELINE instead.
func binary(tb testing.TB, policy, mode string) (allocator.Allocator, int) {
	dir := os.Getenv("CORRAL_BIN_DIR")
	if mode == "baseline" {
		dir = os.Getenv("CORRAL_BENCH_ALLOC_BASELINE")
	}
	if dir == "" {
		tb.Skip("CORRAL_BIN_DIR is not set; run `make bench-alloc` or set it to a dir holding plugins/")
	}
	p := plugintest.Start(tb, base.KindAllocator, dir+"/plugins/corral-allocator-"+policy)
	return p.Raw.(allocator.Allocator), p.Pid()
}

func start(tb testing.TB, c benchCase, mode string) (*allocatortest.BenchCluster, int) {
	var a allocator.Allocator
	pid := 0
	switch mode {
	case "plugin", "baseline":
		a, pid = binary(tb, c.policy, mode)
	default:
		a = inProcess(c.policy)
		if mode == "grpc" {
			// The plugin's glue and wire in this process, without the
			// second process: what profiles of the plugin path use.
			a = contracttest.InProcess(tb, a)
		}
		if err := a.SetConfig(context.Background(), []byte("{}"), allocator.APIVersions[0]); err != nil {
			tb.Fatal(err)
		}
	}
	cl, err := allocatortest.NewBenchCluster(context.Background(), a, c.shape)
	if err != nil {
		tb.Fatal(err)
	}
	if pid != 0 {
		cl.PeerCPU = func() time.Duration { return cpuOf(pid) }
		cl.PeerFaults = func() int64 { return minorFaults(pid) }
	}
	return cl, pid
}

// BenchmarkAllocate times one steady-state cycle per iteration; the first
// cycle after Init is reported apart as first-ms. Modes: inprocess (the
// policy called directly), grpc (through the plugin glue and gRPC in this
// process, for profiling the wire path with -cpuprofile) and plugin (the
// real binary).
func BenchmarkAllocate(b *testing.B) {
	for _, c := range cases {
		for _, mode := range []string{"inprocess", "grpc", "plugin"} {
			b.Run(c.name(mode), func(b *testing.B) {
				cl, pid := start(b, c, mode)
				ctx := context.Background()
				first, _, err := cl.Cycle(ctx)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
				b.ReportAllocs()
				faults0 := minorFaults(pid)
				b.ResetTimer()
				var offers int
				var cpu, peer time.Duration
				for range b.N {
					// Only the Allocate call is timed, not the simulated
					// master and frameworks answering it.
					resp, _, err := cl.Allocate(ctx)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					cpu += cl.LastCPU()
					peer += cl.LastPeerCPU
					offers = len(resp.Offers)
					cl.Answer(resp)
					b.StartTimer()
				}
				b.ReportMetric(float64(offers), "offers/cycle")
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
				if pid != 0 {
					b.ReportMetric(float64(minorFaults(pid)-faults0)/float64(b.N), "plugin-faults/op")
					b.ReportMetric(float64(peer.Microseconds())/1000/float64(b.N), "plugin-cpu-ms/op")
				}
			})
		}
	}
}

// BenchmarkMirrorGrowth measures how much the in-process plugin's live
// heap (its mirror) grows per steady cycle, and per offer declined with a
// filter, the one thing that piles up in the mirror as cycles go by
// (kept offers become allocations, which the master books too).
//
//	go test -run '^$' -bench MirrorGrowth -benchtime 10x ./plugins/allocator
func BenchmarkMirrorGrowth(b *testing.B) {
	for _, c := range cases {
		if c.shape.Agents != 10000 || c.shape.Frameworks != 1000 {
			continue
		}
		b.Run(c.name("inprocess"), func(b *testing.B) {
			cl, _ := start(b, c, "inprocess")
			ctx := context.Background()
			for range 2 {
				if _, _, err := cl.Cycle(ctx); err != nil {
					b.Fatal(err)
				}
			}
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap0, declined0, kept0 := ms.HeapAlloc, cl.Declined, cl.Kept
			for range b.N {
				if _, _, err := cl.Cycle(ctx); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			grown := float64(int64(ms.HeapAlloc) - int64(heap0))
			declined, kept := cl.Declined-declined0, cl.Kept-kept0
			b.ReportMetric(grown/float64(b.N), "heap-B/cycle")
			b.ReportMetric(float64(declined)/float64(b.N), "declined/cycle")
			b.ReportMetric(float64(kept)/float64(b.N), "kept/cycle")
			b.ReportMetric(grown/float64(max(declined+kept, 1)), "heap-B/answered-offer")
		})
	}
}

// TestReportAllocBench prints the table `make bench-alloc` shows: for each
// case the median of several steady cycles in process and through the
// plugin binary, their ratio, the first cycle, allocations per cycle and
// the plugin's RSS. A report, not a check: it runs only with
// CORRAL_BENCH_ALLOC=1; CORRAL_BENCH_ALLOC_MAX_AGENTS limits the sizes and
// CORRAL_BENCH_ALLOC_ONLY (a regexp over the case names, such as
// "policy=drf/agents=10000/frameworks=1000/") the cases, and
// CORRAL_BENCH_ALLOC_CYCLES the number of steady cycles (7). The two modes
// run side by side, taking turns cycle by cycle, so that the machine's
// load weighs on both alike. CORRAL_BENCH_ALLOC_BASELINE, a bin dir of
// another build (for example main's: go build -o DIR/plugins/corral-allocator-drf
// ./plugins/allocator/drf/cmd in its worktree), adds its plugins as a third
// contestant taking turns with the other two, and the columns "base cpu"
// and "plg/base".
func TestReportAllocBench(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_ALLOC") != "1" {
		t.Skip("set CORRAL_BENCH_ALLOC=1 (make bench-alloc) to run the allocation benchmark table")
	}
	maxAgents := 1 << 30
	if v, err := strconv.Atoi(os.Getenv("CORRAL_BENCH_ALLOC_MAX_AGENTS")); err == nil {
		maxAgents = v
	}
	var only *regexp.Regexp
	if v := os.Getenv("CORRAL_BENCH_ALLOC_ONLY"); v != "" {
		var err error
		if only, err = regexp.Compile(v); err != nil {
			t.Fatalf("CORRAL_BENCH_ALLOC_ONLY: %v", err)
		}
	}
	cycles := 7
	if v, err := strconv.Atoi(os.Getenv("CORRAL_BENCH_ALLOC_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	var rows []string
	rows = append(rows, fmt.Sprintf("%-9s %7s %6s %6s | %10s %10s %6s | %10s %10s %6s | %9s %9s | %10s %10s",
		"policy", "agents", "fwks", "roles", "inproc ms", "plugin ms", "ratio", "inproc cpu", "plugin cpu", "ratio",
		"first in", "first plg", "allocs/cyc", "plugin RSS")+
		fmt.Sprintf(" | %8s %8s | %8s %9s | %9s %9s", "req KB", "resp KB", "plg proc", "faults", "call cpu", "best")+baseHeader())
	for _, c := range cases {
		if c.shape.Agents > maxAgents || only != nil && !only.MatchString(c.name("")) {
			continue
		}
		clIn, _ := start(t, c, "inprocess")
		clPl, pid := start(t, c, "plugin")
		clusters := []*allocatortest.BenchCluster{clIn, clPl}
		if os.Getenv("CORRAL_BENCH_ALLOC_BASELINE") != "" {
			clBase, _ := start(t, c, "baseline")
			clusters = append(clusters, clBase)
		}
		res, err := allocatortest.RunBenches(context.Background(), cycles, clusters...)
		if err != nil {
			t.Fatalf("%s: %v", c.name(""), err)
		}
		rss := rssOf(pid)
		in, pl := res[0], res[1]
		floor, err := clPl.CallFloor(context.Background(), 51)
		if err != nil {
			t.Fatalf("%s: %v", c.name(""), err)
		}
		rows = append(rows, fmt.Sprintf("%-9s %7d %6d %6d | %10s %10s %5.2fx | %10s %10s %5.2fx | %9s %9s | %10d %10s",
			c.policy, c.shape.Agents, c.shape.Frameworks, c.shape.Roles,
			ms(in.Median), ms(pl.Median), float64(pl.Median)/float64(max(in.Median, 1)),
			ms(in.CPUMedian), ms(pl.CPUMedian), float64(pl.CPUMedian)/float64(max(in.CPUMedian, 1)),
			ms(in.First), ms(pl.First), in.AllocsPerCycle, rss)+
			fmt.Sprintf(" | %8.1f %8.1f | %8s %9s | %9s %8.2fx", float64(pl.RequestBytes)/1024, float64(pl.ResponseBytes)/1024,
				ms(pl.PeerCPUMedian), fmt.Sprintf("%d/%d", in.FaultsMedian, pl.FaultsMedian),
				fmt.Sprintf("%.3f", float64(floor.Microseconds())/1000), float64(in.CPUMedian+floor)/float64(max(in.CPUMedian, 1)))+baseColumns(res, pl))
	}
	fmt.Println(strings.Join(rows, "\n"))
	fmt.Printf("median of %d steady cycles after the first, in process and plugin taking turns; half the frameworks decline every offer for an hour,\n"+
		"the other half keep theirs; ratio = plugin / in-process; ms: wall time of the Allocate call; cpu: CPU ms\n"+
		"used meanwhile by this process (all threads, GC included) plus, in plugin mode, the plugin process;\n"+
		"allocs/cyc in process; plugin RSS after the run; req/resp KB: the plugin's Allocate messages as encoded (median);\n"+
		"plg proc: the plugin process's part of plugin cpu (median; the rest is this process, its GC included);\n"+
		"faults: minor page faults per cycle in process / plugin (both processes; median).\n"+
		"call cpu: CPU ms of the cheapest round trip to the plugin (PluginInfo, a few bytes each way; both processes; median of 51);\n"+
		"best: (inproc cpu + call cpu) / inproc cpu, the lowest cpu ratio any plugin binary could reach over this transport.\n"+
		"base: the plugins of CORRAL_BENCH_ALLOC_BASELINE, when set, driven by this build's host glue. Load average at the end: %s\n", cycles, loadavg())
}

func baseHeader() string {
	if os.Getenv("CORRAL_BENCH_ALLOC_BASELINE") == "" {
		return ""
	}
	return fmt.Sprintf(" | %10s %8s %8s %8s", "base cpu", "plg/base", "base/in", "base rsp")
}

func baseColumns(res []allocatortest.BenchResult, pl allocatortest.BenchResult) string {
	if len(res) < 3 {
		return ""
	}
	b := res[2]
	return fmt.Sprintf(" | %10s %7.2fx %7.2fx %8.1f", ms(b.CPUMedian), float64(pl.CPUMedian)/float64(max(b.CPUMedian, 1)),
		float64(b.CPUMedian)/float64(max(res[0].CPUMedian, 1)), float64(b.ResponseBytes)/1024)
}

// loadavg is /proc/loadavg's first three fields: the table means little
// on a busy machine, and says so.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// cpuOf is the CPU time a process's threads have run so far, from
// /proc/<pid>/task/*/schedstat (nanoseconds, unlike the clock ticks of
// /proc/<pid>/stat, too coarse for cycles of a few ms).
func cpuOf(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended meanwhile
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// minorFaults is a process's minor page faults so far (/proc/<pid>/stat,
// field 10), 0 for pid 0.
func minorFaults(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 8 {
		return 0
	}
	n, _ := strconv.ParseInt(f[7], 10, 64)
	return n
}

// rssOf reads a process's resident set size from /proc.
func rssOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return fmt.Sprintf("%d MiB", kb/1024)
		}
	}
	return "?"
}
