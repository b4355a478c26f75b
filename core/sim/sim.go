// Package sim is corral's discrete-event simulator: it replays a workload
// (a Trace) on a simulated cluster in virtual time, through the master's
// real books, allocation cycle, proposal validation and offer ledger
// (core/master's Stepper) and a real allocator plugin binary started by
// the plugin host. Agents and frameworks are models connected in-process:
// agents run tasks for their traced durations, frameworks decide on offers
// as their real counterparts would (see framework.go).
//
// The simulation is deterministic: every random choice comes from the
// trace's seed, time is virtual, and the models are driven in a fixed
// order, so the same trace and policy give byte-identical reports.
package sim

import (
	"container/heap"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// stallMS: with nothing running and nothing arriving, a run that placed
// nothing for this long never will (every decline filter has expired).
const stallMS = 10 * 60 * 1000

// epoch is virtual time 0.
var epoch = time.Date(2011, 3, 30, 0, 0, 0, 0, time.UTC)

// Options select the policy a trace runs under.
type Options struct {
	// Label names the run in reports ("drf", "static", ...).
	Label string
	// Allocator is the plugin to run; Launcher starts it.
	Allocator master.AllocatorChoice
	Launcher  master.AllocatorLauncher
	// Static confines each framework to its own partition of the agents
	// (Framework.StaticAgents, default an equal split): the framework
	// declines every offer from outside it for good.
	Static bool
	Logger hclog.Logger
}

// Run simulates t under opts and returns what happened.
func Run(ctx context.Context, t *Trace, opts Options) (*Result, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	s, err := newSim(ctx, t, opts)
	if err != nil {
		return nil, err
	}
	defer s.step.Stop()
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return s.result(), nil
}

type sim struct {
	trace  *Trace
	opts   Options
	clock  atomic.Int64 // virtual ms
	m      *master.Master
	step   *master.Stepper
	events eventQueue
	seq    uint64

	agents   []*simAgent // trace order
	byID     map[string]*simAgent
	fws      []*framework
	total    resources.Resources
	interval int64 // allocation interval, ms
	sampleMS int64
	maxMS    int64

	samples []Sample
	cycles  int
	// errs are calls the models made that the master refused: a model
	// and the master disagreeing (reported, never expected).
	errs []string
	// lastFinite is when the last job that can finish finished.
	lastFinite int64
	// running counts the tasks running, arrivals the jobs still to
	// arrive, lastProgress when a task last started or ended: with none
	// running, none to arrive and no progress for stallMS, no policy
	// will place the rest (they cannot fit), and the run stops.
	running, arrivals int
	lastProgress      int64
	stalled           bool
}

type simAgent struct {
	spec  agentSpec
	local *master.LocalAgent
	// running tasks by framework/task ID.
	running map[taskRef]*runningTask
}

type taskRef struct{ fw, task string }

type runningTask struct {
	res   resources.Resources
	endAt int64 // 0: forever
	fw    *framework
}

func (s *sim) now() int64 { return s.clock.Load() }

func newSim(ctx context.Context, t *Trace, opts Options) (*sim, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &sim{trace: t, opts: opts, byID: map[string]*simAgent{},
		interval: max(secondsToMS(orDefault(t.AllocationIntervalS, 1)), 1),
		sampleMS: max(secondsToMS(orDefault(t.SampleIntervalS, 5)), 1),
		maxMS:    secondsToMS(orDefault(t.MaxDurationS, 30*24*3600)),
	}
	roles := map[string]master.RoleConfig{}
	for _, r := range t.Roles {
		rc := master.RoleConfig{Weight: r.Weight}
		if r.Guarantee != "" {
			rc.Guarantee = resources.MustParse(r.Guarantee)
		}
		if r.Limit != "" {
			rc.Limit = resources.MustParse(r.Limit)
		}
		roles[r.Name] = rc
	}
	m, err := master.New(master.Config{
		AllocationInterval: time.Duration(s.interval) * time.Millisecond,
		// The plugin answers in wall time; virtual time stands still
		// meanwhile, so the deadline only guards against a hung plugin.
		AllocatorTimeout:       time.Minute,
		Roles:                  roles,
		Allocator:              opts.Allocator,
		AgentReregisterTimeout: 24 * time.Hour,
		HeartbeatInterval:      24 * time.Hour,
	}, master.Deps{
		Logger:   log.Named("master"),
		Launcher: opts.Launcher,
		Now:      func() time.Time { return epoch.Add(time.Duration(s.clock.Load()) * time.Millisecond) },
	})
	if err != nil {
		return nil, err
	}
	if err := m.StartAllocator(ctx); err != nil {
		return nil, fmt.Errorf("starting allocator %s: %w", opts.Allocator.Name, err)
	}
	s.m, s.step = m, m.Stepper()

	agents, jobs := t.expand()
	for _, spec := range agents {
		attrs := map[string]string{}
		for k, v := range spec.attrs {
			attrs[k] = v
		}
		la, err := s.step.ConnectAgent(&agentproto.Register{Agent: &corralpb.AgentInfo{
			Id: spec.id, Hostname: spec.id, Resources: spec.res.ToProto(), Attributes: attrs}})
		if err != nil {
			s.step.Stop()
			return nil, fmt.Errorf("agent %s: %w", spec.id, err)
		}
		a := &simAgent{spec: spec, local: la, running: map[taskRef]*runningTask{}}
		s.agents = append(s.agents, a)
		s.byID[spec.id] = a
		s.total = s.total.Add(spec.res)
	}
	partitions := s.partition()
	for i, f := range t.Frameworks {
		fw := newFramework(s, f, jobs[i])
		if opts.Static {
			fw.partition = partitions[i]
		}
		if err := fw.subscribe(); err != nil {
			s.step.Stop()
			return nil, fmt.Errorf("framework %s: %w", f.Name, err)
		}
		s.fws = append(s.fws, fw)
		for ji := range fw.jobs {
			s.push(fw.jobs[ji].spec.arrival, event{kind: evArrive, fw: fw, job: ji})
			s.arrivals++
		}
	}
	return s, nil
}

// partition splits the agents, in trace order, among the frameworks.
func (s *sim) partition() []map[string]bool {
	n := len(s.trace.Frameworks)
	out := make([]map[string]bool, n)
	sizes := make([]int, n)
	left, unsized := len(s.agents), 0
	for i, f := range s.trace.Frameworks {
		sizes[i] = f.StaticAgents
		left -= f.StaticAgents
		if f.StaticAgents == 0 {
			unsized++
		}
	}
	extra := 0
	if unsized > 0 {
		extra = max(left, 0) % unsized
	}
	for i := range sizes {
		if sizes[i] == 0 && unsized > 0 {
			sizes[i] = max(left, 0) / unsized
			if extra > 0 {
				sizes[i]++
				extra--
			}
		}
	}
	next := 0
	for i := range out {
		out[i] = map[string]bool{}
		for k := 0; k < sizes[i] && next < len(s.agents); k++ {
			out[i][s.agents[next].spec.id] = true
			next++
		}
	}
	return out
}

// run is the event loop: at each instant with events, handle them, let
// the master's timers run, deliver every message, and run an allocation
// cycle if one is due (the interval tick) or was asked for (an event
// changed the books), then deliver again.
func (s *sim) run(ctx context.Context) error {
	s.push(0, event{kind: evTick})
	s.push(0, event{kind: evSample})
	for s.events.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		at := s.events[0].at
		if at > s.maxMS {
			break
		}
		s.clock.Store(at)
		tick := false
		for s.events.Len() > 0 && s.events[0].at == at {
			e := heap.Pop(&s.events).(event)
			switch e.kind {
			case evTick:
				tick = true
			case evSample:
				s.sample()
				if !s.finished() {
					s.push(at+s.sampleMS, event{kind: evSample})
				}
			default:
				s.handle(e)
			}
		}
		s.step.Tick()
		s.pump()
		trigger, asked := s.step.TakeTrigger()
		if tick {
			trigger, asked = allocator.TriggerTimer, true
		}
		if asked {
			s.step.RunCycle(ctx, trigger)
			s.cycles++
			s.pump()
		}
		if s.finished() {
			s.sample()
			break
		}
		if s.running == 0 && s.arrivals == 0 && at-s.lastProgress >= stallMS {
			s.stalled = true
			s.sample()
			break
		}
		if tick {
			s.push(at+s.interval, event{kind: evTick})
		}
	}
	return nil
}

