package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/corral-project/corral/sdk/resources"
)

// Trace is a workload and the cluster it runs on: the file format of
// `corral sim -trace` (JSON; see README.md in this package). Times are in
// seconds of virtual time.
type Trace struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Seed drives every random choice (arrival gaps, duration jitter,
	// block placement): the same trace always expands the same way.
	Seed uint64 `json:"seed,omitempty"`
	// AllocationIntervalS is the master's allocation interval (default 1).
	AllocationIntervalS float64 `json:"allocation_interval_s,omitempty"`
	// SampleIntervalS is how often utilization and shares are sampled
	// (default 5).
	SampleIntervalS float64 `json:"sample_interval_s,omitempty"`
	// MaxDurationS ends the run even if jobs remain (default 30 days).
	MaxDurationS float64      `json:"max_duration_s,omitempty"`
	Roles        []Role       `json:"roles,omitempty"`
	Agents       []AgentGroup `json:"agents"`
	// Replication is how many agents hold each generated input block of
	// a job with local set (default 3, as HDFS).
	Replication int         `json:"replication,omitempty"`
	Frameworks  []Framework `json:"frameworks"`
}

// Role is an operator's role configuration (weight and quota).
type Role struct {
	Name      string  `json:"name"`
	Weight    float64 `json:"weight,omitempty"`
	Guarantee string  `json:"guarantee,omitempty"`
	Limit     string  `json:"limit,omitempty"`
}

