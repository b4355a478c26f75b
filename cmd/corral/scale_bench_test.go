package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/scheduler"
)

// TestReportScale is the Mesos paper's scalability experiment on one
// machine: one real master (`corral master`, the DRF allocator plugin),
// N emulated agents (`corral agent -emulate`, several processes), four
// load frameworks and one probe framework, all over real gRPC. Two phases
// on the same cluster:
//
//	throughput   the load frameworks launch 2 s tasks on every offer, as
//	             many as the agents hold; placements/s is tasks whose
//	             TASK_RUNNING the framework received and the master
//	             accepted the acknowledgement of, per second, over the
//	             measurement window (after a warm-up of 20 s once
//	             the first tasks run; the rate of each 5 s slice of both
//	             is logged).
//	overhead     the load frameworks hold half that rate in the background
//	             (5 s tasks); the probe launches one 10 s task a second and
//	             times each from its Launch call to its TASK_FINISHED:
//	             overhead = that time - 10 s (the paper's figure 7).
//
// It reports master RSS and CPU, the allocation cycle time from the
// master's metrics, the emulators' and the frameworks' CPU, and the load
// average. Run with `make bench-scale` (CORRAL_BENCH_SCALE=1; sizes in
// CORRAL_BENCH_SCALE_AGENTS, default "50000").
func TestReportScale(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_SCALE") == "" {
		t.Skip("a benchmark: run with make bench-scale")
	}
	sizes := envOr("CORRAL_BENCH_SCALE_AGENTS", "50000")
	window := time.Duration(envInt(t, "CORRAL_BENCH_SCALE_SECONDS", 30)) * time.Second
	perProc := envInt(t, "CORRAL_BENCH_SCALE_PER_PROC", 10000)
	probes := envInt(t, "CORRAL_BENCH_SCALE_PROBES", 40)
	var rows []scaleRow
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("CORRAL_BENCH_SCALE_AGENTS: %q is not a positive number", s)
		}
		t.Run(fmt.Sprintf("agents=%d", n), func(t *testing.T) {
			rows = append(rows, scaleRun(t, n, perProc, window, probes))
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\none master (DRF plugin), emulated agents of cpus:4;mem:8192, 4 load frameworks + 1 probe; %d s windows\n", int(window.Seconds()))
	fmt.Fprintf(&b, "%7s %11s %9s %9s %12s %12s %9s %9s %9s %10s %10s %10s %9s %10s %s\n",
		"agents", "placed/s", "m.CPU", "m.RSS", "cycle mean", "cycle p99", "alloc CPU", "emu CPU", "fw CPU",
		"bg/s", "ovh p50", "ovh p99", "probes", "ovh max", "load avg (thr / ovh)")
	for _, r := range rows {
		fmt.Fprintf(&b, "%7d %11.0f %8.2fc %5.0f MiB %9.1f ms %9.1f ms %8.2fc %8.2fc %8.2fc %10.0f %7.0f ms %7.0f ms %9d %7.0f ms %s / %s\n",
			r.agents, r.placed, r.masterCPU, r.masterRSS, r.cycleMean*1e3, r.cycleP99*1e3, r.allocCPU, r.emuCPU, r.fwCPU,
			r.background, r.ovhP50*1e3, r.ovhP99*1e3, r.probes, r.ovhMax*1e3, r.loadThr, r.loadOvh)
	}
	b.WriteString("m.CPU/alloc CPU/emu CPU/fw CPU: cores used during the throughput window (master / its allocator plugin process / all emulator processes / the test's frameworks)\n")
	b.WriteString("cycle: allocation cycle time (corral_master_allocation_cycle_seconds) during the throughput window\n")
	b.WriteString("bg/s: background placements per second during the overhead phase; ovh: probe's 10 s task finish - launch - 10 s\n")
	fmt.Fprintf(&b, "\n%7s %10s %12s %14s %s\n", "agents", "register", "m.RSS then", "per agent", "load avg")
	for _, r := range rows {
		fmt.Fprintf(&b, "%7d %8.1f s %8.0f MiB %10.1f KiB %s\n", r.agents, r.regTime, r.regRSS, r.perAgentKiB, r.loadReg)
	}
	b.WriteString("register: from the emulators' start until the master counts every agent; per agent: the master's RSS growth over the bare master's, per agent")
	t.Log(b.String())
}

type scaleRow struct {
	agents                       int
	placed, masterCPU, masterRSS float64
	cycleMean, cycleP99          float64
	emuCPU, fwCPU, background    float64
	allocCPU                     float64
	ovhP50, ovhP99, ovhMax       float64
	probes                       int
	loadThr, loadOvh             string
	// regTime is how long the agents took to register; regRSS the
	// master's RSS then, perAgentKiB its growth over the bare master's
	// per agent.
	regTime, regRSS, perAgentKiB float64
	loadReg                      string
}

var pprofLine = regexp.MustCompile(`pprof at http://(\S+)`)

func scaleRun(t *testing.T, agents, perProc int, window time.Duration, probes int) scaleRow {
	row := scaleRow{agents: agents}
	pprof := os.Getenv("CORRAL_BENCH_SCALE_PPROF") // a directory: CPU profiles of each phase land there
	if pprof != "" {
		t.Setenv("CORRAL_PPROF_ADDR", "127.0.0.1:0")
	}
	m := startCorral(t, "master", "-master", "127.0.0.1:0", "-work-dir", t.TempDir(), "-log-level", "warn")
	addr := m.waitLine(masterLine)
	rss0 := rssMiB(m.cmd.Process.Pid)
	regStart := time.Now()
	var profAddrs []string
	if pprof != "" {
		profAddrs = append(profAddrs, "master="+m.waitLine(pprofLine))
	}
	var emus []*proc
	if dir := os.Getenv("CORRAL_BENCH_SCALE_LOGS"); dir != "" {
		// For looking into where the time went: every process's stderr.
		defer func() {
			writeLines(t, filepath.Join(dir, fmt.Sprintf("%d-master.log", agents)), m)
			for i, e := range emus {
				writeLines(t, filepath.Join(dir, fmt.Sprintf("%d-emu%d.log", agents, i)), e)
			}
		}()
	}
	for i := 0; i*perProc < agents; i++ {
		n := min(perProc, agents-i*perProc)
		// Each process's agents are named emuI-0, emuI-1, ...
		cfg := filepath.Join(t.TempDir(), "emu.hcl")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("agent {\n  hostname = \"emu%d\"\n}\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		e := startCorral(t, "agent", "-config", cfg, "-emulate", strconv.Itoa(n), "-master", addr,
			"-resources", "cpus:4;mem:8192", "-log-level", "warn")
		emus = append(emus, e)
		if pprof != "" {
			profAddrs = append(profAddrs, fmt.Sprintf("emu%d=%s", i, e.waitLine(pprofLine)))
		}
	}
	waitMetric(t, addr, fmt.Sprintf("%d agents registered", agents), 20*time.Minute,
		func(m map[string]float64) bool { return m["corral_master_agents"] >= float64(agents) })
	row.regTime = time.Since(regStart).Seconds()
	row.loadReg = loadAvg()
	row.regRSS = rssMiB(m.cmd.Process.Pid)
	row.perAgentKiB = (row.regRSS - rss0) * 1024 / float64(agents)
	t.Logf("%d agents registered in %.1f s; master RSS %.0f MiB (%.0f MiB before the agents: %.1f KiB per agent)",
		agents, row.regTime, row.regRSS, rss0, row.perAgentKiB)

	slots := agents * 4
	var load []*scaleFramework
	for i := range 4 {
		f := newScaleFramework(fmt.Sprintf("load%d", i), "2", slots/4)
		startScaleFramework(t, addr, f)
		load = append(load, f)
	}

	// Throughput: every framework launches on every offer. The window
	// opens once tasks are being placed (at 10k agents and more the
	// first allocation cycles alone take seconds).
	snap := func() (placed int64) {
		for _, f := range load {
			placed += f.running.Load()
		}
		return placed
	}
	warm := time.Now()
	for deadline := warm.Add(10 * time.Minute); snap() < int64(min(slots/10, 1000)); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d tasks placed 10 minutes after the frameworks subscribed; launch errors: %s",
				min(slots/10, 1000), load[0].errors())
		}
	}
	t.Logf("warm-up: %d tasks placed %.1f s after the frameworks subscribed", snap(), time.Since(warm).Seconds())
	// Then ten task lifetimes more before the window opens: the first
	// cycles at 50k agents offer the whole cluster at once and the
	// frameworks' launches queue behind them; a window opened then
	// measured the ramp (3.5k/s in the first 30 s at 50k agents, 7.5k/s
	// later in the same run). The rate keeps swinging after that (the 2 s
	// tasks end in waves), so the window is an average of 5 s slices,
	// printed too.
	const slice = 5 * time.Second
	var rates []float64
	for prev, end := snap(), time.Now().Add(20*time.Second); time.Now().Before(end); {
		time.Sleep(slice) // a sampling interval, not a wait on a condition
		cur := snap()
		rates = append(rates, float64(cur-prev)/slice.Seconds())
		prev = cur
	}
	t.Logf("warm-up: placements/s in 5 s slices %.0f", rates)
	before, mBefore := snap(), mustScrape(t, addr)
	plugins := childPIDs(m.cmd.Process.Pid) // the allocator plugin (and any other plugin the master runs)
	cpuM, cpuE, cpuF, cpuA := procCPU(m.cmd.Process.Pid), emuCPU(emus), selfCPU(), pidsCPU(plugins)
	start := time.Now()
	prof := startProfiles(t, pprof, profAddrs, "throughput", window)
	rates = rates[:0]
	for prev, at, end := before, start, start.Add(window); time.Now().Before(end); {
		time.Sleep(min(slice, time.Until(end))) // the measurement window itself, sampled
		cur, now := snap(), time.Now()
		rates = append(rates, float64(cur-prev)/now.Sub(at).Seconds())
		prev, at = cur, now
	}
	prof()
	t.Logf("throughput window: placements/s in 5 s slices %.0f", rates)
	el := time.Since(start).Seconds()
	row.placed = float64(snap()-before) / el
	mAfter := mustScrape(t, addr)
	row.masterCPU = (procCPU(m.cmd.Process.Pid) - cpuM) / el
	row.emuCPU = (emuCPU(emus) - cpuE) / el
	row.allocCPU = (pidsCPU(plugins) - cpuA) / el
	row.fwCPU = (selfCPU() - cpuF) / el
	row.masterRSS = rssMiB(m.cmd.Process.Pid)
	row.cycleMean, row.cycleP99 = histDelta(mBefore, mAfter, "corral_master_allocation_cycle_seconds")
	row.loadThr = loadAvg()
	t.Logf("throughput: %.0f placements/s, master %.2f cores, cycle mean %.1f ms", row.placed, row.masterCPU, row.cycleMean*1e3)
	if row.placed == 0 {
		t.Errorf("nothing placed; launch errors: %s", load[0].errors())
	}

	// Overhead: half the measured rate in the background, 5 s tasks.
	bg := max(int(row.placed/2*5), 1)
	for _, f := range load {
		f.dur.Store("5")
		f.limit.Store(int64(bg / len(load)))
	}
	// Let the 2 s tasks drain down to the new limit.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var in int64
		for _, f := range load {
			in += f.inflight.Load()
		}
		if in <= int64(bg) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("load frameworks still hold %d tasks, over the background limit %d, after 2 minutes: probing anyway", in, bg)
			break
		}
	}
	p := newProbeFramework()
	startScaleFramework(t, addr, p.scaleFramework)
	bgBefore, bgStart := snap(), time.Now()
	stopProf := startProfiles(t, pprof, profAddrs, "overhead", window)
	go p.loop(probes)
	select {
	case <-p.done:
	case <-time.After(time.Duration(probes)*time.Second + 3*time.Minute):
		t.Errorf("probes incomplete after %d s: %d of %d finished", probes+180, len(p.results()), probes)
	}
	stopProf()
	row.background = float64(snap()-bgBefore) / time.Since(bgStart).Seconds()
	ovh := p.results()
	sort.Float64s(ovh)
	row.probes = len(ovh)
	row.ovhP50, row.ovhP99, row.ovhMax = quantile(ovh, .5), quantile(ovh, .99), quantile(ovh, 1)
	row.loadOvh = loadAvg()
	var failed int64
	for _, f := range append(load, p.scaleFramework) {
		failed += f.failed.Load()
	}
	for _, f := range append(load, p.scaleFramework) {
		if e := f.errors(); e != "" {
			t.Logf("%s: launch errors: %s", f.name, e)
		}
	}
	if failed > 0 {
		t.Errorf("%d tasks ended other than TASK_FINISHED", failed)
	}
	return row
}

