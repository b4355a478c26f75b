package master_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
)

// TestReportMasterScale measures the memory of a master holding 50,000
// agents and 100 frameworks, every agent offered, with the real DRF plugin
// binary, and the plugin's. A report for `make bench-alloc`, not a check:
// it runs only with CORRAL_BENCH_ALLOC=1 and CORRAL_BIN_DIR.
func TestReportMasterScale(t *testing.T) {
	dir := os.Getenv("CORRAL_BIN_DIR")
	if os.Getenv("CORRAL_BENCH_ALLOC") != "1" || dir == "" {
		t.Skip("set CORRAL_BENCH_ALLOC=1 and CORRAL_BIN_DIR (make bench-alloc) to measure the master at 50k agents")
	}
	agents := 50000
	if v, err := strconv.Atoi(os.Getenv("CORRAL_BENCH_ALLOC_MAX_AGENTS")); err == nil && v < agents {
		agents = v
	}
	const frameworks = 100
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst, err := pluginhost.Start(ctx, pluginhost.Spec{Kind: base.KindAllocator, Name: "drf", Path: dir + "/plugins/corral-allocator-drf"},
		pluginhost.Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Kill()
	c := startMasterWith(t, master.Config{AllocationInterval: 200 * time.Millisecond, AllocatorTimeout: time.Minute},
		fixedAllocator{inst.Raw().(allocator.Allocator)})
	runtime.GC()
	before := rss(os.Getpid())
	if err := c.m.AdmitAgents(agents, resources.MustParse("cpus:16;mem:65536;disk:102400;ports:[31000-32000]")); err != nil {
		t.Fatal(err)
	}
	for i := range frameworks {
		c.subscribe(fmt.Sprintf("fw-%03d", i), fmt.Sprintf("role-%d", i%5))
	}
	deadline := time.Now().Add(2 * time.Minute)
	for c.m.OutstandingOffers() < agents {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d agents offered after 2 minutes", c.m.OutstandingOffers(), agents)
		}
		time.Sleep(100 * time.Millisecond)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("master with %d agents, %d frameworks, every agent offered (real DRF plugin):\n", agents, frameworks)
	fmt.Printf("  master process RSS %d MiB (%d MiB before the agents; Go heap in use %d MiB)\n", rss(os.Getpid())/1024, before/1024, ms.HeapInuse>>20)
	fmt.Printf("  plugin process RSS %d MiB\n", rss(inst.Pid())/1024)
}

// rss is a process's resident set size in KiB, from /proc.
func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}
