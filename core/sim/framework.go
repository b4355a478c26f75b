package sim

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// foreverRefuse is the filter a statically partitioned framework puts on
// agents outside its partition (the master caps it at a year).
const foreverRefuse = 365 * 24 * 3600.0

// framework is the model of one framework's scheduler. It subscribes to
// the master like any scheduler, and answers offers by its kind:
//
//   - greedy: launches pending tasks in job order while they fit.
//   - delay: Hadoop's delay scheduling. A job takes an offer for a task
//     whose input block the agent holds; it takes a non-local one only
//     after waiting DelayS since its last local launch. Jobs it skips leave the
//     offer to the next job.
//   - gang: MPI-like. It holds the offers it gets until they fit every
//     task of its first job, then launches them all at once; it declines
//     offers too small for any of its tasks.
//   - service: greedy, for long-running instances.
//   - demand: greedy, and it declares the shapes of its pending tasks
//     (REQUEST), so a demand-aware allocator can size offers to them.
//
// A framework with nothing to launch suppresses offers and revives when
// work arrives (shared mode), as well-behaved Mesos frameworks do.
type framework struct {
	s         *sim
	spec      Framework
	id, role  string
	sub       *master.Subscription
	jobs      []*jobState
	partition map[string]bool // static mode: the agents it may use
	// live tasks by ID.
	tasks      map[string]*taskState
	suppressed bool
	held       []*corralpb.Offer // gang: offers kept for the next job
	demandKey  string
	decline    float64

	stats frameworkStats
}

type frameworkStats struct {
	offers, declined, rescinded, inverse int
	launched, local, withInput, killed   int
	maxWait                              int64
	maxWaitTask                          string
}

type jobState struct {
	spec    jobSpec
	arrived bool
	stage   int
	pending []pendingTask
	left    int // tasks of the stage not finished
	start   int64
	end     int64
	started bool
	done    bool
	// lastLocal is when the job last launched a task on an agent holding
	// its input, or arrived: delay scheduling lets it go non-local once it
	// has waited DelayS since, and until it launches locally again
	// (Zaharia et al., EuroSys 2010, Algorithm 1).
	lastLocal int64
	launched  int
	local     int
	withInput int
}

type pendingTask struct {
	idx, attempt int
	readyAt      int64
}

type taskState struct {
	job        *jobState
	stage, idx int
	attempt    int
	agent      string
	launchedAt int64
}

func newFramework(s *sim, spec Framework, jobs []jobSpec) *framework {
	f := &framework{s: s, spec: spec, id: "sim-" + spec.Name, role: spec.role(), tasks: map[string]*taskState{},
		decline: orDefault(spec.DeclineS, 1)}
	for _, j := range jobs {
		f.jobs = append(f.jobs, &jobState{spec: j})
	}
	return f
}

func (f *framework) subscribe() error {
	sub, err := f.s.m.Subscribe(&corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{
		Id: f.id, Name: f.spec.Name, Roles: []string{f.role}}})
	if err != nil {
		return err
	}
	f.sub = sub
	if !f.s.opts.Static {
		f.suppress() // nothing to do before the first job arrives
	}
	return nil
}

func (f *framework) finished() bool {
	for _, j := range f.jobs {
		if !j.done {
			return false
		}
	}
	return true
}

// arrive makes job ji's first stage pending.
func (f *framework) arrive(ji int) {
	j := f.jobs[ji]
	j.arrived, j.lastLocal = true, f.s.now()
	f.release(j)
}

// release queues the tasks of j's current stage.
func (f *framework) release(j *jobState) {
	now := f.s.now()
	j.left = j.spec.tasks
	for i := 0; i < j.spec.tasks; i++ {
		j.pending = append(j.pending, pendingTask{idx: i, readyAt: now})
	}
	f.changed()
}

// changed is called when pending work changed: revive, declare demand.
func (f *framework) changed() {
	has := f.hasPending()
	if has && f.suppressed {
		f.suppressed = false
		f.must(f.s.m.Revive(&corralpb.ReviveRequest{Header: f.sub.Header()}))
	}
	if f.spec.Kind == KindDemand {
		f.declare()
	}
}

func (f *framework) suppress() {
	if f.suppressed || f.s.opts.Static {
		return
	}
	f.suppressed = true
	f.must(f.s.m.Suppress(&corralpb.SuppressRequest{Header: f.sub.Header()}))
}

func (f *framework) hasPending() bool {
	for _, j := range f.jobs {
		if len(j.pending) > 0 {
			return true
		}
	}
	return false
}

// declare sends the shapes of the pending tasks as the framework's demand.
func (f *framework) declare() {
	counts := map[string]uint32{}
	var order []string
	for _, j := range f.jobs {
		if len(j.pending) == 0 {
			continue
		}
		k := j.spec.res.String()
		if _, ok := counts[k]; !ok {
			order = append(order, k)
		}
		counts[k] += uint32(len(j.pending))
	}
	var b strings.Builder
	var shapes []*corralpb.TaskShape
	for _, k := range order {
		fmt.Fprintf(&b, "%s*%d|", k, counts[k])
		shapes = append(shapes, &corralpb.TaskShape{Resources: resources.MustParse(k).ToProto(), Count: counts[k]})
	}
	if b.String() == f.demandKey || f.suppressed {
		return
	}
	f.demandKey = b.String()
	f.must(f.s.m.Request(&corralpb.RequestCall{Header: f.sub.Header(), Role: f.role, Shapes: shapes}))
}