// AgentGroup is Count agents of one shape, named Prefix-000 and on.
type AgentGroup struct {
	Prefix     string            `json:"prefix,omitempty"`
	Count      int               `json:"count"`
	Resources  string            `json:"resources"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Blocks are data blocks every agent of the group holds, for jobs
	// that name their input blocks.
	Blocks []string `json:"blocks,omitempty"`
}

// Framework kinds: how a framework's scheduler decides on offers.
const (
	KindGreedy  = "greedy"  // launches every pending task that fits, FIFO
	KindDelay   = "delay"   // Hadoop-like delay scheduling for locality
	KindGang    = "gang"    // MPI-like: all of a job's tasks at once
	KindService = "service" // long-running instances (duration 0: forever)
	KindDemand  = "demand"  // greedy, and declares its pending tasks (REQUEST)
)

// Framework is one framework scheduler and its jobs.
type Framework struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Role defaults to the framework's name.
	Role string `json:"role,omitempty"`
	// DeclineS is the refuse_seconds of its declines (default 1).
	DeclineS float64 `json:"decline_s,omitempty"`
	// DelayS is the delay-scheduling wait before a job accepts a non-local
	// offer (kind delay).
	DelayS float64 `json:"delay_s,omitempty"`
	// StaticAgents is the framework's partition size under static
	// partitioning (default: an equal split of the agents).
	StaticAgents int   `json:"static_agents,omitempty"`
	Jobs         []Job `json:"jobs"`
}

// Job describes Count jobs of one shape arriving from ArrivalS, EveryS
// apart (exponential gaps of mean EveryS when Poisson is set).
type Job struct {
	Name     string  `json:"name"`
	ArrivalS float64 `json:"arrival_s,omitempty"`
	Count    int     `json:"count,omitempty"`
	EveryS   float64 `json:"every_s,omitempty"`
	Poisson  bool    `json:"poisson,omitempty"`
	// Tasks per stage, each needing Task (resources, "cpus:1;mem:2048").
	Tasks int    `json:"tasks"`
	Task  string `json:"task"`
	// DurationS is a task's run time, varied uniformly by ±Jitter (a
	// fraction). 0 for a service task: it runs until the simulation ends.
	DurationS float64 `json:"duration_s"`
	Jitter    float64 `json:"jitter,omitempty"`
	// Stages run one after the other (iterations of a Spark-like job),
	// default 1; FirstStageS, when set, is the first stage's task time.
	Stages      int     `json:"stages,omitempty"`
	FirstStageS float64 `json:"first_stage_s,omitempty"`
	// Local gives every task an input block on Replication agents chosen
	// at random; Blocks instead names the blocks (task i reads
	// Blocks[i mod len]) held by agents whose group lists them.
	Local  bool     `json:"local,omitempty"`
	Blocks []string `json:"blocks,omitempty"`
	// RemoteFactor multiplies the run time of a task placed away from its
	// input (it reads over the network); default 1.
	RemoteFactor float64 `json:"remote_factor,omitempty"`
}

// LoadTrace reads and checks a trace file.
func LoadTrace(path string) (*Trace, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	t, err := ParseTrace(b)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", path, err)
	}
	return t, nil
}

// ParseTrace decodes a trace, refusing unknown fields, and checks it.
func ParseTrace(b []byte) (*Trace, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t Trace
	if err := dec.Decode(&t); err != nil {
		return nil, err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate names the first problem in the trace.
func (t *Trace) Validate() error {
	if len(t.Agents) == 0 {
		return fmt.Errorf("no agents")
	}
	for _, v := range []struct {
		name string
		v    float64
	}{{"allocation_interval_s", t.AllocationIntervalS}, {"sample_interval_s", t.SampleIntervalS}, {"max_duration_s", t.MaxDurationS}} {
		if v.v < 0 || math.IsNaN(v.v) || math.IsInf(v.v, 0) {
			return fmt.Errorf("%s must be a non-negative number, got %v", v.name, v.v)
		}
	}
	if t.Replication < 0 {
		return fmt.Errorf("replication must not be negative")
	}
	roles := map[string]bool{}
	for i, r := range t.Roles {
		if err := resources.ValidateRole(r.Name); err != nil {
			return fmt.Errorf("roles[%d]: %w", i, err)
		}
		if roles[r.Name] {
			return fmt.Errorf("roles[%d]: role %q listed twice", i, r.Name)
		}
		roles[r.Name] = true
		if r.Weight < 0 {
			return fmt.Errorf("role %q: weight must not be negative", r.Name)
		}
		for _, q := range []string{r.Guarantee, r.Limit} {
			if q != "" {
				if _, err := resources.Parse(q); err != nil {
					return fmt.Errorf("role %q: %w", r.Name, err)
				}
			}
		}
	}
	prefixes := map[string]bool{}
	for i, g := range t.Agents {
		if g.Count <= 0 {
			return fmt.Errorf("agents[%d]: count must be positive", i)
		}
		if prefixes[g.prefix(i)] {
			return fmt.Errorf("agents[%d]: prefix %q used twice", i, g.prefix(i))
		}
		prefixes[g.prefix(i)] = true
		r, err := resources.Parse(g.Resources)
		if err != nil || r.IsEmpty() {
			return fmt.Errorf("agents[%d]: resources %q: want e.g. \"cpus:4;mem:15360\" (%v)", i, g.Resources, err)
		}
	}
	if len(t.Frameworks) == 0 {
		return fmt.Errorf("no frameworks")
	}
	names := map[string]bool{}
	for i, f := range t.Frameworks {
		where := fmt.Sprintf("frameworks[%d] (%s)", i, f.Name)
		if f.Name == "" || strings.ContainsAny(f.Name, "/ \t") {
			return fmt.Errorf("frameworks[%d]: name %q must be non-empty, without '/' or spaces", i, f.Name)
		}
		if names[f.Name] {
			return fmt.Errorf("%s: name used twice", where)
		}
		names[f.Name] = true
		switch f.Kind {
		case KindGreedy, KindDelay, KindGang, KindService, KindDemand:
		default:
			return fmt.Errorf("%s: kind %q is not one of greedy, delay, gang, service, demand", where, f.Kind)
		}
		if err := resources.ValidateRole(f.role()); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if f.DeclineS < 0 || f.DelayS < 0 || f.StaticAgents < 0 {
			return fmt.Errorf("%s: decline_s, delay_s and static_agents must not be negative", where)
		}
		jobNames := map[string]bool{}
		for j, job := range f.Jobs {
			w := fmt.Sprintf("%s jobs[%d] (%s)", where, j, job.Name)
			if job.Name == "" || strings.ContainsAny(job.Name, "/ \t.") {
				return fmt.Errorf("%s: name must be non-empty, without '/', '.' or spaces", w)
			}
			if jobNames[job.Name] {
				return fmt.Errorf("%s: name used twice", w)
			}
			jobNames[job.Name] = true
			if job.Tasks <= 0 {
				return fmt.Errorf("%s: tasks must be positive", w)
			}
			r, err := resources.Parse(job.Task)
			if err != nil || (r.Scalar(resources.CPUs) <= 0 && r.Scalar(resources.Mem) <= 0) {
				return fmt.Errorf("%s: task %q must ask for some cpus or mem (%v)", w, job.Task, err)
			}
			if job.Count < 0 || job.Stages < 0 || job.ArrivalS < 0 || job.EveryS < 0 || job.DurationS < 0 ||
				job.FirstStageS < 0 || job.Jitter < 0 || job.Jitter >= 1 || job.RemoteFactor < 0 {
				return fmt.Errorf("%s: counts, times must not be negative and jitter must be in [0,1)", w)
			}
			if job.DurationS == 0 && f.Kind != KindService {
				return fmt.Errorf("%s: duration_s 0 (run forever) is for service frameworks only", w)
			}
		}
	}
	return nil
}

func (g AgentGroup) prefix(i int) string {
	if g.Prefix != "" {
		return g.Prefix
	}
	return fmt.Sprintf("agent%d", i)
}

func (f Framework) role() string {
	if f.Role != "" {
		return f.Role
	}
	return f.Name
}

func orDefault(v, d float64) float64 {
	if v > 0 {
		return v
	}
	return d
}

// agentSpec is one expanded agent.
type agentSpec struct {
	id     string
	res    resources.Resources
	attrs  map[string]string
	blocks map[string]bool
}

// jobSpec is one expanded job instance.
type jobSpec struct {
	id      string // "<job>-<k>"
	arrival int64  // ms
	tasks   int
	res     resources.Resources
	stages  int
	// dur[stage][task] in ms, 0 for forever.
	dur [][]int64
	// where[task] lists the agents holding the task's input, nil for none.
	where [][]string
	// remote multiplies the duration of a task away from its input.
	remote float64
}

// expand turns the trace into agents and per-framework jobs, drawing
// every random number from the trace's seed in a fixed order.
func (t *Trace) expand() ([]agentSpec, [][]jobSpec) {
	rng := rand.New(rand.NewPCG(t.Seed, 0x636f7272616c)) // "corral"
	var agents []agentSpec
	for i, g := range t.Agents {
		res := resources.MustParse(g.Resources)
		for k := 0; k < g.Count; k++ {
			a := agentSpec{id: fmt.Sprintf("%s-%03d", g.prefix(i), k), res: res, attrs: g.Attributes, blocks: map[string]bool{}}
			for _, b := range g.Blocks {
				a.blocks[b] = true
			}
			agents = append(agents, a)
		}
	}
	repl := t.Replication
	if repl == 0 {
		repl = 3
	}
	repl = min(repl, len(agents))
	jobs := make([][]jobSpec, len(t.Frameworks))
	for fi, f := range t.Frameworks {
		for _, j := range f.Jobs {
			count := max(j.Count, 1)
			stages := max(j.Stages, 1)
			at := j.ArrivalS
			for k := 0; k < count; k++ {
				if k > 0 {
					gap := j.EveryS
					if j.Poisson {
						gap = rng.ExpFloat64() * j.EveryS
					}
					at += gap
				}
				js := jobSpec{id: fmt.Sprintf("%s-%d", j.Name, k), arrival: secondsToMS(at), tasks: j.Tasks,
					res: resources.MustParse(j.Task), stages: stages, remote: orDefault(j.RemoteFactor, 1)}
				for s := 0; s < stages; s++ {
					base := j.DurationS
					if s == 0 && j.FirstStageS > 0 {
						base = j.FirstStageS
					}
					row := make([]int64, j.Tasks)
					for ti := range row {
						d := base
						if j.Jitter > 0 && d > 0 {
							d *= 1 + j.Jitter*(2*rng.Float64()-1)
						}
						row[ti] = max(secondsToMS(d), boolInt(base > 0))
					}
					js.dur = append(js.dur, row)
				}
				if j.Local || len(j.Blocks) > 0 {
					js.where = make([][]string, j.Tasks)
					for ti := range js.where {
						if len(j.Blocks) > 0 {
							b := j.Blocks[ti%len(j.Blocks)]
							for _, a := range agents {
								if a.blocks[b] {
									js.where[ti] = append(js.where[ti], a.id)
								}
							}
							continue
						}
						for _, idx := range rng.Perm(len(agents))[:repl] {
							js.where[ti] = append(js.where[ti], agents[idx].id)
						}
					}
				}
				jobs[fi] = append(jobs[fi], js)
			}
		}
	}
	return agents, jobs
}

func secondsToMS(s float64) int64 { return int64(math.Round(s * 1000)) }

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
