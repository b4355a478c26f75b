package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/core/agent"
	"github.com/corral-project/corral/core/coord/consultest"
	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Three masters, a real agent and emulated agents, one Consul server, two
// frameworks (one with a hot-standby scheduler) running 300 short tasks.
// While they run: kill -9 the leader, start a replacement master, kill -9
// the real agent and restart it, kill the active scheduler of one
// framework so its standby takes over, restart the Consul agent, kill -9
// the leader again. At the end every task has reached exactly one
// terminal state, acknowledged by its framework.
func TestHAFaultsLoseNoTask(t *testing.T) {
	const perFramework = 150
	binDir(t)
	// A server with a data dir: a restarted -dev agent would come back
	// empty, which is a different fault (the loss of the Consul cluster).
	c := startHAClusterOn(t, 3, consultest.StartServer(t))
	l := c.leader("first election")
	agentDir := t.TempDir()
	var realURL string
	startAgent := func() *proc {
		// -on-shutdown kill: the test's tasks and executors end with it.
		p := startCorral(t, "agent", "-on-shutdown", "kill", "-master", c.spec, "-address", "127.0.0.1:0", "-work-dir", agentDir,
			"-resources", "cpus:2;mem:1024")
		realURL = p.waitLine(agentLine)
		return p
	}
	real := startAgent()
	realPID := real.cmd.Process.Pid
	em := startCorral(t, "agent", "-emulate", "10", "-master", c.spec, "-resources", "cpus:1;mem:512")
	em.waitLine(emulatedLine)
	waitState(t, l, "11 agents", func(s master.State) bool { return connected(s) == 11 })

	a := runHAFramework(t, c.spec, "fa", perFramework)
	a.waitSubscribed(t)
	b := runHAFramework(t, c.spec, "fb", perFramework)
	b.waitSubscribed(t)
	a.mu.Lock()
	aID := a.fwID
	a.mu.Unlock()
	// fa's hot standby: same framework ID, same task plan.
	aStandby := runFrameworkStandby(t, c.spec, "fa", aID, 0)
	aStandby.mu.Lock()
	aStandby.peer = a
	aStandby.mu.Unlock()

	launched := func(f *testFramework, n int) func() bool {
		return func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.next >= n }
	}
	waitCond(t, "both frameworks launching", func() bool { return launched(a, 10)() && launched(b, 10)() })

	c.kill9(l)
	c.leader("after kill -9 of the leader")
	c.startMaster()

	// The real agent dies with tasks running and comes back on its work
	// dir: it recovers them and re-registers with their states.
	// Asked of the agent itself: the frameworks' view lags it, since an
	// update sent while the masters failed over waits for the agent's
	// retry, and the plan can run out meanwhile.
	var seen agent.State
	waitCondSaying(t, "tasks running on the real agent and none half launched", func() bool {
		s, err := getAgentState(realURL)
		if err != nil {
			return false
		}
		seen = s
		return runningNoLaunch(s)
	}, func() string {
		var ts []string
		for _, tk := range seen.Tasks {
			ts = append(ts, tk.TaskID+" "+tk.State)
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		b.mu.Lock()
		defer b.mu.Unlock()
		return fmt.Sprintf("; the agent last listed %v; the frameworks had launched %d and %d of %d", ts, a.next, b.next, perFramework)
	})
	// The agent process alone: its executors and tasks run in their own
	// sessions and must outlive it.
	_ = syscall.Kill(realPID, syscall.SIGKILL)
	<-real.done
	real = startAgent()
	_ = real

	// fa's active scheduler dies; its standby continues the plan where
	// the active left it (until now the standby launches nothing, even if
	// it was briefly active while the masters failed over).
	a.mu.Lock()
	a.want = a.next
	aStandby.mu.Lock()
	aStandby.next, aStandby.want = a.next, perFramework
	// The plan a standby shares with its active (a real one keeps it in
	// its own store): which task went where, for reconciliation.
	for id, agent := range a.agents {
		aStandby.agents[id] = agent
	}
	for id := range a.states {
		aStandby.settled[id] = true
	}
	aStandby.mu.Unlock()
	a.mu.Unlock()
	a.cancel()
	<-a.done
	a.done <- nil // for the cleanup
	// An ack cancelled with the active scheduler may have reached the
	// agent, which then never resends the update, and a master elected
	// later knows nothing of the task (as in Mesos: it reconciles to
	// TASK_LOST). What the active stored in Update, before the SDK acked
	// it, is the framework's record of how the task ended.
	a.mu.Lock()
	for id, st := range a.stored {
		if len(a.states[id]) == 0 {
			a.states[id] = []corralpb.TaskState{st}
		}
	}
	a.mu.Unlock()
	waitCond(t, "fa's standby promoted", func() bool { aStandby.mu.Lock(); defer aStandby.mu.Unlock(); return aStandby.subs > 0 })

	// Consul restarts: the leader cannot refresh its check and steps down;
	// once Consul is back the masters elect a leader again, and agents and
	// schedulers follow.
	c.consul.Restart(t)
	l = c.leader("after the Consul restart")
	c.kill9(l)
	l = c.leader("after the second kill -9 of the leader")
	c.startMaster()

	l = c.leader("after the faults")
	deadline := time.Now().Add(3 * time.Minute)
	for len(ackedTerminal(a, aStandby)) < perFramework || len(ackedTerminal(b)) < perFramework {
		if time.Now().After(deadline) {
			aStandby.mu.Lock()
			sn, ss := aStandby.next, aStandby.subs
			aStandby.mu.Unlock()
			b.mu.Lock()
			bn := b.next
			b.mu.Unlock()
			st, _ := getState(l)
			var fws []string
			for _, f := range st.Frameworks {
				fws = append(fws, fmt.Sprintf("%s connected=%v tasks=%d done=%d", f.Name, f.Connected, len(f.Tasks), len(f.Completed)))
			}
			t.Fatalf("not every task terminal and acknowledged: fa %d/%d (standby next %d, subscribed %d times), fb %d/%d (next %d); leader %s: %v",
				len(ackedTerminal(a, aStandby)), perFramework, sn, ss, len(ackedTerminal(b)), perFramework, bn, l, fws)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ran := map[string]map[string]bool{"fa": ranTasks(a, aStandby), "fb": ranTasks(b)}
	var notRun []string
	defer func() { t.Logf("launches that never ran (in flight at a kill): %v", notRun) }()
	for name, states := range map[string]map[string][]corralpb.TaskState{"fa": ackedTerminal(a, aStandby), "fb": ackedTerminal(b)} {
		var summary []string
		for id, ss := range states {
			distinct := map[corralpb.TaskState]bool{}
			for _, s := range ss {
				distinct[s] = true
			}
			if len(distinct) != 1 {
				t.Errorf("%s task %s reached several terminal states: %v", name, id, ss)
			}
			// Each task sleeps 1 s and exits 0: one that ran and ended
			// otherwise is a task the faults cost. (A launch in flight
			// when its master or agent died never ran: LOST, or FAILED
			// by the restarted agent, is its true answer.)
			if ran[name][id] && ss[0] != corralpb.TaskState_TASK_FINISHED {
				t.Errorf("%s task %s ran and then ended %v, want TASK_FINISHED", name, id, ss[0])
			}
			if !ran[name][id] {
				notRun = append(notRun, fmt.Sprintf("%s=%v", id, ss[0]))
			}
			summary = append(summary, fmt.Sprintf("%s=%v", id, ss[0]))
		}
		sort.Strings(summary)
		t.Logf("%s: %s", name, strings.Join(summary, " "))
	}
}

// ackedTerminal merges the acknowledged terminal states the schedulers of
// one framework recorded, by task.
func ackedTerminal(fs ...*testFramework) map[string][]corralpb.TaskState {
	out := map[string][]corralpb.TaskState{}
	for _, f := range fs {
		f.mu.Lock()
		for id, ss := range f.states {
			out[id] = append(out[id], ss...)
		}
		f.mu.Unlock()
	}
	return out
}

func runFrameworkStandby(t *testing.T, spec, name, id string, tasks int) *testFramework {
	t.Helper()
	f := newTestFramework(name, tasks)
	startTestFramework(t, f, spec, id, true)
	return f
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitCondSaying(t, what, cond, func() string { return "" })
}

// waitCondSaying is waitCond that adds describe's words to its failure.
func waitCondSaying(t *testing.T, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s%s", what, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runningNoLaunch reports whether an agent's state lists a running task
// and no launch half done (STAGING or STARTING): the agent is killed with
// running tasks but no launch in the middle (a kill -9 in the middle of a
// launch is a known gap of the process isolator's recovery, which kills
// the half-recorded container; see the HA report).
func runningNoLaunch(s agent.State) bool {
	running := false
	for _, tk := range s.Tasks {
		switch tk.State {
		case corralpb.TaskState_TASK_STAGING.String(), corralpb.TaskState_TASK_STARTING.String():
			return false
		case corralpb.TaskState_TASK_RUNNING.String():
			running = true
		}
	}
	return running
}

// getAgentState reads an agent's /api/v1/state (url is its base URL).
func getAgentState(url string) (agent.State, error) {
	var s agent.State
	resp, err := http.Get(url + "/api/v1/state")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("agent state: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// ranTasks merges the tasks the schedulers of one framework saw running.
func ranTasks(fs ...*testFramework) map[string]bool {
	out := map[string]bool{}
	for _, f := range fs {
		f.mu.Lock()
		for id := range f.ran {
			out[id] = true
		}
		f.mu.Unlock()
	}
	return out
}