// scaleFramework launches tasks of one shape on every offer while it holds
// fewer than limit, up to 32 Launch calls at once.
type scaleFramework struct {
	name     string
	dur      atomic.Value // string: the tasks' duration label
	limit    atomic.Int64
	inflight atomic.Int64
	running  atomic.Int64 // TASK_RUNNING received and its acknowledgement accepted
	failed   atomic.Int64
	next     atomic.Int64
	sem      chan struct{}
	subCh    chan struct{}
	onOffers func(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) bool
	onUpdate func(st *corralpb.TaskStatus)
	errMu    sync.Mutex
	errs     map[string]int // launch errors by message
}

func (f *scaleFramework) noteError(err error) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.errs == nil {
		f.errs = map[string]int{}
	}
	f.errs[offerIDPattern.ReplaceAllString(err.Error(), "offer-ID")]++
}

func (f *scaleFramework) errors() string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	var out []string
	for msg, n := range f.errs {
		out = append(out, fmt.Sprintf("%dx %s", n, msg))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// offerIDs are masked in launch errors, which then group by cause.
var offerIDPattern = regexp.MustCompile(`offer-[0-9a-f]+`)

var scaleTask = resources.MustParse("cpus:1;mem:256")

// scaleAcksInFlight is each framework's bound on acknowledgements in
// flight (the SDK's default). More (512, with 128 launches in flight)
// only lengthened the queues the probe's task waits in once the machine
// was saturated: overhead p50 seconds instead of about 100 ms.
const scaleAcksInFlight = 64

func newScaleFramework(name, dur string, limit int) *scaleFramework {
	f := &scaleFramework{name: name, sem: make(chan struct{}, 32), subCh: make(chan struct{}, 1)}
	f.limit.Store(int64(limit))
	f.dur.Store(dur)
	return f
}

func startScaleFramework(t *testing.T, addr string, f *scaleFramework) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- scheduler.Run(ctx, scheduler.Config{Master: addr,
			Framework: &corralpb.FrameworkInfo{Name: f.name}, MaxAcksInFlight: scaleAcksInFlight,
			Logger: hclog.New(&hclog.LoggerOptions{Name: f.name, Level: hclog.Error})}, f)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-f.subCh:
	case err := <-done:
		t.Fatalf("framework %s ended: %v", f.name, err)
	case <-time.After(2 * time.Minute):
		t.Fatalf("framework %s did not subscribe within 2 minutes", f.name)
	}
}

