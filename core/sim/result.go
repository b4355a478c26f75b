package sim

import (
	"math"
	"slices"
	"sort"

	"github.com/corral-project/corral/sdk/resources"
)

// Result is what one simulation run measured. Times are in seconds of
// virtual time.
type Result struct {
	Trace  string `json:"trace"`
	Policy string `json:"policy"`
	// Allocator is the plugin that ran (static partitioning runs one too).
	Allocator string `json:"allocator"`
	Static    bool   `json:"static,omitempty"`
	// EndS is when the last job ended (the run's makespan).
	EndS float64 `json:"end_s"`
	// Stalled is set when the run stopped with jobs left that no offer
	// could ever fit (for example a gang larger than its partition).
	Stalled bool `json:"stalled,omitempty"`
	Cycles  int  `json:"allocation_cycles"`
	// MeanUtil is the mean fraction of each resource used by tasks over
	// [0, EndS].
	MeanUtil   map[string]float64 `json:"mean_util"`
	Frameworks []FrameworkResult  `json:"frameworks"`
	Jobs       []JobResult        `json:"jobs"`
	Samples    []Sample           `json:"samples"`
	// Errors are calls of the framework models the master refused; an
	// empty list is expected.
	Errors []string `json:"errors,omitempty"`
}

// Sample is the cluster at one instant.
type Sample struct {
	T float64 `json:"t"`
	// Util is the fraction of each resource (cpus, mem) used by tasks.
	Util map[string]float64 `json:"util"`
	// Share is each framework's fraction of the cluster's CPUs,
	// Dominant its dominant share (DRF's measure), RoleShare the
	// dominant share of each role.
	Share     map[string]float64 `json:"cpu_share"`
	Dominant  map[string]float64 `json:"dominant_share"`
	RoleShare map[string]float64 `json:"role_share"`
}

// FrameworkResult sums up one framework.
type FrameworkResult struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Role     string `json:"role"`
	Jobs     int    `json:"jobs"`
	JobsDone int    `json:"jobs_done"`
	// SumJobS is the sum of the job completion times (arrival to end),
	// the measure of the Mesos paper's macrobenchmark table.
	SumJobS  float64 `json:"sum_job_s"`
	MeanJobS float64 `json:"mean_job_s"`
	P50JobS  float64 `json:"p50_job_s"`
	P90JobS  float64 `json:"p90_job_s"`
	MaxJobS  float64 `json:"max_job_s"`
	LastEndS float64 `json:"last_end_s"`
	Tasks    int     `json:"tasks_launched"`
	// Killed counts tasks that ended before their time (revoked, lost)
	// and ran again.
	Killed int `json:"tasks_killed"`
	// Locality is the fraction of tasks with input that ran on an agent
	// holding it; absent when no task had input.
	Locality *float64 `json:"locality,omitempty"`
	Offers   int      `json:"offers"`
	Declined int      `json:"offers_declined"`
	// Rescinded offers, and inverse offers (revocations) received.
	Rescinded     int `json:"offers_rescinded"`
	InverseOffers int `json:"inverse_offers"`
	// MaxWaitS is the longest a task waited from ready to launch
	// (starvation), MaxWaitTask which one.
	MaxWaitS     float64 `json:"max_wait_s"`
	MaxWaitTask  string  `json:"max_wait_task,omitempty"`
	MeanCPUShare float64 `json:"mean_cpu_share"`
}

// JobResult is one job.
type JobResult struct {
	Framework string  `json:"framework"`
	Job       string  `json:"job"`
	ArrivalS  float64 `json:"arrival_s"`
	StartS    float64 `json:"start_s"`
	EndS      float64 `json:"end_s"`
	// CompletionS is EndS - ArrivalS, -1 for a job that did not finish.
	CompletionS float64 `json:"completion_s"`
	Tasks       int     `json:"tasks_launched"`
	Local       int     `json:"tasks_local"`
}

func msToS(ms int64) float64 { return float64(ms) / 1000 }

