package master_test

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestMetricsTallyFollowsTheBooks: the task and role gauges come from a
// tally kept as tasks and offers come and go (a scrape no longer walks
// every task under the lock); after launches, offers, updates, a
// re-registration that loses a task and one that adopts tasks, the tally
// equals a walk of the books, and the gauges say so.
func TestMetricsTallyFollowsTheBooks(t *testing.T) {
	c := startMaster(t, master.Config{Roles: map[string]master.RoleConfig{"*": {Weight: 1}}})
	check := func(step string) {
		t.Helper()
		if d := c.m.TallyMismatch(); d != "" {
			t.Fatalf("%s: %s", step, d)
		}
	}
	a := c.addAgent("", "cpus:4;mem:1024")
	f := c.subscribe("fw", "*")
	f.launchOne(a, "t1", "cpus:1;mem:64")
	check("one task staging, the rest offered")
	f.launchOne(a, "t2", "cpus:1;mem:64")
	check("two tasks staging")
	fw := f.header.FrameworkId
	a.update(fw, "t1", corralpb.TaskState_TASK_RUNNING, []byte("u1"))
	f.update("t1")
	check("t1 running")
	a.update(fw, "t1", corralpb.TaskState_TASK_FINISHED, []byte("u2"))
	f.update("t1")
	check("t1 finished")
	// The agent comes back without t2 (LOST) and a second agent brings
	// tasks this master never launched (adopted).
	a.cancel()
	c.reregister(a.id, "cpus:4;mem:1024", fw)
	if st := f.update("t2"); st.State != corralpb.TaskState_TASK_LOST {
		t.Fatalf("t2 is %s after its agent came back without it, want TASK_LOST", st.State)
	}
	check("t2 lost")
	b := c.reregister("agent-b", "cpus:4;mem:1024", fw, "b1", "b2", "b3")
	check("three tasks adopted")
	if got := gauge(t, c.m, "corral_master_tasks", "TASK_RUNNING"); got != 3 {
		t.Fatalf("corral_master_tasks{state=TASK_RUNNING} = %v, want 3", got)
	}
	// Adopted tasks hold cpus:1 each; t1 and t2 ended.
	if got := gauge(t, c.m, "corral_role_resources_allocated", "cpus", "*"); got < 3 {
		t.Fatalf("corral_role_resources_allocated{role=*,resource=cpus} = %v, want at least the adopted tasks' 3", got)
	}
	if got := gauge(t, c.m, "corral_cluster_resources_total", "cpus"); got != 8 {
		t.Fatalf("corral_cluster_resources_total{resource=cpus} = %v with two agents of 4, want 8", got)
	}
	if err := c.m.DrainAgent("agent-b", time.Hour); err != nil {
		t.Fatal(err)
	}
	check("agent-b draining")
	if got := gauge(t, c.m, "corral_master_agents_draining"); got != 1 {
		t.Fatalf("corral_master_agents_draining = %v, want 1", got)
	}
	if err := c.m.UndrainAgent("agent-b"); err != nil {
		t.Fatal(err)
	}
	check("agent-b back in service")
	// A disconnected agent's capacity leaves the cluster's.
	b.cancel()
	for deadline := time.Now().Add(30 * time.Second); gauge(t, c.m, "corral_cluster_resources_total", "cpus") != 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("corral_cluster_resources_total{resource=cpus} = %v 30 s after agent-b disconnected, want 4",
				gauge(t, c.m, "corral_cluster_resources_total", "cpus"))
		}
	}
	check("agent-b disconnected")
}

// gauge reads a gauge of m's registry by its label values, in the order
// of the label names (as Prometheus sorts them); 0 when absent.
func gauge(t *testing.T, m *master.Master, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if sameLabels(mt.GetLabel(), labels) {
				return mt.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func sameLabels(got []*dto.LabelPair, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i, l := range got {
		if l.GetValue() != want[i] {
			return false
		}
	}
	return true
}
