package master

import (
	"fmt"
	"maps"
	"testing"
	"time"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// sampleBooks is a master holding agents connected and not, and tasks and
// offers with fractional scalars.
func sampleBooks(agents, tasks int) *Master {
	m := &Master{now: time.Now, agents: map[string]*agentEntry{}, frameworks: map[string]*frameworkEntry{}}
	for i := range agents {
		m.agents[fmt.Sprint("a", i)] = &agentEntry{total: resources.MustParse("cpus:4;mem:8192;disk:0.1"), connected: i%5 != 0}
	}
	f := &frameworkEntry{tasks: map[string]*taskEntry{}, offers: map[string]*offerEntry{}}
	m.frameworks["f"] = f
	for i := range tasks {
		f.tasks[fmt.Sprint("t", i)] = &taskEntry{resources: resources.MustParse("cpus:0.1;mem:256"), state: corralpb.TaskState_TASK_RUNNING}
	}
	f.offers["o"] = &offerEntry{resources: resources.MustParse("cpus:0.3;mem:1.5")}
	return m
}

// TestSampleSumsAsTheResourceModel: the sample's totals are what adding
// the resources up in the model's fixed point gives.
func TestSampleSumsAsTheResourceModel(t *testing.T) {
	m := sampleBooks(7, 13)
	var total, alloc resources.Resources
	for _, a := range m.agents {
		if a.connected {
			total = total.Add(a.total)
		}
	}
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			alloc = alloc.Add(t.resources)
		}
		for _, o := range f.offers {
			alloc = alloc.Add(o.resources)
		}
	}
	want := func(r resources.Resources) map[string]float64 {
		out := map[string]float64{}
		r.EachScalar(func(n string, v float64) { out[n] = v })
		return out
	}
	s := m.sampleLocked()
	if !maps.Equal(s.Total, want(total)) {
		t.Errorf("Total %v; want %v", s.Total, want(total))
	}
	if !maps.Equal(s.Allocated, want(alloc)) {
		t.Errorf("Allocated %v; want %v", s.Allocated, want(alloc))
	}
	if s.Tasks["TASK_RUNNING"] != 13 {
		t.Errorf("Tasks %v; want 13 running", s.Tasks)
	}
}

// BenchmarkSample50k is one history sample of 50,000 agents and 40,000
// tasks (bench-scale's cluster).
func BenchmarkSample50k(b *testing.B) {
	m := sampleBooks(50000, 40000)
	b.ReportAllocs()
	for b.Loop() {
		m.sampleLocked()
	}
}
