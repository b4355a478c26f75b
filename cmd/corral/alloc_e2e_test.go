package main

// End-to-end tests of the allocation policies (issue 5) on clusters of the
// real binaries: `corral master` and `corral agent` as separate processes,
// the allocator plugins from bin/plugins, and stock frameworks: the ntasks
// example (the same code as its binary, run in the test process so the test
// sees every status update as the framework does) and `corral exec`.
//
// The clusters listen on 127.0.0.1 ports chosen at run time and allocate
// every 100ms (testdata/alloc/*.hcl). The tests wait on conditions read from
// the operator API, never on the clock; where a test must show that
// something does not happen, it watches for a number of allocation cycles
// or of task completions, which the cluster reports.

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/examples/ntasks"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// TestAllocDRFPaperExample is the DRF paper's example on a real cluster:
// one agent of <9 CPU, 18 GiB>, a framework of <1 CPU, 4 GiB> tasks and
// one of <3 CPU, 1 GiB> tasks, both with far more tasks than fit. With
// demand declared (ntasks declares it), DRF's progressive filling ends at
// 3 and 2 tasks, both dominant shares 2/3; offering the whole agent to one
// framework at a time (Mesos) ends at 4 and 1.
func TestAllocDRFPaperExample(t *testing.T) {
	skipAllocShort(t)
	_, addr := startAllocMaster(t, "drf_paper.hcl", t.TempDir(), "127.0.0.1:0")

	// Both frameworks subscribe and declare their demand before the agent
	// exists, so the first allocation cycle with resources sees both: with
	// long tasks, a framework alone on the agent would take 4 tasks and keep
	// them. The operator state shows each framework's declared demand.
	mem := startNtasks(t, ntasks.Config{Master: addr, Name: "mem-heavy", Tasks: 20, Command: "sleep 600", CPUs: 1, Mem: 4096})
	cpu := startNtasks(t, ntasks.Config{Master: addr, Name: "cpu-heavy", Tasks: 20, Command: "sleep 600", CPUs: 3, Mem: 1024})
	waitState(t, addr, "both frameworks subscribed with their demand declared", func(s master.State) bool {
		return len(s.Frameworks) == 2 && s.Frameworks[0].Connected && s.Frameworks[1].Connected &&
			len(s.Frameworks[0].Demand) == 1 && len(s.Frameworks[1].Demand) == 1
	})
	mem.waitLog(t, "subscribed")
	cpu.waitLog(t, "subscribed")
	startAllocAgent(t, addr, "cpus:9;mem:18432")

	shapes := []resources.Resources{mustRes(t, "cpus:1;mem:4096"), mustRes(t, "cpus:3;mem:1024")}
	total := mustRes(t, "cpus:9;mem:18432")
	steady := func(s master.State) bool {
		if len(s.Frameworks) != 2 || len(s.Agents) != 1 {
			return false
		}
		var used resources.Resources
		for _, f := range s.Frameworks {
			if f.Offers > 0 {
				return false
			}
			for _, tk := range f.Tasks {
				if tk.State != "TASK_RUNNING" {
					return false
				}
				used = used.Add(mustRes(t, tk.Resources))
			}
		}
		free := total.Subtract(used.Scalars())
		for _, sh := range shapes {
			if free.Contains(sh) {
				return false // a task of this shape still fits: not done
			}
		}
		return true
	}
	waitState(t, addr, "the cluster to be steady (every task running, no offer outstanding, no task of either shape fits)", steady)
	// Shares are what the plugin reported in the last cycle, computed on
	// the ledger the cycle started from: two complete cycles after the
	// steady state they describe it.
	waitCycles(t, addr, 2)
	s := mustState(t, addr)
	if !steady(s) {
		t.Fatalf("the cluster moved after it was steady: %s", fmtShares(s))
	}
	check := func(s master.State) {
		t.Helper()
		want := map[string]int{"mem-heavy": 3, "cpu-heavy": 2}
		for _, f := range s.Frameworks {
			if n := countTasks(f, "TASK_RUNNING"); n != want[f.Name] {
				t.Errorf("%s runs %d tasks, want %d (DRF paper); %s", f.Name, n, want[f.Name], fmtShares(s))
			}
			if math.Abs(f.DominantShare-2.0/3) > 0.01 {
				t.Errorf("%s: dominant share %.4f reported, want 2/3 ± 0.01; %s", f.Name, f.DominantShare, fmtShares(s))
			}
			if len(f.Completed) > 0 {
				t.Errorf("%s: tasks ended: %+v", f.Name, f.Completed)
			}
		}
	}
	check(s)
	if t.Failed() {
		return
	}
	// Nothing more launches or moves over the next cycles.
	waitCycles(t, addr, 10)
	check(mustState(t, addr))
	t.Logf("steady: %s", fmtShares(s))
}