func (f *scaleFramework) Subscribed(context.Context, scheduler.Driver, string, bool) {
	select {
	case f.subCh <- struct{}{}:
	default:
	}
}

func (f *scaleFramework) task(agentID string) *corralpb.TaskInfo {
	id := fmt.Sprintf("%s-%d", f.name, f.next.Add(1))
	// The emulated agents run "sleep N" as a timer of N seconds.
	return &corralpb.TaskInfo{TaskId: id, Name: id, AgentId: agentID, Resources: scaleTask.ToProto(),
		Command: &corralpb.CommandInfo{Shell: true, Value: "sleep " + f.dur.Load().(string)}}
}

func (f *scaleFramework) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	if f.onOffers != nil && f.onOffers(ctx, d, offers) {
		return
	}
	var decline []string
	for _, o := range offers {
		free, _ := resources.FromProto(o.GetResources())
		var tasks []*corralpb.TaskInfo
		for free.Contains(scaleTask) && f.inflight.Load() < f.limit.Load() {
			free = free.Subtract(scaleTask)
			f.inflight.Add(1)
			tasks = append(tasks, f.task(o.GetAgentId()))
		}
		if len(tasks) == 0 {
			decline = append(decline, o.GetId())
			continue
		}
		// The callback does not wait for a launch slot: the event loop
		// goes on delivering (and acknowledging) status updates.
		go func() {
			f.sem <- struct{}{}
			defer func() { <-f.sem }()
			if err := d.Launch(ctx, []string{o.GetId()}, tasks, nil); err != nil {
				f.inflight.Add(-int64(len(tasks)))
				f.noteError(err)
			}
		}()
	}
	if len(decline) > 0 {
		refuse := 1.0
		_ = d.Decline(ctx, decline, &corralpb.Filters{RefuseSeconds: &refuse})
	}
}

