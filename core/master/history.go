package master

import (
	"context"
	"strings"
	"time"

	"github.com/corral-project/corral/sdk/resources"
)

// The master keeps the last hour of the cluster's capacity, allocation and
// shares, sampled every Config.SampleInterval, for the operator's charts:
// no external time-series database is needed to see how a policy behaved.

// Sample is the cluster at one moment.
type Sample struct {
	At time.Time `json:"at"`
	// Total and Allocated are scalar resources of the connected agents:
	// their capacity, and what tasks and outstanding offers hold.
	Total     map[string]float64 `json:"total"`
	Allocated map[string]float64 `json:"allocated"`
	// Tasks counts live tasks by state.
	Tasks map[string]int `json:"tasks"`
	// RoleShares and FrameworkShares are the dominant shares the allocator
	// reported.
	RoleShares      map[string]float64 `json:"role_shares"`
	FrameworkShares map[string]float64 `json:"framework_shares"`
}

// historySpan is how much history is kept.
const historySpan = time.Hour

// sampleRing holds the recent samples, oldest first.
type sampleRing struct {
	samples []Sample
	max     int
}

func (r *sampleRing) add(s Sample) {
	r.samples = append(r.samples, s)
	if over := len(r.samples) - r.max; r.max > 0 && over > 0 {
		r.samples = append(r.samples[:0:0], r.samples[over:]...)
	}
}

// History returns the samples of the last hour, oldest first.
func (m *Master) History() []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Sample{}, m.samples.samples...)
}

func (m *Master) sampleLoop(ctx context.Context) {
	m.mu.Lock()
	m.samples.max = int(historySpan / m.cfg.SampleInterval)
	m.mu.Unlock()
	tick := time.NewTicker(m.cfg.SampleInterval)
	defer tick.Stop()
	for {
		m.mu.Lock()
		m.samples.add(m.sampleLocked())
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *Master) sampleLocked() Sample {
	s := Sample{At: m.now(), Total: map[string]float64{}, Allocated: map[string]float64{}, Tasks: map[string]int{},
		RoleShares: map[string]float64{}, FrameworkShares: map[string]float64{}}
	var total, alloc resources.Resources
	for _, a := range m.agents {
		if a.connected {
			total = total.Add(a.total)
		}
	}
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			alloc = alloc.Add(t.resources)
			s.Tasks[t.state.String()]++
		}
		for _, o := range f.offers {
			alloc = alloc.Add(o.resources)
		}
	}
	total.EachScalar(func(name string, v float64) { s.Total[name] = v })
	alloc.EachScalar(func(name string, v float64) { s.Allocated[name] = v })
	for k, v := range m.pluginMetrics {
		switch {
		case strings.HasPrefix(k, metricRoleShare):
			s.RoleShares[strings.TrimPrefix(k, metricRoleShare)] = v
		case strings.HasPrefix(k, metricFrameworkShare):
			s.FrameworkShares[strings.TrimPrefix(k, metricFrameworkShare)] = v
		}
	}
	return s
}