// TestAllocQuotaGuaranteeUnderFlood: a role capped by a limit floods the
// cluster with short tasks; a role with a guarantee arrives with demand.
// As the flood's tasks end, the guarantee is met and the flood never gets
// it back while the guaranteed role has demand; no role ever holds more
// than its limit in offers plus tasks.
func TestAllocQuotaGuaranteeUnderFlood(t *testing.T) {
	skipAllocShort(t)
	_, addr := startAllocMaster(t, "quota_flood.hcl", t.TempDir(), "127.0.0.1:0")
	startAllocAgent(t, addr, "cpus:4;mem:4096")
	total := mustRes(t, "cpus:4;mem:4096")
	floodLimit := mustRes(t, "cpus:3")
	goldGuarantee, goldLimit := mustRes(t, "cpus:2;mem:1024"), mustRes(t, "cpus:3;mem:2048")

	var samples int
	// limits is checked on every state the test reads from now on, and on
	// /api/v1/roles read right after it.
	limits := func(s master.State) {
		samples++
		roles := getRoles(t, addr)
		for _, st := range []master.State{s, {Roles: roles}} {
			if a := roleAllocated(t, st, "flood"); !floodLimit.Contains(only(a, floodLimit)) {
				t.Fatalf("role flood holds %s in offers and tasks, past its limit %s", a, floodLimit)
			}
			if a := roleAllocated(t, st, "gold"); !goldLimit.Contains(only(a, goldLimit)) {
				t.Fatalf("role gold holds %s in offers and tasks, past its limit %s", a, goldLimit)
			}
		}
	}

	flood := startNtasks(t, ntasks.Config{Master: addr, Name: "flood", Role: "flood", Tasks: 100000, Command: "sleep 1", CPUs: 1, Mem: 512})
	// The flood fills what its limit allows and churns.
	watchState(t, addr, 60*time.Second, "the flood at its limit and churning", limits, func(s master.State) bool {
		f := fwNamed(s, "flood")
		return f != nil && countTasks(*f, "TASK_RUNNING") == 3 && len(f.Completed) >= 3
	})

	gold := startNtasks(t, ntasks.Config{Master: addr, Name: "gold", Role: "gold", Tasks: 100000, Command: "sleep 2", CPUs: 0.5, Mem: 256})
	arrived := time.Now()
	var floodAtReach, goldAtReach int
	reached := watchState(t, addr, 60*time.Second, "role gold running tasks worth its guarantee", limits, func(s master.State) bool {
		f, g := fwNamed(s, "flood"), fwNamed(s, "gold")
		if f == nil || g == nil || !runningResources(t, *g).Contains(goldGuarantee) {
			return false
		}
		floodAtReach, goldAtReach = len(f.Completed), len(g.Completed)
		return true
	})
	t.Logf("guarantee met %v after gold arrived: %s", time.Since(arrived).Round(time.Millisecond), fmtRoles(reached))

	// From now on the flood holds at most what the guarantee leaves, on
	// every sample (offers count), and whatever gold frees returns to
	// gold. Watched until both have churned through several tasks.
	floodCap := total.Subtract(goldGuarantee)
	var below time.Time // since when gold has held less than its guarantee
	var worstDip time.Duration
	watchState(t, addr, 60*time.Second, "both roles churning with the guarantee met", func(s master.State) {
		limits(s)
		if a := roleAllocated(t, s, "flood"); !floodCap.Contains(only(a, floodCap)) {
			t.Fatalf("role flood holds %s while gold has demand: more than the %s its guarantee leaves; %s", a, floodCap, fmtRoles(s))
		}
		if a := roleAllocated(t, s, "gold"); !a.Contains(goldGuarantee) {
			if below.IsZero() {
				below = time.Now()
			}
			if d := time.Since(below); d > 10*time.Second {
				t.Fatalf("role gold has held less than its guarantee for %v (%s): what it freed did not come back; %s", d, a, fmtRoles(s))
			}
		} else if !below.IsZero() {
			worstDip = max(worstDip, time.Since(below))
			below = time.Time{}
		}
	}, func(s master.State) bool {
		f, g := fwNamed(s, "flood"), fwNamed(s, "gold")
		return f != nil && g != nil && len(f.Completed) >= floodAtReach+10 && len(g.Completed) >= goldAtReach+8
	})
	t.Logf("%d samples; longest time gold spent below its guarantee between a task ending and its resources coming back: %v",
		samples, worstDip.Round(time.Millisecond))
	for _, r := range []*fwRun{flood, gold} {
		if n := r.failedUpdates(); len(n) > 0 {
			t.Errorf("%s: tasks failed: %v", r.name, n)
		}
	}
}