func (f *scaleFramework) Rescinded(context.Context, scheduler.Driver, string) {}
func (f *scaleFramework) Error(context.Context, scheduler.Driver, string)     {}

func (f *scaleFramework) Update(_ context.Context, _ scheduler.Driver, st *corralpb.TaskStatus) {
	if f.onUpdate != nil {
		f.onUpdate(st)
	}
	if len(st.GetUuid()) == 0 || !terminalState(st.GetState()) {
		return
	}
	f.inflight.Add(-1)
	if st.GetState() != corralpb.TaskState_TASK_FINISHED {
		f.failed.Add(1)
	}
}

func (f *scaleFramework) Acknowledged(_ context.Context, _ scheduler.Driver, st *corralpb.TaskStatus, err error) {
	if err == nil && st.GetState() == corralpb.TaskState_TASK_RUNNING {
		f.running.Add(1)
	}
}

// probeFramework launches one 10 s task a second, each on the first offer
// after it asks (Revive), and stays suppressed in between so that it does
// not take offers from the load.
type probeFramework struct {
	*scaleFramework
	mu       sync.Mutex
	want     int
	launched map[string]time.Time
	overhead []float64
	total    int
	done     chan struct{}
	d        scheduler.Driver
	ctx      context.Context
	ready    chan struct{}
}