// finished says whether every job that can end has ended.
func (s *sim) finished() bool {
	for _, f := range s.fws {
		if !f.finished() {
			return false
		}
	}
	return true
}

func (s *sim) handle(e event) {
	switch e.kind {
	case evArrive:
		s.arrivals--
		s.lastProgress = e.at
		e.fw.arrive(e.job)
	case evTaskEnd:
		a := s.byID[e.agent]
		rt := a.running[e.ref]
		if rt == nil || rt.endAt != e.at {
			return // killed earlier
		}
		delete(a.running, e.ref)
		s.running--
		s.lastProgress = e.at
		a.local.Update(&agentproto.StatusUpdate{FrameworkId: e.ref.fw, Status: &corralpb.TaskStatus{
			TaskId: e.ref.task, State: corralpb.TaskState_TASK_FINISHED, Source: corralpb.TaskStatus_SOURCE_EXECUTOR,
			TimestampUnixMs: epoch.UnixMilli() + e.at}})
	}
}

// pump delivers messages until everybody is quiet: what the master sent
// agents (tasks to run or kill), then the frameworks' events (offers,
// updates), whose answers may send agents more.
func (s *sim) pump() {
	for {
		moved := false
		for _, a := range s.agents {
			for {
				msg, ok := a.local.Poll()
				if !ok {
					break
				}
				moved = true
				s.agentMessage(a, msg)
			}
		}
		for _, f := range s.fws {
			if f.poll() {
				moved = true
			}
		}
		if !moved {
			return
		}
	}
}

