package allocatortest

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// BenchShape describes a benchmark cluster in the shape of Mesos'
// allocator benchmarks: agents of cpus:16, mem:64 GiB and a ports range,
// each partly used by a running task; frameworks spread over roles, all
// wanting offers; half of them decline every offer with a one-hour filter,
// the other half keep what they are offered. Each cycle recovers the
// resources declined in the previous one and offers them again (to
// frameworks that have not filtered them yet), with filters piling up.
type BenchShape struct {
	Agents, Frameworks, Roles int
	// Quota gives every role a small guarantee and a limit; Tiers gives
	// roles priorities 0..2.
	Quota, Tiers bool
}

func (b BenchShape) String() string {
	return fmt.Sprintf("agents=%d/frameworks=%d/roles=%d", b.Agents, b.Frameworks, b.Roles)
}

var (
	benchAgentTotal = resources.MustParse("cpus:16;mem:65536;disk:102400;ports:[31000-32000]")
	benchAgentUsed  = resources.MustParse("cpus:4;mem:16384;ports:[31000-31009]")
)

// BenchCluster drives an allocator through steady-state cycles. It plays
// the master's side as cheaply as it can so that what is measured is the
// allocator (and, for a plugin binary, the wire).
type BenchCluster struct {
	a       allocator.Allocator
	shape   BenchShape
	version uint64
	now     allocator.LogicalTime
	pending []allocator.Delta
	decline map[string]bool // framework -> declines everything

	// PeerCPU, when set, reads the CPU time another process (the plugin
	// binary) has used so far; Allocate adds what it used during the call
	// to the cycle's CPU time.
	PeerCPU func() time.Duration
	lastCPU time.Duration
	// LastPeerCPU is PeerCPU's part of the last call's CPU time.
	LastPeerCPU time.Duration
	// PeerFaults, when set, reads the minor page faults the other process
	// has taken so far; LastFaults is the last call's faults, this
	// process's and the peer's. A fault on a fresh page costs more CPU
	// than most of a cycle's work on it, and a process whose heap is
	// still growing takes hundreds a cycle.
	PeerFaults func() int64
	LastFaults int64
	// Wire sizes of the last call, when the allocator is the host side
	// of the gRPC glue.
	lastReq, lastResp int
	// Declined and Kept count the offers Answer gave back with a filter
	// and let stand, since the cluster started.
	Declined, Kept int
}

// NewBenchCluster initializes a with the cluster shape describes.
func NewBenchCluster(ctx context.Context, a allocator.Allocator, shape BenchShape) (*BenchCluster, error) {
	if shape.Roles <= 0 {
		shape.Roles = 1
	}
	c := &BenchCluster{a: a, shape: shape, version: 1, decline: map[string]bool{}}
	if ws, ok := a.(allocator.WireSizer); ok {
		ws.MeasureWire()
	}
	snap := &allocator.Snapshot{Version: 1}
	for i := range shape.Roles {
		r := allocator.Role{Name: benchRole(i), Weight: float64(1 + i%3)}
		if shape.Quota {
			r.Guarantee = resources.MustParse("cpus:1;mem:1024")
			r.Limit = resources.MustParse("cpus:64")
		}
		if shape.Tiers {
			r.Priority = int64(i % 3)
		}
		snap.Roles = append(snap.Roles, r)
	}
	for i := range shape.Frameworks {
		id := fmt.Sprintf("fw-%05d", i)
		c.decline[id] = i%2 == 1
		snap.Frameworks = append(snap.Frameworks, allocator.Framework{ID: id, Roles: []string{benchRole(i % shape.Roles)}, Active: true})
	}
	for i := range shape.Agents {
		id := fmt.Sprintf("agent-%06d", i)
		snap.Agents = append(snap.Agents, allocator.Agent{ID: id, Hostname: id, Total: benchAgentTotal, Active: true})
		f := i % max(shape.Frameworks, 1)
		if shape.Frameworks > 0 {
			snap.Allocations = append(snap.Allocations, allocator.Allocation{
				FrameworkID: fmt.Sprintf("fw-%05d", f), Role: benchRole(f % shape.Roles), AgentID: id, Resources: benchAgentUsed,
			})
		}
	}
	v, err := a.Init(ctx, snap)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if v != snap.Version {
		return nil, fmt.Errorf("init acknowledged version %d, sent %d", v, snap.Version)
	}
	return c, nil
}

func benchRole(i int) string { return fmt.Sprintf("role-%04d", i) }

