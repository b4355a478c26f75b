package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Three masters, a real agent and emulated agents, one Consul, two
// frameworks (one with a hot-standby scheduler) running short tasks. While
// they run: kill -9 the leader, start a replacement master, kill the
// active scheduler of one framework so its standby takes over. At the
// end every task has reached exactly one terminal state, acknowledged by
// its framework.
func TestHAFaultsLoseNoTask(t *testing.T) {
	const perFramework = 40
	c := startHACluster(t, 3)
	l := c.leader("first election")
	agentDir := t.TempDir()
	startAgent := func() *proc {
		// -on-shutdown kill: the test's tasks and executors end with it.
		p := startCorral(t, "agent", "-on-shutdown", "kill", "-master", c.spec, "-address", "127.0.0.1:0", "-work-dir", agentDir,
			"-resources", "cpus:2;mem:1024")
		p.waitLine(agentLine)
		return p
	}
	real := startAgent()
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
	l = c.leader("after kill -9 of the leader")
	c.startMaster()

	// Not done here: kill -9 and restart of an agent. An agent that
	// restarts re-registers without its terminal tasks whose updates are
	// still unacknowledged, so the new leader answers reconciliation for
	// them with TASK_LOST before the agent's retry delivers the real
	// terminal state (core/agent registration; see the HA report).
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
	waitCond(t, "fa's standby promoted", func() bool { aStandby.mu.Lock(); defer aStandby.mu.Unlock(); return aStandby.subs > 0 })

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
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