// TestAllocPriorityPreemption: a low-priority framework fills the agent
// with long tasks, one of them within its role's guarantee; a
// high-priority `corral exec` then declares a task that fits nowhere. The
// priority allocator revokes low tasks: the framework gets inverse offers,
// the master kills the tasks no earlier than revoke_grace (3s) later with
// REASON_PREEMPTED, never the task within the guarantee, and the high task
// runs.
func TestAllocPriorityPreemption(t *testing.T) {
	skipAllocShort(t)
	const grace = 3 * time.Second
	_, addr := startAllocMaster(t, "priority_preempt.hcl", t.TempDir(), "127.0.0.1:0")
	startAllocAgent(t, addr, "cpus:4;mem:2048")

	low := startNtasks(t, ntasks.Config{Master: addr, Name: "low", Role: "low", Tasks: 4, Command: "sleep 600", CPUs: 1, Mem: 256})
	filled := waitState(t, addr, "four low tasks running", func(s master.State) bool {
		f := fwNamed(s, "low")
		return f != nil && countTasks(*f, "TASK_RUNNING") == 4
	})
	var guaranteed string
	for _, tk := range fwNamed(filled, "low").Tasks {
		if tk.WithinGuarantee {
			if guaranteed != "" {
				t.Fatalf("tasks %s and %s both within the guarantee cpus:1;mem:256 of role low", guaranteed, tk.ID)
			}
			guaranteed = tk.ID
		}
	}
	if guaranteed == "" {
		t.Fatalf("no low task is within role low's guarantee cpus:1;mem:256: %+v", fwNamed(filled, "low").Tasks)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		c, o, e := runCLI(t, ctx, "exec", "--master", addr, "--name", "high", "--role", "high", "--cpus", "3", "--mem", "256",
			"--timeout", "90s", "--", "sh", "-c", "echo high task ran")
		done <- result{c, o, e}
	}()
	t.Cleanup(func() { cancel(); <-exited })

	// Watch the books until the high task has run: every revocation the
	// master shows, and that the guaranteed task stays untouched.
	revs := map[string]master.RevocationView{}
	var res result
	deadline := time.Now().Add(90 * time.Second)
watch:
	for {
		select {
		case res = <-done:
			break watch
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the high task did not run; revocations seen: %+v", revs)
		}
		s, err := getState(addr)
		if err != nil {
			continue
		}
		if f := fwNamed(s, "low"); f != nil {
			for _, tk := range append(append([]master.TaskView(nil), f.Tasks...), f.Completed...) {
				if tk.Revocation == nil {
					continue
				}
				if tk.ID == guaranteed {
					t.Fatalf("task %s, within its role's guarantee, was revoked: %+v", tk.ID, *tk.Revocation)
				}
				if _, seen := revs[tk.ID]; !seen {
					revs[tk.ID] = *tk.Revocation
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res.code != 0 || !strings.Contains(res.out, "high task ran") {
		t.Fatalf("high exec: code %d, stdout %q, stderr %q; want 0 and its output", res.code, res.out, res.errOut)
	}

	// Exactly the three tasks outside the guarantee were preempted: 3 CPUs
	// were needed and the guaranteed one is off limits.
	killed := low.terminal()
	notices := low.inverseOffers()
	if len(killed) != 3 || len(notices) != 3 {
		t.Fatalf("low framework: terminal updates %v, inverse offers %v; want three of each (every task but %s)", fmtUpdates(killed), notices, guaranteed)
	}
	if at, ok := notices[guaranteed]; ok {
		t.Errorf("the framework got an inverse offer for %s, within its role's guarantee, at %s", guaranteed, at.Format("15:04:05.000"))
	}
	for id, u := range killed {
		st := u.st
		if id == guaranteed {
			t.Errorf("the guaranteed task %s ended: %v", id, st)
			continue
		}
		if st.GetState() != corralpb.TaskState_TASK_KILLED || st.GetReason() != corralpb.TaskStatus_REASON_PREEMPTED {
			t.Errorf("task %s ended %v %v (%q), want TASK_KILLED with REASON_PREEMPTED", id, st.GetState(), st.GetReason(), st.GetMessage())
		}
		notice, ok := notices[id]
		if !ok {
			t.Errorf("task %s was killed without an inverse offer reaching its framework", id)
			continue
		}
		// The inverse offer's time on the master's clock is its deadline
		// minus the grace; the kill's is the agent's status timestamp.
		rv, ok := revs[id]
		if !ok {
			t.Errorf("task %s: the operator API never showed its revocation", id)
			continue
		}
		if rv.GraceSeconds != grace.Seconds() || rv.Reason == "" {
			t.Errorf("task %s: revocation %+v, want grace %v and a reason", id, rv, grace)
		}
		killedAt := time.UnixMilli(st.GetTimestampUnixMs())
		offered := time.UnixMilli(rv.DeadlineUnixMs).Add(-grace)
		if killedAt.Before(time.UnixMilli(rv.DeadlineUnixMs)) {
			t.Errorf("task %s killed at %s, %v after its inverse offer at %s: before the grace of %v",
				id, killedAt.Format("15:04:05.000"), killedAt.Sub(offered), offered.Format("15:04:05.000"), grace)
		}
		// And as the framework saw it: the notice, then at least the grace
		// (less the notice's own delivery time, a few ms) before the kill.
		if gap := killedAt.Sub(notice); gap < grace-250*time.Millisecond {
			t.Errorf("task %s killed %v after its framework got the inverse offer, want at least the grace %v", id, gap, grace)
		}
		if gap := killedAt.Sub(offered); gap > grace+20*time.Second {
			t.Errorf("task %s killed %v after its inverse offer, long past the grace %v", id, gap, grace)
		}
		t.Logf("%s: inverse offer at %s (framework got it %v later), killed %v after it (%s)", id, offered.Format("15:04:05.000"),
			notice.Sub(offered).Round(time.Millisecond), killedAt.Sub(offered).Round(time.Millisecond), st.GetMessage())
	}
	s := mustState(t, addr)
	f := fwNamed(s, "low")
	if f == nil || len(f.Tasks) != 1 || f.Tasks[0].ID != guaranteed || f.Tasks[0].State != "TASK_RUNNING" || f.Tasks[0].Revocation != nil {
		t.Errorf("after the preemption the low framework should run only %s, untouched: %+v", guaranteed, f)
	}
	t.Logf("%s, within role low's guarantee, still runs", guaranteed)
}

// TestAllocRoleWeightChangeFollowsCLI: two frameworks in roles a and b
// share an agent with short tasks; `corral role set a -weight 3` moves the
// split from 1:1 to 3:1, and the new weight holds the split after the
// master is killed and restarted on the same work dir.
func TestAllocRoleWeightChangeFollowsCLI(t *testing.T) {
	skipAllocShort(t)
	work := t.TempDir()
	m1, addr := startAllocMaster(t, "weights.hcl", work, "127.0.0.1:0")
	startAllocAgent(t, addr, "cpus:8;mem:8192")
	for _, role := range []string{"a", "b"} {
		// Tasks of different lengths keep the two frameworks' completions
		// apart, so freed CPUs come back one at a time.
		startNtasks(t, ntasks.Config{Master: addr, Name: "fw-" + role, Role: role, Tasks: 100000,
			Command: "sleep 0.$(( $$ % 5 + 5 ))", CPUs: 1, Mem: 512})
	}
	waitState(t, addr, "both roles running tasks and churning", func(s master.State) bool {
		a, b := fwNamed(s, "fw-a"), fwNamed(s, "fw-b")
		return a != nil && b != nil && len(a.Completed) >= 8 && len(b.Completed) >= 8
	})
	ratio := splitRatio(t, addr, "before the change")
	if ratio < 0.6 || ratio > 1/0.6 {
		t.Fatalf("with equal weights role a holds %.2f times role b's CPUs, want about 1", ratio)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code, out, errOut := runCLI(t, ctx, "role", "set", "a", "-weight", "3", "-master", addr); code != 0 || !strings.Contains(out, "weight      3\n") {
		t.Fatalf("corral role set a -weight 3: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// b's tasks end within a second; a takes their CPUs.
	waitState(t, addr, "role a to take the CPUs role b frees", func(s master.State) bool {
		return roleAllocated(t, s, "a").Scalar("cpus") >= 6 && roleAllocated(t, s, "b").Scalar("cpus") <= 2
	})
	ratio = splitRatio(t, addr, "after weight 3")
	if ratio < 2 || ratio > 4.5 {
		t.Fatalf("with weights 3:1 role a holds %.2f times role b's CPUs, want about 3", ratio)
	}

	// A master killed without warning comes back with the weight.
	old := mustState(t, addr)
	if err := m1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-m1.done
	// Its plugin processes share its process group; don't leave them behind.
	_ = syscall.Kill(-m1.cmd.Process.Pid, syscall.SIGKILL)
	_, addr2 := startAllocMaster(t, "weights.hcl", work, addr)
	if addr2 != addr {
		t.Fatalf("restarted master listens on %s, want %s", addr2, addr)
	}
	code, out, errOut := runCLI(t, ctx, "role", "show", "a", "-json", "-master", addr)
	var v roleView
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Weight != 3 {
		t.Fatalf("role a after the restart: exit %d, stdout %q, stderr %q; want weight 3", code, out, errOut)
	}
	// The agent re-registers and the frameworks re-subscribe. Once every
	// CPU has turned over at least twice under the new master, the split
	// is the new master's doing, and follows the stored weight.
	waitState(t, addr, "the cluster back under the new master, launching again", func(s master.State) bool {
		a, b := fwNamed(s, "fw-a"), fwNamed(s, "fw-b")
		return s.MasterID != old.MasterID && len(s.Agents) == 1 && s.Agents[0].Connected && a != nil && b != nil &&
			a.Connected && b.Connected && len(a.Completed) >= 16 && len(b.Completed) >= 6
	})
	ratio = splitRatio(t, addr, "after the restart")
	if ratio < 2 || ratio > 4.5 {
		t.Fatalf("after a master restart role a holds %.2f times role b's CPUs, want about 3 (weight 3 kept)", ratio)
	}
}

// TestAllocAntiStarvation: a framework churns <0.5 CPU> tasks through a
// 4-CPU agent, so freed CPUs are re-offered one slice at a time and the
// agent is never whole. A <4 CPU> task from `corral exec` fits only a
// whole agent. With starvation_timeout the drf allocator holds the agent
// back once the shape has starved that long and the task is placed;
// without it the task is still pending well after that.
func TestAllocAntiStarvation(t *testing.T) {
	skipAllocShort(t)
	var placedIn time.Duration
	t.Run("hold-back places the large task", func(t *testing.T) {
		addr, churner := startChurningCluster(t, "starvation.hcl")
		before := churner.finished()
		code, out, errOut, took := execBig(t, addr, 50*time.Second)
		if code != 0 || !strings.Contains(out, "big task ran") {
			t.Fatalf("exec of the <4 CPU> task: code %d after %v, stdout %q, stderr %q; want it placed", code, took, out, errOut)
		}
		// The churn went on meanwhile: without the hold the task had no
		// whole agent to fit.
		if n := churner.finished() - before; n < 8 {
			t.Errorf("only %d small tasks finished while the large one waited; the cluster did not churn", n)
		}
		// It starved first: the hold comes only after the shape fit nowhere
		// for starvation_timeout.
		if took < 3*time.Second {
			t.Errorf("placed %v after exec started, before the starvation timeout of 3s: the churn did not starve it", took)
		}
		placedIn = took
		t.Logf("placed and run %v after exec started (starvation_timeout 3s), %d small tasks finished meanwhile", took.Round(time.Millisecond), churner.finished()-before)
	})
	t.Run("without hold-back it starves", func(t *testing.T) {
		// Twice as long as the hold-back took (when it did), at least 10s,
		// at most 30s.
		wait := min(max(2*placedIn, 10*time.Second), 30*time.Second)
		addr, churner := startChurningCluster(t, "no_starvation.hcl")
		before := churner.finished()
		code, out, errOut, took := execBig(t, addr, wait)
		if code != exitNotPlaced {
			t.Fatalf("exec of the <4 CPU> task without hold-back: code %d after %v, stdout %q, stderr %q; want %d (still pending at --timeout %v)",
				code, took, out, errOut, exitNotPlaced, wait)
		}
		if n := churner.finished() - before; n < 8 {
			t.Errorf("only %d small tasks finished during the wait; the cluster did not churn", n)
		}
		t.Logf("still pending after %v while %d small tasks finished", wait, churner.finished()-before)
	})
}

// startChurningCluster starts a master with config, a 4-CPU agent and a
// framework cycling <0.5 CPU> tasks of 0.5 to 0.9s through it, and returns
// once the churn is under way.
func startChurningCluster(t *testing.T, config string) (string, *fwRun) {
	t.Helper()
	_, addr := startAllocMaster(t, config, t.TempDir(), "127.0.0.1:0")
	startAllocAgent(t, addr, "cpus:4;mem:4096")
	// Lengths vary by shell PID so the tasks of one wave do not all end
	// together (which would free the whole agent at once).
	churner := startNtasks(t, ntasks.Config{Master: addr, Name: "churn", Tasks: 100000, Command: "sleep 0.$(( $$ % 5 + 5 ))", CPUs: 0.5, Mem: 64})
	waitState(t, addr, "the agent full of small tasks and churning", func(s master.State) bool {
		f := fwNamed(s, "churn")
		return f != nil && countTasks(*f, "TASK_RUNNING") >= 6 && len(f.Completed) >= 16
	})
	return addr, churner
}

// execBig runs `corral exec` of a <4 CPU> task with --timeout.
func execBig(t *testing.T, addr string, timeout time.Duration) (int, string, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	began := time.Now()
	code, out, errOut := runCLI(t, ctx, "exec", "--master", addr, "--name", "big", "--cpus", "4", "--mem", "64",
		"--timeout", timeout.String(), "--", "sh", "-c", "echo big task ran")
	return code, out, errOut, time.Since(began)
}

// splitRatio samples the CPUs roles a and b hold (offers and tasks) over
// 30 allocation cycles and returns the ratio of their sums: single samples
// catch a task between ending and being replaced.
func splitRatio(t *testing.T, addr, when string) float64 {
	t.Helper()
	var a, b float64
	start := allocationCycles(t, addr)
	for n := 0; ; n++ {
		s := mustState(t, addr)
		a += roleAllocated(t, s, "a").Scalar("cpus")
		b += roleAllocated(t, s, "b").Scalar("cpus")
		if n >= 20 && allocationCycles(t, addr) >= start+30 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b == 0 {
		t.Fatalf("%s: role b held no CPUs at all (a %.1f)", when, a)
	}
	t.Logf("%s: roles a and b held CPUs in the ratio %.2f", when, a/b)
	return a / b
}

func skipAllocShort(t *testing.T) {
	t.Helper()
	needPlugins(t, "corral-allocator-quota", "corral-allocator-priority")
}

// needPlugins skips in -short mode (these tests run clusters of real
// binaries for tens of seconds) and fails when a plugin binary is missing.
func needPlugins(t *testing.T, plugins ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a cluster of real binaries for tens of seconds")
	}
	dir := binDir(t)
	for _, p := range plugins {
		if _, err := os.Stat(filepath.Join(dir, "plugins", p)); err != nil {
			t.Fatalf("%s is missing from CORRAL_BIN_DIR=%s: run `make build`", p, dir)
		}
	}
}

// startAllocMaster starts `corral master` with a config of testdata/alloc
// on addr (host:0 for a run-time port) and work dir, and returns its
// address.
func startAllocMaster(t *testing.T, config, work, addr string) (*proc, string) {
	t.Helper()
	cfg, err := filepath.Abs(filepath.Join("testdata", "alloc", config))
	if err != nil {
		t.Fatal(err)
	}
	m := startCorral(t, "master", "-config", cfg, "-master", addr, "-work-dir", work,
		"-plugin-dir", filepath.Join(binDir(t), "plugins"))
	return m, m.waitLine(masterLine)
}

// startAllocAgent starts one agent with exactly the given scalars and
// waits until the master has it.
func startAllocAgent(t *testing.T, addr, res string) *proc {
	t.Helper()
	a := startCorral(t, "agent", "-on-shutdown", "kill", "-master", addr, "-address", "127.0.0.1:0", "-work-dir", t.TempDir(), "-resources", res,
		"-plugin-dir", filepath.Join(binDir(t), "plugins"))
	a.waitLine(agentLine)
	// The agent adds what it detects (disk, ports) to what is named.
	want := mustRes(t, res)
	waitState(t, addr, "the agent registered with "+res, func(s master.State) bool {
		for _, ag := range s.Agents {
			if r, err := resources.Parse(ag.Total); err == nil && ag.Connected && only(r, want).Equal(want) {
				return true
			}
		}
		return false
	})
	return a
}

// fwRun is an ntasks framework running in the test process.
type fwRun struct {
	name string
	done chan struct{}
	res  ntasks.Result
	err  error

	mu      sync.Mutex
	updates []fwUpdate
	logs    []fwLog
}

type fwUpdate struct {
	at time.Time // when the framework got it
	st *corralpb.TaskStatus
}

type fwLog struct {
	at     time.Time
	fields map[string]any
}

func startNtasks(t *testing.T, cfg ntasks.Config) *fwRun {
	t.Helper()
	r := &fwRun{name: cfg.Name, done: make(chan struct{})}
	cfg.OnUpdate = func(st *corralpb.TaskStatus) {
		r.mu.Lock()
		r.updates = append(r.updates, fwUpdate{at: time.Now(), st: proto.Clone(st).(*corralpb.TaskStatus)})
		r.mu.Unlock()
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.Name, Level: hclog.Info, JSONFormat: true, Output: fwLogWriter{r}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.done)
		r.res, r.err = ntasks.Run(ctx, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("framework %s did not stop within 30s", r.name)
		}
		if t.Failed() {
			r.mu.Lock()
			defer r.mu.Unlock()
			var b strings.Builder
			logs := r.logs
			if len(logs) > 300 {
				fmt.Fprintf(&b, "(%d earlier lines left out)\n", len(logs)-300)
				logs = logs[len(logs)-300:]
			}
			for _, l := range logs {
				fmt.Fprintf(&b, "%s %v\n", l.at.Format("15:04:05.000"), l.fields)
			}
			t.Logf("framework %s log:\n%s", r.name, b.String())
		}
	})
	return r
}

// fwLogWriter keeps the framework's JSON log lines with the time each
// arrived.
type fwLogWriter struct{ r *fwRun }

func (w fwLogWriter) Write(p []byte) (int, error) {
	now := time.Now()
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	for sc.Scan() {
		fields := map[string]any{}
		if err := json.Unmarshal(sc.Bytes(), &fields); err != nil {
			fields["@message"] = sc.Text()
		}
		w.r.logs = append(w.r.logs, fwLog{at: now, fields: fields})
	}
	return len(p), nil
}

// waitLog waits for a log line of the framework with this message.
func (r *fwRun) waitLog(t *testing.T, msg string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r.mu.Lock()
		for _, l := range r.logs {
			if l.fields["@message"] == msg {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		select {
		case <-r.done:
			t.Fatalf("framework %s stopped before logging %q: %v", r.name, msg, r.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("framework %s did not log %q", r.name, msg)
		}
	}
}

// inverseOffers returns when each task's revocation notice reached the
// framework. ntasks handles none itself; the SDK logs each one.
func (r *fwRun) inverseOffers() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]time.Time{}
	for _, l := range r.logs {
		msg, _ := l.fields["@message"].(string)
		id, _ := l.fields["task_id"].(string)
		if strings.HasPrefix(msg, "task revoked by the allocator") && id != "" {
			if _, seen := out[id]; !seen {
				out[id] = l.at
			}
		}
	}
	return out
}

// terminal returns each task's first terminal update.
func (r *fwRun) terminal() map[string]fwUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]fwUpdate{}
	for _, u := range r.updates {
		if _, seen := out[u.st.GetTaskId()]; !seen && isTerminal(u.st.GetState()) {
			out[u.st.GetTaskId()] = u
		}
	}
	return out
}

// finished counts the tasks that ended TASK_FINISHED.
func (r *fwRun) finished() int {
	n := 0
	for _, u := range r.terminal() {
		if u.st.GetState() == corralpb.TaskState_TASK_FINISHED {
			n++
		}
	}
	return n
}

// failedUpdates lists the tasks that ended otherwise than TASK_FINISHED.
func (r *fwRun) failedUpdates() []string {
	var out []string
	for id, u := range r.terminal() {
		if u.st.GetState() != corralpb.TaskState_TASK_FINISHED {
			out = append(out, fmt.Sprintf("%s %v %q", id, u.st.GetState(), u.st.GetMessage()))
		}
	}
	sort.Strings(out)
	return out
}

func fmtUpdates(m map[string]fwUpdate) string {
	var out []string
	for id, u := range m {
		out = append(out, fmt.Sprintf("%s=%v/%v", id, u.st.GetState(), u.st.GetReason()))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// watchState polls the operator API until cond holds, calling every on
// each state read (the invariants of the phase).
func watchState(t *testing.T, addr string, timeout time.Duration, what string, every func(master.State), cond func(master.State) bool) master.State {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := getState(addr)
		if err == nil {
			every(s)
			if cond(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error %v): %s", timeout, what, err, fmtRoles(s))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getRoles reads /api/v1/roles.
func getRoles(t *testing.T, addr string) []master.RoleView {
	t.Helper()
	var roles []master.RoleView
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/api/v1/roles")), &roles); err != nil {
		t.Fatalf("/api/v1/roles: %v", err)
	}
	return roles
}

func mustState(t *testing.T, addr string) master.State {
	t.Helper()
	s, err := getState(addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// allocationCycles reads how many allocation cycles the master completed.
func allocationCycles(t *testing.T, addr string) int {
	t.Helper()
	const name = "corral_master_allocation_cycle_seconds_count "
	for _, l := range strings.Split(httpGet(t, "http://"+addr+"/metrics"), "\n") {
		if strings.HasPrefix(l, name) {
			n, err := strconv.ParseFloat(strings.TrimPrefix(l, name), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", l, err)
			}
			return int(n)
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
}

// waitCycles waits for n more completed allocation cycles.
func waitCycles(t *testing.T, addr string, n int) {
	t.Helper()
	want := allocationCycles(t, addr) + n
	deadline := time.Now().Add(60 * time.Second)
	for allocationCycles(t, addr) < want {
		if time.Now().After(deadline) {
			t.Fatalf("the master did not complete %d allocation cycles within 60s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fwNamed(s master.State, name string) *master.FrameworkView {
	for i := range s.Frameworks {
		if s.Frameworks[i].Name == name {
			return &s.Frameworks[i]
		}
	}
	return nil
}

func countTasks(f master.FrameworkView, state string) int {
	n := 0
	for _, tk := range f.Tasks {
		if tk.State == state {
			n++
		}
	}
	return n
}

// runningResources sums the framework's running tasks.
func runningResources(t *testing.T, f master.FrameworkView) resources.Resources {
	var r resources.Resources
	for _, tk := range f.Tasks {
		if tk.State == "TASK_RUNNING" {
			r = r.Add(mustRes(t, tk.Resources))
		}
	}
	return r
}

// roleAllocated is what the operator API says the role holds in offers
// and tasks.
func roleAllocated(t *testing.T, s master.State, role string) resources.Resources {
	for _, r := range s.Roles {
		if r.Name == role {
			return mustRes(t, r.Allocated)
		}
	}
	return resources.Resources{}
}

// only keeps the scalars of r that names names.
func only(r, names resources.Resources) resources.Resources {
	var out resources.Resources
	for _, n := range names.ScalarNames() {
		out = out.Add(resources.NewScalar(n, r.Scalar(n)))
	}
	return out
}

func mustRes(t *testing.T, s string) resources.Resources {
	if s == "" {
		return resources.Resources{}
	}
	r, err := resources.Parse(s)
	if err != nil {
		t.Fatalf("resources %q: %v", s, err)
	}
	return r
}

func fmtRoles(s master.State) string {
	var b strings.Builder
	for _, r := range s.Roles {
		fmt.Fprintf(&b, "%s holds %q (share %.3f); ", r.Name, r.Allocated, r.DominantShare)
	}
	return b.String() + fmtShares(s)
}