// must records an error of a call that the model makes only when valid;
// one means the model and the master disagree, a bug worth seeing.
func (f *framework) must(err error) {
	if err != nil {
		f.s.errs = append(f.s.errs, fmt.Sprintf("framework %s at %d ms: %v", f.spec.Name, f.s.now(), err))
	}
}

// poll handles every event waiting on the stream; it reports whether
// there was one.
func (f *framework) poll() bool {
	any := false
	for {
		ev, ok := f.sub.Poll()
		if !ok {
			return any
		}
		any = true
		switch {
		case ev.GetOffers() != nil:
			f.offers(ev.GetOffers().Offers)
		case ev.GetUpdate() != nil:
			f.update(ev.GetUpdate().Status)
		case ev.GetRescind() != nil:
			f.stats.rescinded++
			id := ev.GetRescind().OfferId
			f.held = slices.DeleteFunc(f.held, func(o *corralpb.Offer) bool { return o.Id == id })
		case ev.GetInverseOffers() != nil:
			f.stats.inverse += len(ev.GetInverseOffers().InverseOffers)
		}
	}
}

func (f *framework) offers(offers []*corralpb.Offer) {
	var mine []*corralpb.Offer
	for _, o := range offers {
		if f.partition != nil && !f.partition[o.AgentId] {
			// How static partitioning is emulated, not a decision of the
			// framework: left out of the offer counts.
			f.must(f.s.m.Decline(&corralpb.DeclineRequest{Header: f.sub.Header(), OfferIds: []string{o.Id},
				Filters: &corralpb.Filters{RefuseSeconds: ptr(foreverRefuse)}}))
			continue
		}
		mine = append(mine, o)
	}
	f.stats.offers += len(mine)
	if f.spec.Kind == KindGang {
		f.gang(mine)
	} else {
		for _, o := range mine {
			f.fill(o)
		}
	}
	if !f.hasPending() && len(f.held) == 0 {
		f.suppress()
	}
}

// fill launches what the framework wants of one offer and declines the
// rest.
func (f *framework) fill(o *corralpb.Offer) {
	avail := resources.MustFromProto(o.Resources)
	now := f.s.now()
	var launch []*taskState
	for _, j := range f.jobs {
		if len(j.pending) == 0 {
			continue
		}
		for len(j.pending) > 0 && avail.Contains(j.spec.res) {
			i := 0
			if f.spec.Kind == KindDelay {
				i = slices.IndexFunc(j.pending, func(p pendingTask) bool { return slices.Contains(j.spec.where[p.idx], o.AgentId) })
				if i < 0 && (j.spec.where == nil || now-j.lastLocal >= secondsToMS(f.spec.DelayS)) {
					i = 0
				}
				if i < 0 {
					break // wait for a local offer; the next job may take this one
				}
			}
			p := j.pending[i]
			j.pending = slices.Delete(j.pending, i, i+1)
			avail = avail.Subtract(j.spec.res)
			launch = append(launch, f.newTask(j, p, o.AgentId))
		}
	}
	if len(launch) == 0 {
		f.declineOffers([]*corralpb.Offer{o}, f.decline)
		return
	}
	f.accept([]*corralpb.Offer{o}, launch)
}

// gang adds offers to those held and launches the first waiting job's
// whole stage once the held offers fit every task of it.
func (f *framework) gang(offers []*corralpb.Offer) {
	f.held = append(f.held, offers...)
	for {
		var j *jobState
		for _, c := range f.jobs {
			if len(c.pending) > 0 {
				j = c
				break
			}
		}
		if j == nil {
			if len(f.held) > 0 {
				f.declineOffers(f.held, f.decline)
				f.held = nil
			}
			return
		}
		// Place tasks agent by agent, in the order the offers came.
		type place struct {
			offers []*corralpb.Offer
			n      int
		}
		byAgent := map[string]*place{}
		var agents []string
		for _, o := range f.held {
			p := byAgent[o.AgentId]
			if p == nil {
				p = &place{}
				byAgent[o.AgentId] = p
				agents = append(agents, o.AgentId)
			}
			p.offers = append(p.offers, o)
		}
		need := len(j.pending)
		for _, a := range agents {
			p := byAgent[a]
			var avail resources.Resources
			for _, o := range p.offers {
				avail = avail.Add(resources.MustFromProto(o.Resources))
			}
			for need > 0 && avail.Contains(j.spec.res) {
				avail = avail.Subtract(j.spec.res)
				p.n++
				need--
			}
		}
		if need > 0 {
			// Keep holding what can host a task of the gang; what cannot
			// (a fragment of an agent) goes back for others to use.
			var keep, useless []*corralpb.Offer
			for _, a := range agents {
				if byAgent[a].n > 0 {
					keep = append(keep, byAgent[a].offers...)
				} else {
					useless = append(useless, byAgent[a].offers...)
				}
			}
			if len(useless) > 0 {
				f.declineOffers(useless, f.decline)
			}
			f.held = keep
			return
		}
		var keep []*corralpb.Offer
		for _, a := range agents {
			p := byAgent[a]
			if p.n == 0 {
				keep = append(keep, p.offers...)
				continue
			}
			var launch []*taskState
			for k := 0; k < p.n; k++ {
				pt := j.pending[0]
				j.pending = j.pending[1:]
				launch = append(launch, f.newTask(j, pt, a))
			}
			f.accept(p.offers, launch)
		}
		f.held = keep
	}
}

