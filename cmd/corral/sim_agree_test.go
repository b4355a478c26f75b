package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/sim"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/scheduler"
)

// Tolerances of the agreement between `corral sim` and a real cluster,
// generous for a loaded 2-core CI machine: a live cluster adds offer,
// launch and status latency (an allocation cycle is up to 1 s late there
// too) that virtual time has none of.
const (
	// agreeOrderGapS: jobs whose simulated ends are at least this far
	// apart must end in the same order on the real cluster.
	agreeOrderGapS = 2.0
	// agreeUtilAbs: mean CPU utilization over the run (makespan) may
	// differ by this much (absolute).
	agreeUtilAbs = 0.15
	// The real makespan is at least the simulated one minus
	// agreeMakespanEarlyS and at most agreeMakespanFactor times it plus
	// agreeMakespanLateS.
	agreeMakespanEarlyS = 1.0
	agreeMakespanFactor = 1.5
	agreeMakespanLateS  = 5.0
)

// TestSimAgreesWithEmulatedCluster runs testdata/traces/agree.json in the
// simulator (`corral sim`, the DRF plugin binary) and on a real cluster:
// `corral master` with the same plugin and `corral agent -emulate` with
// the trace's agents, the trace's greedy frameworks played by real
// sdk/scheduler frameworks that decide on offers as the simulator's
// greedy model does, jobs arriving at their traced times in wall time.
// Both must agree on completion order, utilization and makespan within
// the tolerances above.
func TestSimAgreesWithEmulatedCluster(t *testing.T) {
	bin := binDir(t)
	tracePath := filepath.Join("..", "..", "testdata", "traces", "agree.json")
	tr, err := sim.LoadTrace(tracePath)
	if err != nil {
		t.Fatal(err)
	}

	// The simulator.
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if code, stdout, stderr := runCLI(t, ctx, "sim", "-trace", tracePath, "-out", out, "-plugin-dir", filepath.Join(bin, "plugins")); code != 0 {
		t.Fatalf("corral sim: exit %d\n%s\n%s", code, stdout, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var results struct{ Runs []sim.Result }
	if err := json.Unmarshal(raw, &results); err != nil {
		t.Fatal(err)
	}
	simRun := results.Runs[0]

	// The real cluster.
	live := runTraceOnEmulatedCluster(t, tr)

	// Compare.
	simEnd := map[string]float64{}
	var rows []string
	for _, j := range simRun.Jobs {
		key := j.Framework + "/" + j.Job
		simEnd[key] = j.EndS
		rows = append(rows, fmt.Sprintf("%-12s sim %5.1f s  real %5.2f s", key, j.EndS, live.jobEnd[key]))
	}
	sort.Strings(rows)
	t.Logf("job ends (arrival of the first job = 0):\n%s\nmean CPU utilization: sim %.3f, real %.3f; makespan: sim %.1f s, real %.2f s",
		strings.Join(rows, "\n"), simRun.MeanUtil[resources.CPUs], live.util, simRun.EndS, live.makespan)
	if len(live.jobEnd) != len(simEnd) {
		t.Fatalf("real cluster finished %d jobs, the simulator %d", len(live.jobEnd), len(simEnd))
	}
	for a, ea := range simEnd {
		for b, eb := range simEnd {
			if eb-ea >= agreeOrderGapS && live.jobEnd[a] >= live.jobEnd[b] {
				t.Errorf("completion order: %s ended before %s in the simulator (%.1f s < %.1f s) but not on the real cluster (%.2f s, %.2f s)",
					a, b, ea, eb, live.jobEnd[a], live.jobEnd[b])
			}
		}
	}
	if d := math.Abs(live.util - simRun.MeanUtil[resources.CPUs]); d > agreeUtilAbs {
		t.Errorf("mean CPU utilization: sim %.3f, real %.3f: differ by %.3f, over %.2f", simRun.MeanUtil[resources.CPUs], live.util, d, agreeUtilAbs)
	}
	if live.makespan < simRun.EndS-agreeMakespanEarlyS || live.makespan > simRun.EndS*agreeMakespanFactor+agreeMakespanLateS {
		t.Errorf("makespan: sim %.1f s, real %.2f s: outside [sim - %.0f s, sim x %.1f + %.0f s]", simRun.EndS, live.makespan,
			agreeMakespanEarlyS, agreeMakespanFactor, agreeMakespanLateS)
	}
}

type realRun struct {
	jobEnd   map[string]float64 // framework/job -> seconds after t0
	util     float64            // mean CPU utilization over [t0, last end]
	makespan float64
}

// runTraceOnEmulatedCluster plays tr (one agent group, greedy frameworks,
// single-stage jobs without jitter or locality: what the agreement trace
// uses) in wall time on corral master + corral agent -emulate.
func runTraceOnEmulatedCluster(t *testing.T, tr *sim.Trace) realRun {
	if len(tr.Agents) != 1 {
		t.Fatalf("trace %s: the agreement test plays one agent group, not %d", tr.Name, len(tr.Agents))
	}
	g := tr.Agents[0]
	m := startCorral(t, "master", "-master", "127.0.0.1:0", "-work-dir", t.TempDir())
	addr := m.waitLine(masterLine)
	startCorral(t, "agent", "-emulate", strconv.Itoa(g.Count), "-master", addr, "-resources", g.Resources)
	waitMetric(t, addr, fmt.Sprintf("%d emulated agents", g.Count), 2*time.Minute,
		func(m map[string]float64) bool { return m["corral_master_agents"] >= float64(g.Count) })
	total := resources.MustParse(g.Resources).Scalar(resources.CPUs) * float64(g.Count)

	var fws []*replayFramework
	for _, spec := range tr.Frameworks {
		if spec.Kind != sim.KindGreedy {
			t.Fatalf("framework %s: the agreement test plays greedy frameworks, not %s", spec.Name, spec.Kind)
		}
		f := &replayFramework{spec: spec, decline: spec.DeclineS, subCh: make(chan struct{}, 1), tasks: map[string]*replayTask{}}
		if f.decline == 0 {
			f.decline = 1
		}
		for _, j := range spec.Jobs {
			if max(j.Count, 1) != 1 || max(j.Stages, 1) != 1 || j.Jitter != 0 || j.Local || len(j.Blocks) > 0 {
				t.Fatalf("framework %s job %s: the agreement test plays single jobs of one stage without jitter or locality", spec.Name, j.Name)
			}
			f.jobs = append(f.jobs, &replayJob{spec: j, name: j.Name + "-0", res: resources.MustParse(j.Task)})
		}
		role := spec.Role
		if role == "" {
			role = spec.Name
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- scheduler.Run(ctx, scheduler.Config{Master: addr,
				Framework: &corralpb.FrameworkInfo{Name: spec.Name, Roles: []string{role}},
				Logger:    hclog.New(&hclog.LoggerOptions{Name: spec.Name, Level: hclog.Warn})}, f)
		}()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-f.subCh:
		case err := <-done:
			t.Fatalf("framework %s ended: %v", spec.Name, err)
		case <-time.After(time.Minute):
			t.Fatalf("framework %s did not subscribe within a minute", spec.Name)
		}
		fws = append(fws, f)
	}

	// Jobs arrive at their traced times from t0.
	t0 := time.Now()
	for _, f := range fws {
		for _, j := range f.jobs {
			time.AfterFunc(time.Until(t0.Add(time.Duration(j.spec.ArrivalS*float64(time.Second)))), func() { f.arrive(j) })
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		done := true
		for _, f := range fws {
			if err := f.failure(); err != "" {
				t.Fatal(err)
			}
			done = done && f.allDone()
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the trace's jobs did not all finish on the real cluster within 3 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := realRun{jobEnd: map[string]float64{}}
	var busy float64 // CPU-seconds
	for _, f := range fws {
		f.mu.Lock()
		for _, j := range f.jobs {
			res.jobEnd[f.spec.Name+"/"+j.spec.Name+"-0"] = j.end.Sub(t0).Seconds()
			res.makespan = max(res.makespan, j.end.Sub(t0).Seconds())
		}
		for _, tk := range f.tasks {
			busy += tk.cpus * tk.end.Sub(tk.start).Seconds()
		}
		f.mu.Unlock()
	}
	res.util = busy / (total * res.makespan)
	return res
}

type replayJob struct {
	spec    sim.Job
	name    string
	res     resources.Resources
	pending int // tasks not launched yet
	left    int // tasks not finished yet
	arrived bool
	end     time.Time
}

type replayTask struct {
	job        *replayJob
	cpus       float64
	start, end time.Time
}

// replayFramework is the simulator's greedy model as a real framework:
// on each offer it launches pending tasks in job order while they fit
// (the offer's rest refused for decline_s), declines offers it has no use
// for, suppresses when nothing is pending and revives when a job arrives.
type replayFramework struct {
	spec    sim.Framework
	decline float64
	subCh   chan struct{}
	driver  atomic.Value // scheduler.Driver, once subscribed

	mu     sync.Mutex // held across Suppress/Revive, so they follow pending's changes in order
	jobs   []*replayJob
	tasks  map[string]*replayTask
	next   int
	failed string
}

func (f *replayFramework) Subscribed(ctx context.Context, d scheduler.Driver, _ string, _ bool) {
	f.mu.Lock()
	if f.hasPendingLocked() {
		_ = d.Revive(ctx)
	} else {
		_ = d.Suppress(ctx) // nothing to do before the first job arrives, as the model
	}
	f.mu.Unlock()
	f.driver.Store(d)
	select {
	case f.subCh <- struct{}{}:
	default:
	}
}

func (f *replayFramework) arrive(j *replayJob) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j.arrived, j.pending, j.left = true, j.spec.Tasks, j.spec.Tasks
	if d, ok := f.driver.Load().(scheduler.Driver); ok {
		if err := d.Revive(context.Background()); err != nil {
			f.failed = fmt.Sprintf("framework %s: revive: %v", f.spec.Name, err)
		}
	}
}

func (f *replayFramework) hasPendingLocked() bool {
	for _, j := range f.jobs {
		if j.pending > 0 {
			return true
		}
	}
	return false
}

func (f *replayFramework) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range offers {
		avail, err := resources.FromProto(o.GetResources())
		if err != nil {
			f.failed = fmt.Sprintf("framework %s: offer %s: %v", f.spec.Name, o.GetId(), err)
			return
		}
		var launch []*corralpb.TaskInfo
		for _, j := range f.jobs {
			for j.pending > 0 && avail.Contains(j.res) {
				j.pending--
				avail = avail.Subtract(j.res)
				id := fmt.Sprintf("%s-%d", j.name, f.next)
				f.next++
				f.tasks[id] = &replayTask{job: j, cpus: j.res.Scalar(resources.CPUs)}
				launch = append(launch, &corralpb.TaskInfo{TaskId: id, Name: id, AgentId: o.GetAgentId(), Resources: j.res.ToProto(),
					Command: &corralpb.CommandInfo{Shell: true, Value: "sleep " + strconv.FormatFloat(j.spec.DurationS, 'f', -1, 64)}})
			}
		}
		refuse := f.decline
		if len(launch) == 0 {
			_ = d.Decline(ctx, []string{o.GetId()}, &corralpb.Filters{RefuseSeconds: &refuse})
			continue
		}
		now := time.Now()
		for _, ti := range launch {
			f.tasks[ti.GetTaskId()].start = now
		}
		if err := d.Launch(ctx, []string{o.GetId()}, launch, &corralpb.Filters{RefuseSeconds: &refuse}); err != nil {
			f.failed = fmt.Sprintf("framework %s: launch on offer %s: %v", f.spec.Name, o.GetId(), err)
			return
		}
	}
	if !f.hasPendingLocked() {
		_ = d.Suppress(ctx)
	}
}

func (f *replayFramework) Update(_ context.Context, _ scheduler.Driver, st *corralpb.TaskStatus) {
	if len(st.GetUuid()) == 0 || !terminalState(st.GetState()) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tk, ok := f.tasks[st.GetTaskId()]
	if !ok || !tk.end.IsZero() {
		return
	}
	if st.GetState() != corralpb.TaskState_TASK_FINISHED {
		f.failed = fmt.Sprintf("framework %s: task %s ended %s: %s", f.spec.Name, st.GetTaskId(), st.GetState(), st.GetMessage())
		return
	}
	tk.end = time.Now()
	if tk.job.left--; tk.job.left == 0 {
		tk.job.end = tk.end
	}
}

func (f *replayFramework) Rescinded(context.Context, scheduler.Driver, string) {}
func (f *replayFramework) Error(_ context.Context, _ scheduler.Driver, msg string) {
	f.mu.Lock()
	f.failed = fmt.Sprintf("framework %s: error from the master: %s", f.spec.Name, msg)
	f.mu.Unlock()
}

func (f *replayFramework) failure() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *replayFramework) allDone() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if !j.arrived || j.left > 0 {
			return false
		}
	}
	return true
}