func newProbeFramework() *probeFramework {
	p := &probeFramework{scaleFramework: newScaleFramework("probe", "10", 0), launched: map[string]time.Time{},
		done: make(chan struct{}), ready: make(chan struct{})}
	p.onOffers = p.offers
	p.onUpdate = p.update
	return p
}

func (p *probeFramework) offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) bool {
	p.mu.Lock()
	if p.d == nil {
		p.d, p.ctx = d, ctx
		close(p.ready)
	}
	var decline []string
	for _, o := range offers {
		if free, _ := resources.FromProto(o.GetResources()); p.want > 0 && free.Contains(scaleTask) {
			p.want--
			task := p.task(o.GetAgentId())
			p.launched[task.GetTaskId()] = time.Now()
			p.mu.Unlock()
			if err := d.Launch(ctx, []string{o.GetId()}, []*corralpb.TaskInfo{task}, nil); err != nil {
				p.noteError(err)
				p.mu.Lock()
				delete(p.launched, task.GetTaskId())
				p.want++
				p.mu.Unlock()
			}
			p.mu.Lock()
			continue
		}
		decline = append(decline, o.GetId())
	}
	idle := p.want == 0
	p.mu.Unlock()
	if len(decline) > 0 {
		refuse := 3600.0 // until the next Revive
		_ = d.Decline(ctx, decline, &corralpb.Filters{RefuseSeconds: &refuse})
	}
	if idle {
		_ = d.Suppress(ctx)
	}
	return true
}