func (s *sim) agentMessage(a *simAgent, msg *agentproto.MasterMessage) {
	now := s.now()
	switch {
	case msg.GetRunTask() != nil:
		rt := msg.GetRunTask()
		fw := s.frameworkByID(rt.Framework.GetId())
		ref := taskRef{fw: rt.Framework.GetId(), task: rt.Task.GetTaskId()}
		res := resources.MustFromProto(rt.Task.Resources)
		dur := int64(0)
		if fw != nil {
			dur = fw.durationOf(ref.task)
		}
		run := &runningTask{res: res, fw: fw}
		if dur > 0 {
			run.endAt = now + dur
			s.push(run.endAt, event{kind: evTaskEnd, agent: a.spec.id, ref: ref})
		}
		a.running[ref] = run
		s.running++
		s.lastProgress = now
		a.local.Update(&agentproto.StatusUpdate{FrameworkId: ref.fw, Status: &corralpb.TaskStatus{
			TaskId: ref.task, State: corralpb.TaskState_TASK_RUNNING, Source: corralpb.TaskStatus_SOURCE_EXECUTOR,
			TimestampUnixMs: epoch.UnixMilli() + now}})
	case msg.GetKillTask() != nil:
		k := msg.GetKillTask()
		ref := taskRef{fw: k.FrameworkId, task: k.TaskId}
		if _, ok := a.running[ref]; !ok {
			return
		}
		delete(a.running, ref)
		s.running--
		a.local.Update(&agentproto.StatusUpdate{FrameworkId: ref.fw, Status: &corralpb.TaskStatus{
			TaskId: ref.task, State: corralpb.TaskState_TASK_KILLED, Source: corralpb.TaskStatus_SOURCE_EXECUTOR,
			TimestampUnixMs: epoch.UnixMilli() + now}})
	case msg.GetShutdownFramework() != nil:
		fid := msg.GetShutdownFramework().FrameworkId
		for _, ref := range sortedRefs(a.running) {
			if ref.fw == fid {
				delete(a.running, ref)
				s.running--
			}
		}
	}
}

func (s *sim) frameworkByID(id string) *framework {
	for _, f := range s.fws {
		if f.id == id {
			return f
		}
	}
	return nil
}

// Event queue, ordered by time then by insertion.

type eventKind int

const (
	evTick eventKind = iota
	evSample
	evArrive
	evTaskEnd
)

type event struct {
	at    int64
	seq   uint64
	kind  eventKind
	fw    *framework
	job   int
	agent string
	ref   taskRef
}

func (s *sim) push(at int64, e event) {
	s.seq++
	e.at, e.seq = at, s.seq
	heap.Push(&s.events, e)
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}