// Cycle runs one allocation cycle and returns its duration (the Allocate
// call only) and the number of offers, then answers it (see Answer).
func (c *BenchCluster) Cycle(ctx context.Context) (time.Duration, int, error) {
	resp, took, err := c.Allocate(ctx)
	if err != nil {
		return took, 0, err
	}
	c.Answer(resp)
	return took, len(resp.Offers), nil
}

// Allocate makes the cycle's Allocate call (what benchmarks time).
func (c *BenchCluster) Allocate(ctx context.Context) (*allocator.AllocateResponse, time.Duration, error) {
	c.now += 1000
	req := &allocator.AllocateRequest{
		BaseVersion: c.version, Deltas: c.pending, TargetVersion: c.version + uint64(len(c.pending)),
		Now: c.now, Trigger: allocator.TriggerTimer,
	}
	// The peer is read outside this process's reading, whose cost (a
	// walk of /proc) would otherwise count as the cycle's.
	peer0, pf0 := c.peerCPU(), c.peerFaults()
	cpu0, f0 := selfUsage()
	began := time.Now()
	resp, err := c.a.Allocate(ctx, req)
	took := time.Since(began)
	cpu1, f1 := selfUsage()
	c.LastPeerCPU = c.peerCPU() - peer0
	c.lastCPU = cpu1 - cpu0 + c.LastPeerCPU
	c.LastFaults = f1 - f0 + c.peerFaults() - pf0
	if ws, ok := c.a.(allocator.WireSizer); ok {
		c.lastReq, c.lastResp = ws.LastWireBytes()
	}
	if err != nil {
		return nil, took, err
	}
	c.version = req.TargetVersion
	return resp, took, nil
}

// LastCPU is the CPU time the last Allocate call used: this process (all
// its threads, so its garbage collector too) plus PeerCPU's. Unlike the
// wall time it hardly depends on what else runs on the machine.
func (c *BenchCluster) LastCPU() time.Duration { return c.lastCPU }

func (c *BenchCluster) peerCPU() time.Duration {
	if c.PeerCPU == nil {
		return 0
	}
	return c.PeerCPU()
}

func (c *BenchCluster) peerFaults() int64 {
	if c.PeerFaults == nil {
		return 0
	}
	return c.PeerFaults()
}

// selfUsage is the user and system CPU time of this process so far, and
// its minor page faults.
func selfUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), int64(ru.Minflt)
}

// Answer plays the master and the frameworks after a cycle: every offer is
// committed; decliners give theirs back with a one-hour filter, the others
// keep theirs.
func (c *BenchCluster) Answer(resp *allocator.AllocateResponse) {
	c.pending = c.pending[:0]
	for _, o := range resp.Offers {
		al := &allocator.Allocation{FrameworkID: o.FrameworkID, Role: o.Role, AgentID: o.AgentID, Resources: o.Resources}
		c.add(allocator.Delta{Kind: allocator.Allocated, Allocation: al})
	}
	for _, o := range resp.Offers {
		if c.decline[o.FrameworkID] {
			al := &allocator.Allocation{FrameworkID: o.FrameworkID, Role: o.Role, AgentID: o.AgentID, Resources: o.Resources}
			c.add(allocator.Delta{Kind: allocator.Recovered, Allocation: al, RefuseSeconds: 3600})
			c.Declined++
		} else {
			c.Kept++
		}
	}
}

func (c *BenchCluster) add(d allocator.Delta) {
	d.Version = c.version + uint64(len(c.pending)) + 1
	d.At = c.now
	c.pending = append(c.pending, d)
}

// BenchResult summarizes steady-state cycles.
type BenchResult struct {
	First     time.Duration // the first cycle after Init
	Median    time.Duration // of the cycles after it
	CPUMedian time.Duration // CPU time of those cycles (see LastCPU)
	// PeerCPUMedian is the median of the cycles' PeerCPU part (0 without
	// PeerCPU): CPUMedian minus it is roughly what this process used,
	// its garbage collection included whoever's garbage it collects.
	PeerCPUMedian  time.Duration
	FaultsMedian   int64  // minor page faults per cycle (see LastFaults)
	Offers         int    // in the last cycle
	AllocsPerCycle uint64 // heap allocations in this process per steady cycle (Answer's included)
	BytesPerCycle  uint64
	// Median encoded sizes of the steady cycles' Allocate request and
	// response, through the gRPC glue (0 in process).
	RequestBytes, ResponseBytes int
}