func (p *probeFramework) update(st *corralpb.TaskStatus) {
	if st.GetState() != corralpb.TaskState_TASK_FINISHED || len(st.GetUuid()) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.launched[st.GetTaskId()]
	if !ok {
		return
	}
	delete(p.launched, st.GetTaskId())
	p.overhead = append(p.overhead, time.Since(at).Seconds()-10)
	if len(p.overhead) == p.total {
		close(p.done)
	}
}

func (p *probeFramework) results() []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]float64(nil), p.overhead...)
}

// loop asks for one probe a second until n were launched. The first offer
// (before any Suppress) tells it the driver.
func (p *probeFramework) loop(n int) {
	p.mu.Lock()
	p.total = n
	p.want = 1
	p.mu.Unlock()
	<-p.ready
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for asked := 1; asked < n; {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		p.mu.Lock()
		p.want++
		p.mu.Unlock()
		asked++
		_ = p.d.Revive(p.ctx)
	}
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func mustScrape(t *testing.T, addr string) map[string]float64 {
	m, err := scrape(addr)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return m
}

// histDelta is the mean and the p99 (the upper bound of its bucket) of a
// Prometheus histogram's observations between two scrapes.
func histDelta(before, after map[string]float64, name string) (mean, p99 float64) {
	count := after[name+"_count"] - before[name+"_count"]
	if count <= 0 {
		return math.NaN(), math.NaN()
	}
	mean = (after[name+"_sum"] - before[name+"_sum"]) / count
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range after {
		if !strings.HasPrefix(k, name+"_bucket{le=\"") {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(k, name+"_bucket{le=\""), "\"}"), 64)
		if err != nil {
			le = math.Inf(1)
		}
		bs = append(bs, bucket{le, v - before[k]})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		if b.n >= 0.99*count {
			return mean, b.le
		}
	}
	return mean, math.Inf(1)
}

// procCPU is the CPU seconds (user+system) a process used so far.
func procCPU(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields from the state (field 3): utime is field 14, stime 15.
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// childPIDs are the processes whose parent is pid.
func childPIDs(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, st := range stats {
		raw, err := os.ReadFile(st)
		if err != nil {
			continue // ended meanwhile
		}
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(st))); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func pidsCPU(pids []int) float64 {
	var s float64
	for _, p := range pids {
		s += procCPU(p)
	}
	return s
}

func emuCPU(ps []*proc) float64 {
	var s float64
	for _, p := range ps {
		s += procCPU(p.cmd.Process.Pid)
	}
	return s
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func loadAvg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// startProfiles takes a CPU profile of every process in addrs ("name=host:port")
// over d into dir/<phase>-<name>.pprof; the returned func waits for them.
func startProfiles(t *testing.T, dir string, addrs []string, phase string, d time.Duration) func() {
	if dir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	for _, a := range addrs {
		name, hostport, _ := strings.Cut(a, "=")
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", hostport, int(d.Seconds())))
			if err != nil {
				t.Logf("profile %s: %v", name, err)
				return
			}
			defer resp.Body.Close()
			out, err := os.Create(filepath.Join(dir, phase+"-"+name+".pprof"))
			if err != nil {
				t.Logf("profile %s: %v", name, err)
				return
			}
			defer out.Close()
			_, _ = out.ReadFrom(resp.Body)
		}()
	}
	return wg.Wait
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s: %q is not a positive number", name, v)
	}
	return n
}
