package master

import (
	"context"
	"math"
	"strings"
	"time"
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
	// Summed scalar by scalar (a cluster has a handful of scalar names):
	// Resources.Add allocates a new value per term, and at 50,000 agents
	// and 40,000 tasks that made each sample (under the books' lock) a
	// tenth of the master's CPU. The sums are rounded to the resource
	// model's precision, as Add's fixed point would have them.
	var total, alloc scalarSums
	for _, a := range m.agents {
		if a.connected {
			a.total.EachScalar(total.add)
		}
	}
	for _, f := range m.frameworks {
		for _, t := range f.tasks {
			t.resources.EachScalar(alloc.add)
			s.Tasks[t.state.String()]++
		}
		for _, o := range f.offers {
			o.resources.EachScalar(alloc.add)
		}
	}
	total.into(s.Total)
	alloc.into(s.Allocated)
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

// scalarSums adds up scalars by name.
type scalarSums []struct {
	name string
	v    float64
}

func (ss *scalarSums) add(name string, v float64) {
	for i := range *ss {
		if (*ss)[i].name == name {
			(*ss)[i].v += v
			return
		}
	}
	*ss = append(*ss, struct {
		name string
		v    float64
	}{name, v})
}

// into writes the sums rounded to the resource model's precision (1/1000),
// leaving out those that come to zero, as Resources.Add does.
func (ss scalarSums) into(out map[string]float64) {
	for _, s := range ss {
		if v := math.Round(s.v*1000) / 1000; v != 0 {
			out[s.name] = v
		}
	}
}
