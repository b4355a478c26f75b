package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/resources"
)

// Recorder turns a live master's state, observed again and again (the
// operator API's /api/v1/state), into a Trace that replays what happened:
// the agents, the frameworks, and every task seen as a one-task job that
// arrives when the task was created and runs as long as it ran. Feed it
// with Observe, often enough that no completed task falls out of the
// master's bounded completed list between two looks (every second is
// plenty), then call Trace.
type Recorder struct {
	start, last time.Time
	agents      map[string]master.AgentView
	frameworks  map[string]*recordedFramework
	roles       map[string]master.RoleView
}

type recordedFramework struct {
	name, role string
	demand     bool
	tasks      map[string]*recordedTask
}

type recordedTask struct {
	resources          string
	created, run, done time.Time // zero when not seen
}

// NewRecorder starts a recording at start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{start: start, last: start, agents: map[string]master.AgentView{},
		frameworks: map[string]*recordedFramework{}, roles: map[string]master.RoleView{}}
}

// Observe records one look at the master's state taken at now.
func (r *Recorder) Observe(st master.State, now time.Time) {
	r.last = now
	for _, a := range st.Agents {
		r.agents[a.ID] = a
	}
	for _, role := range st.Roles {
		r.roles[role.Name] = role
	}
	for _, fws := range [][]master.FrameworkView{st.Frameworks, st.CompletedFrameworks} {
		for _, fv := range fws {
			f := r.frameworks[fv.ID]
			if f == nil {
				role := "*"
				if len(fv.Roles) > 0 {
					role = fv.Roles[0]
				}
				f = &recordedFramework{name: fv.Name, role: role, tasks: map[string]*recordedTask{}}
				r.frameworks[fv.ID] = f
			}
			if len(fv.Demand) > 0 {
				f.demand = true
			}
			for _, tasks := range [][]master.TaskView{fv.Tasks, fv.Completed} {
				for _, tv := range tasks {
					r.task(f, tv)
				}
			}
		}
	}
}

func (r *Recorder) task(f *recordedFramework, tv master.TaskView) {
	t := f.tasks[tv.ID]
	if t == nil {
		t = &recordedTask{resources: tv.Resources}
		f.tasks[tv.ID] = t
	}
	for _, h := range tv.History {
		if t.created.IsZero() {
			t.created = h.At // the first state: when the task was created
		}
		if t.run.IsZero() && h.State == "TASK_RUNNING" {
			t.run = h.At
		}
		if t.done.IsZero() && isTerminal(h.State) {
			t.done = h.At
		}
	}
	if t.done.IsZero() && isTerminal(tv.State) && tv.UpdatedUnixMs > 0 {
		t.done = time.UnixMilli(tv.UpdatedUnixMs)
	}
}

func isTerminal(state string) bool {
	switch state {
	case "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE":
		return true
	}
	return false
}

// Trace is the recording so far. Agents of the same shape and attributes
// form one group; a framework that declared demand is kind demand, others
// greedy; a task still running at the end runs until the end of the
// recording, one that started before it arrives at 0.
func (r *Recorder) Trace(name string) (*Trace, error) {
	t := &Trace{Name: name, Description: fmt.Sprintf("recorded by corral trace record from %s for %s",
		r.start.UTC().Format(time.RFC3339), r.last.Sub(r.start).Round(time.Second))}
	type groupKey struct{ res, attrs string }
	groups := map[groupKey]*AgentGroup{}
	var order []groupKey
	for _, id := range sortedKeys(r.agents) {
		a := r.agents[id]
		var attrs []string
		for _, k := range sortedKeys(a.Attributes) {
			attrs = append(attrs, k+"="+a.Attributes[k])
		}
		k := groupKey{a.Total, strings.Join(attrs, ",")}
		g := groups[k]
		if g == nil {
			g = &AgentGroup{Prefix: fmt.Sprintf("group%d", len(order)), Resources: a.Total, Attributes: a.Attributes}
			groups[k] = g
			order = append(order, k)
		}
		g.Count++
	}
	for _, k := range order {
		t.Agents = append(t.Agents, *groups[k])
	}
	for _, name := range sortedKeys(r.roles) {
		rv := r.roles[name]
		t.Roles = append(t.Roles, Role{Name: rv.Name, Weight: rv.Weight, Guarantee: rv.Guarantee, Limit: rv.Limit})
	}
	ids := sortedKeys(r.frameworks)
	names := map[string]int{}
	for _, id := range ids {
		f := r.frameworks[id]
		fw := Framework{Name: sanitize(f.name), Kind: KindGreedy, Role: f.role}
		if f.demand {
			fw.Kind = KindDemand
		}
		if n := names[fw.Name]; n > 0 {
			fw.Name = fmt.Sprintf("%s-%d", fw.Name, n)
		}
		names[fw.Name]++
		tids := sortedKeys(f.tasks)
		sort.SliceStable(tids, func(i, j int) bool { return f.tasks[tids[i]].created.Before(f.tasks[tids[j]].created) })
		for i, tid := range tids {
			task := f.tasks[tid]
			if task.created.IsZero() {
				continue // never got past staging in our looks
			}
			res, err := resources.Parse(task.resources)
			if err != nil || (res.Scalar(resources.CPUs) <= 0 && res.Scalar(resources.Mem) <= 0) {
				continue
			}
			begin := task.run
			if begin.IsZero() {
				begin = task.created
			}
			if begin.Before(r.start) {
				begin = r.start
			}
			end := task.done
			if end.IsZero() {
				end = r.last
			}
			arrival := max(task.created.Sub(r.start).Seconds(), 0)
			dur := max(end.Sub(begin).Seconds(), 0.001)
			fw.Jobs = append(fw.Jobs, Job{Name: fmt.Sprintf("task%d", i), ArrivalS: round3(arrival), Tasks: 1,
				Task: res.Scalars().String(), DurationS: round3(dur)})
		}
		t.Frameworks = append(t.Frameworks, fw)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("recorded trace: %w", err)
	}
	return t, nil
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// sanitize makes a framework name usable in a trace.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == '\t' {
			return '-'
		}
		return r
	}, s)
	if s == "" {
		return "framework"
	}
	return s
}
