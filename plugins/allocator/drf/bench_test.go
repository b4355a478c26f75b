package drf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/sdk/resources"
)

// The benchmark cluster: 100 agents of cpus:32;mem:131072, 10 frameworks
// in 4 roles of different weights, each agent a quarter used by one
// framework. Every Allocate call offers all 100 agents.
const (
	benchAgents     = 100
	benchFrameworks = 10
	benchRoles      = 4
	binaryName      = "corral-allocator-drf"
)

var benchUsed = resources.MustParse("cpus:8;mem:32768")

func benchSnapshot() *allocator.Snapshot {
	snap := &allocator.Snapshot{Version: 1, Now: 0}
	for i := 0; i < benchAgents; i++ {
		snap.Agents = append(snap.Agents, allocator.Agent{
			ID: fmt.Sprintf("agent-%03d", i), Hostname: fmt.Sprintf("host-%03d", i),
			Total: resources.MustParse("cpus:32;mem:131072"), Active: true,
		})
	}
	for r := 0; r < benchRoles; r++ {
		snap.Roles = append(snap.Roles, allocator.Role{Name: fmt.Sprintf("role-%d", r), Weight: float64(1 + r%3)})
	}
	for f := 0; f < benchFrameworks; f++ {
		snap.Frameworks = append(snap.Frameworks, allocator.Framework{
			ID: fmt.Sprintf("fw-%02d", f), Roles: []string{fmt.Sprintf("role-%d", f%benchRoles)}, Active: true,
		})
	}
	for i := 0; i < benchAgents; i++ {
		f := i % benchFrameworks
		snap.Allocations = append(snap.Allocations, allocator.Allocation{
			FrameworkID: fmt.Sprintf("fw-%02d", f), Role: fmt.Sprintf("role-%d", f%benchRoles),
			AgentID: fmt.Sprintf("agent-%03d", i), Resources: benchUsed,
		})
	}
	return snap
}

// benchAllocate measures one Allocate call per iteration. Each call carries
// a Recovered and an Allocated delta for the same resources, so the state,
// and hence the work, is the same in every iteration.
func benchAllocate(b *testing.B, a allocator.Allocator) {
	ctx := context.Background()
	if err := a.SetConfig(ctx, []byte("{}"), allocator.APIVersions[0]); err != nil {
		b.Fatal(err)
	}
	snap := benchSnapshot()
	version, err := a.Init(ctx, snap)
	if err != nil {
		b.Fatal(err)
	}
	held := snap.Allocations[0]
	req := func(i int) *allocator.AllocateRequest {
		now := allocator.LogicalTime(1000 * (i + 1))
		return &allocator.AllocateRequest{
			BaseVersion: version, TargetVersion: version + 2, Now: now, Trigger: allocator.TriggerTimer,
			Deltas: []allocator.Delta{
				{Version: version + 1, At: now, Kind: allocator.Recovered, Allocation: &held},
				{Version: version + 2, At: now, Kind: allocator.Allocated, Allocation: &held},
			},
		}
	}
	resp, err := a.Allocate(ctx, req(0))
	if err != nil {
		b.Fatal(err)
	}
	if len(resp.Offers) != benchAgents {
		b.Fatalf("warm-up cycle made %d offers, want one per agent (%d)", len(resp.Offers), benchAgents)
	}
	version += 2
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		resp, err := a.Allocate(ctx, req(i))
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Offers) != benchAgents {
			b.Fatalf("iteration %d made %d offers", i, len(resp.Offers))
		}
		version += 2
	}
}

// pluginBinary finds the built plugin under $CORRAL_BIN_DIR, or says why
// it cannot.
func pluginBinary() (string, error) {
	dir := os.Getenv("CORRAL_BIN_DIR")
	if dir == "" {
		return "", fmt.Errorf("CORRAL_BIN_DIR is not set; run `make bench` or set it to a bin dir holding plugins/%s", binaryName)
	}
	for _, p := range []string{filepath.Join(dir, "plugins", binaryName), filepath.Join(dir, binaryName)} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s under CORRAL_BIN_DIR=%s (looked in plugins/ and the dir itself); run `make build`", binaryName, dir)
}

// startBinary starts the real plugin binary through the real plugin host,
// as the master does. The process is killed at cleanup.
func startBinary(tb testing.TB, path string) allocator.Allocator {
	tb.Helper()
	return plugintest.Start(tb, base.KindAllocator, path).Raw.(allocator.Allocator)
}

func benchInProcess(b *testing.B) { benchAllocate(b, NewPlugin()) }

func benchGoPlugin(b *testing.B) {
	path, err := pluginBinary()
	if err != nil {
		b.Skip(err.Error())
	}
	benchAllocate(b, startBinary(b, path))
}

func BenchmarkAllocate(b *testing.B) {
	b.Run("inprocess", benchInProcess)
	b.Run("goplugin", benchGoPlugin)
}

// TestReportOverheadRatio runs both benchmarks and logs what crossing the
// process boundary costs per Allocate call. It is a report, not a check:
// run it with CORRAL_BENCH_RATIO=1 (and CORRAL_BIN_DIR) and -v.
func TestReportOverheadRatio(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_RATIO") != "1" {
		t.Skip("set CORRAL_BENCH_RATIO=1 to run the in-process vs go-plugin benchmarks and log their ratio")
	}
	if _, err := pluginBinary(); err != nil {
		t.Skip(err.Error())
	}
	in := testing.Benchmark(benchInProcess)
	gp := testing.Benchmark(benchGoPlugin)
	if in.N == 0 || gp.N == 0 {
		t.Fatalf("a benchmark did not run: inprocess N=%d, goplugin N=%d", in.N, gp.N)
	}
	t.Logf("Allocate on %d agents, %d frameworks, %d roles (one call per op):", benchAgents, benchFrameworks, benchRoles)
	t.Logf("%-10s %10s %14s %12s %12s", "mode", "ops", "ns/op", "B/op", "allocs/op")
	for _, r := range []struct {
		name string
		res  testing.BenchmarkResult
	}{{"inprocess", in}, {"goplugin", gp}} {
		t.Logf("%-10s %10d %14d %12d %12d", r.name, r.res.N, r.res.NsPerOp(), r.res.AllocedBytesPerOp(), r.res.AllocsPerOp())
	}
	t.Logf("goplugin/inprocess ratio: %.2fx (%d ns of overhead per call)",
		float64(gp.NsPerOp())/float64(in.NsPerOp()), gp.NsPerOp()-in.NsPerOp())
}