// CallFloor is the CPU time of the cheapest call the allocator takes,
// PluginInfo, measured as LastCPU measures a cycle (this process and the
// peer together), median of n calls. Through a plugin binary it is one
// round trip on the connection the cycles use, with a few bytes each way:
// no out-of-process policy can cost less per cycle than its in-process
// twin plus this.
func (c *BenchCluster) CallFloor(ctx context.Context, n int) (time.Duration, error) {
	xs := make([]time.Duration, 0, n)
	for range n {
		peer0 := c.peerCPU()
		cpu0, _ := selfUsage()
		if _, err := c.a.PluginInfo(ctx); err != nil {
			return 0, err
		}
		cpu1, _ := selfUsage()
		xs = append(xs, cpu1-cpu0+c.peerCPU()-peer0)
	}
	return median(xs), nil
}

// RunBench runs one first cycle and then cycles steady-state cycles.
func (c *BenchCluster) RunBench(ctx context.Context, cycles int) (BenchResult, error) {
	rs, err := RunBenches(ctx, cycles, c)
	if err != nil {
		return BenchResult{}, err
	}
	return rs[0], nil
}

// RunBenches runs the clusters side by side: each one's first cycle, then
// cycles steady-state cycles taking turns, so that on a shared machine a
// burst of load falls on all of them alike and their ratio means
// something. The order changes from one round to the next through every
// permutation of the clusters (turnOrder), so that each follows each other
// equally often: a cycle's CPU time includes whatever garbage collection
// of this process runs meanwhile, some of it owed by the cluster before.
// (Alternating the order, as before, kept the second of three clusters in
// the middle, following the first in every other round.) The clusters
// should be of one shape: round i then finds the same state in each.
func RunBenches(ctx context.Context, cycles int, clusters ...*BenchCluster) ([]BenchResult, error) {
	rs := make([]BenchResult, len(clusters))
	for i, c := range clusters {
		first, _, err := c.Cycle(ctx)
		if err != nil {
			return nil, err
		}
		rs[i].First = first
	}
	times := make([][]time.Duration, len(clusters))
	cpus := make([][]time.Duration, len(clusters))
	peers := make([][]time.Duration, len(clusters))
	faults := make([][]int64, len(clusters))
	reqs := make([][]int, len(clusters))
	resps := make([][]int, len(clusters))
	var ms0, ms1 runtime.MemStats
	for round := range cycles {
		for _, i := range turnOrder(round, len(clusters)) {
			c := clusters[i]
			runtime.ReadMemStats(&ms0)
			d, n, err := c.Cycle(ctx)
			if err != nil {
				return nil, err
			}
			runtime.ReadMemStats(&ms1)
			times[i] = append(times[i], d)
			cpus[i] = append(cpus[i], c.lastCPU)
			peers[i] = append(peers[i], c.LastPeerCPU)
			faults[i] = append(faults[i], c.LastFaults)
			reqs[i] = append(reqs[i], c.lastReq)
			resps[i] = append(resps[i], c.lastResp)
			rs[i].Offers = n
			rs[i].AllocsPerCycle += ms1.Mallocs - ms0.Mallocs
			rs[i].BytesPerCycle += ms1.TotalAlloc - ms0.TotalAlloc
		}
	}
	for i := range rs {
		if cycles == 0 {
			continue
		}
		rs[i].Median, rs[i].CPUMedian = median(times[i]), median(cpus[i])
		rs[i].PeerCPUMedian, rs[i].FaultsMedian = median(peers[i]), median(faults[i])
		rs[i].RequestBytes, rs[i].ResponseBytes = median(reqs[i]), median(resps[i])
		rs[i].AllocsPerCycle /= uint64(cycles)
		rs[i].BytesPerCycle /= uint64(cycles)
	}
	return rs, nil
}

// median sorts xs (not empty) and returns its middle element.
func median[T cmp.Ordered](xs []T) T {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// turnOrder is the round-th permutation of 0..n-1 in lexicographic order,
// cycling through all n! of them (with two clusters: 0 1, 1 0, 0 1, ...).
func turnOrder(round, n int) []int {
	fact := 1
	for k := 2; k <= n; k++ {
		fact *= k
	}
	k := round % fact
	rest := make([]int, n)
	for i := range rest {
		rest[i] = i
	}
	out := make([]int, 0, n)
	for m := n; m > 0; m-- {
		fact /= m
		j := k / fact
		k %= fact
		out = append(out, rest[j])
		rest = append(rest[:j], rest[j+1:]...)
	}
	return out
}