// sample records the cluster now.
func (s *sim) sample() {
	now := msToS(s.now())
	if n := len(s.samples); n > 0 && s.samples[n-1].T == now {
		s.samples = s.samples[:n-1]
	}
	var used resources.Resources
	byFw := map[string]resources.Resources{}
	for _, a := range s.agents {
		for _, ref := range sortedRefs(a.running) {
			rt := a.running[ref]
			used = used.Add(rt.res)
			if rt.fw != nil {
				byFw[rt.fw.spec.Name] = byFw[rt.fw.spec.Name].Add(rt.res)
			}
		}
	}
	sm := Sample{T: now, Util: map[string]float64{}, Share: map[string]float64{}, Dominant: map[string]float64{},
		RoleShare: map[string]float64{}}
	for _, r := range []string{resources.CPUs, resources.Mem} {
		sm.Util[r] = frac(used.Scalar(r), s.total.Scalar(r))
	}
	byRole := map[string]resources.Resources{}
	for _, f := range s.fws {
		u := byFw[f.spec.Name]
		sm.Share[f.spec.Name] = frac(u.Scalar(resources.CPUs), s.total.Scalar(resources.CPUs))
		sm.Dominant[f.spec.Name] = s.dominant(u)
		byRole[f.role] = byRole[f.role].Add(u)
	}
	for r, u := range byRole {
		sm.RoleShare[r] = s.dominant(u)
	}
	s.samples = append(s.samples, sm)
}

func (s *sim) dominant(u resources.Resources) float64 {
	d := 0.0
	for _, r := range []string{resources.CPUs, resources.Mem} {
		d = max(d, frac(u.Scalar(r), s.total.Scalar(r)))
	}
	return d
}

func frac(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return round6(a / b)
}

// round6 keeps reports readable; the values are exact to well below it.
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func (s *sim) result() *Result {
	end := msToS(s.lastFinite)
	res := &Result{Trace: s.trace.Name, Policy: s.opts.Label, Allocator: s.opts.Allocator.Name, Static: s.opts.Static,
		EndS: end, Stalled: s.stalled, Cycles: s.cycles, Samples: s.samples, Errors: s.errs, MeanUtil: map[string]float64{}}
	if res.Policy == "" {
		res.Policy = s.opts.Allocator.Name
	}
	window := slices.DeleteFunc(slices.Clone(s.samples), func(sm Sample) bool { return sm.T > end })
	for _, r := range []string{resources.CPUs, resources.Mem} {
		sum := 0.0
		for _, sm := range window {
			sum += sm.Util[r]
		}
		if len(window) > 0 {
			res.MeanUtil[r] = round6(sum / float64(len(window)))
		}
	}
	for _, f := range s.fws {
		fr := FrameworkResult{Name: f.spec.Name, Kind: f.spec.Kind, Role: f.role, Jobs: len(f.jobs),
			Tasks: f.stats.launched, Killed: f.stats.killed, Offers: f.stats.offers, Declined: f.stats.declined,
			Rescinded: f.stats.rescinded, InverseOffers: f.stats.inverse, MaxWaitS: msToS(f.stats.maxWait),
			MaxWaitTask: f.stats.maxWaitTask}
		if f.stats.withInput > 0 {
			l := round6(float64(f.stats.local) / float64(f.stats.withInput))
			fr.Locality = &l
		}
		var times []float64
		for _, j := range f.jobs {
			jr := JobResult{Framework: f.spec.Name, Job: j.spec.id, ArrivalS: msToS(j.spec.arrival), StartS: msToS(j.start),
				EndS: msToS(j.end), CompletionS: -1, Tasks: j.launched, Local: j.local}
			if j.done {
				jr.CompletionS = msToS(j.end - j.spec.arrival)
				times = append(times, jr.CompletionS)
				fr.JobsDone++
				fr.SumJobS += jr.CompletionS
				fr.LastEndS = max(fr.LastEndS, jr.EndS)
			}
			res.Jobs = append(res.Jobs, jr)
		}
		fr.SumJobS = round6(fr.SumJobS)
		if len(times) > 0 {
			sort.Float64s(times)
			fr.MeanJobS = round6(fr.SumJobS / float64(len(times)))
			fr.P50JobS = quantile(times, 0.5)
			fr.P90JobS = quantile(times, 0.9)
			fr.MaxJobS = times[len(times)-1]
		}
		sum := 0.0
		for _, sm := range window {
			sum += sm.Share[f.spec.Name]
		}
		if len(window) > 0 {
			fr.MeanCPUShare = round6(sum / float64(len(window)))
		}
		res.Frameworks = append(res.Frameworks, fr)
	}
	return res
}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedRefs[V any](m map[taskRef]V) []taskRef {
	out := make([]taskRef, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].fw != out[j].fw {
			return out[i].fw < out[j].fw
		}
		return out[i].task < out[j].task
	})
	return out
}