func (f *framework) newTask(j *jobState, p pendingTask, agent string) *taskState {
	now := f.s.now()
	t := &taskState{job: j, stage: j.stage, idx: p.idx, attempt: p.attempt, agent: agent, launchedAt: now}
	if !j.started {
		j.started, j.start = true, now
	}
	j.launched++
	f.stats.launched++
	if j.spec.where != nil {
		j.withInput++
		f.stats.withInput++
		if slices.Contains(j.spec.where[p.idx], agent) {
			j.lastLocal = now
			j.local++
			f.stats.local++
		}
	}
	if w := now - p.readyAt; w > f.stats.maxWait {
		f.stats.maxWait, f.stats.maxWaitTask = w, taskID(j, t)
	}
	return t
}

func taskID(j *jobState, t *taskState) string {
	return fmt.Sprintf("%s.s%d.t%d.a%d", j.spec.id, t.stage, t.idx, t.attempt)
}

func (f *framework) accept(offers []*corralpb.Offer, launch []*taskState) {
	var infos []*corralpb.TaskInfo
	for _, t := range launch {
		id := taskID(t.job, t)
		f.tasks[id] = t
		infos = append(infos, &corralpb.TaskInfo{TaskId: id, Name: id, Resources: t.job.spec.res.ToProto(),
			Command: &corralpb.CommandInfo{Value: "sim"}})
	}
	refuse := f.decline
	f.must(f.s.m.Accept(&corralpb.AcceptRequest{Header: f.sub.Header(), OfferIds: offerIDs(offers),
		Operations: []*corralpb.Operation{{Op: &corralpb.Operation_Launch_{Launch: &corralpb.Operation_Launch{Tasks: infos}}}},
		Filters:    &corralpb.Filters{RefuseSeconds: &refuse}}))
	if f.spec.Kind == KindDemand {
		f.declare()
	}
}

func (f *framework) declineOffers(offers []*corralpb.Offer, refuse float64) {
	f.stats.declined += len(offers)
	f.must(f.s.m.Decline(&corralpb.DeclineRequest{Header: f.sub.Header(), OfferIds: offerIDs(offers),
		Filters: &corralpb.Filters{RefuseSeconds: &refuse}}))
}

func offerIDs(offers []*corralpb.Offer) []string {
	ids := make([]string, len(offers))
	for i, o := range offers {
		ids[i] = o.Id
	}
	return ids
}

// durationOf is how long a launched task runs, in ms (0: forever).
func (f *framework) durationOf(taskID string) int64 {
	t := f.tasks[taskID]
	if t == nil {
		return 0
	}
	d := t.job.spec.dur[t.stage][t.idx]
	if w := t.job.spec.where; w != nil && d > 0 && !slices.Contains(w[t.idx], t.agent) {
		d = int64(math.Round(float64(d) * t.job.spec.remote))
	}
	return d
}

// update follows a task's status: a finished task advances its job; a
// killed or lost one (preempted, agent gone) runs again.
func (f *framework) update(st *corralpb.TaskStatus) {
	t := f.tasks[st.TaskId]
	if t == nil {
		return
	}
	now := f.s.now()
	switch st.State {
	case corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_STAGING, corralpb.TaskState_TASK_STARTING:
		if t.job.spec.dur[t.stage][t.idx] == 0 {
			// A service instance is up: that is its job's progress.
			f.progress(t, now)
		}
		return
	case corralpb.TaskState_TASK_FINISHED:
		delete(f.tasks, st.TaskId)
		f.progress(t, now)
	default: // killed, lost, failed, error: run it again
		delete(f.tasks, st.TaskId)
		f.stats.killed++
		t.job.pending = append(t.job.pending, pendingTask{idx: t.idx, attempt: t.attempt + 1, readyAt: now})
		f.changed()
	}
}

// progress counts one task of t's stage done; the last one starts the
// next stage or ends the job.
func (f *framework) progress(t *taskState, now int64) {
	j := t.job
	if j.done {
		return
	}
	j.left--
	if j.left > 0 {
		return
	}
	j.stage++
	if j.stage < j.spec.stages {
		f.release(j)
		return
	}
	j.done, j.end = true, now
	if now > f.s.lastFinite {
		f.s.lastFinite = now
	}
}

func ptr[T any](v T) *T { return &v }
