// Package ntasks is the smallest useful corral framework: it runs one shell
// command N times, packing as many copies into each offer as fit, and
// reports how they ended. It shows the shape of every framework built on
// sdk/scheduler: declare what is still to be launched (demand), fit tasks
// into offers, decline the rest briefly, withdraw the demand and suppress
// when there is nothing left to place, and tear down when done.
//
// Declaring demand is what lets an allocator such as drf size offers to
// whole tasks and share one agent between frameworks in proportion to their
// fair shares (progressive filling, as in the DRF paper), instead of handing
// a whole agent to whichever framework comes first.
package ntasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/scheduler"
)

// Config describes the job.
type Config struct {
	Master  string  // master gRPC address, host:port
	Name    string  // framework name and task ID prefix; default "ntasks"
	Role    string  // default "*"
	Tasks   int     // how many copies to run; must be > 0
	Command string  // run with /bin/sh -c
	CPUs    float64 // per task; default 0.1
	Mem     float64 // MiB per task; default 32
	Disk    float64 // MiB per task; default 0
	// MaxPerOffer caps the tasks launched from one offer; 0 means as many
	// as fit. With 1, what is left of each offer goes straight back to the
	// allocator, which then picks the framework furthest below its fair
	// share for the next task: the progressive filling of the DRF paper,
	// at the cost of one allocation cycle per task.
	MaxPerOffer int
	// Executor, when set, runs the tasks on this custom executor (see
	// sdk/examples/customexec) instead of the command executor: one
	// executor process per agent runs all the tasks placed there. Its
	// resources are taken from the offer that places its first task.
	Executor *corralpb.ExecutorInfo
	Logger   hclog.Logger
	// OnUpdate, when set, sees every status update (on the event goroutine,
	// before it is acknowledged).
	OnUpdate func(*corralpb.TaskStatus)
	// OnOffers, when set, sees every batch of offers before they are used.
	OnOffers func([]*corralpb.Offer)
	// OnMessage, when set, sees every message from an executor.
	OnMessage func(agentID string, data []byte)
}

// Result is how the tasks ended.
type Result struct {
	Finished, Failed int // TASK_FINISHED vs any other terminal state
	Statuses         map[string]corralpb.TaskState
	UpdatesReceived  int // every update, reconciliation answers included
	AcksSent         int // acknowledgements the master accepted
}

// declineFilter keeps offers we cannot use away only briefly, since more
// tasks may be waiting to be placed when resources come back.
var declineFilter = &corralpb.Filters{RefuseSeconds: proto.Float64(1)}

// Run launches the tasks, waits for all of them to be terminal, tears the
// framework down and returns the outcome.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Tasks <= 0 {
		return Result{}, errors.New("ntasks: Tasks must be positive")
	}
	if cfg.Command == "" {
		return Result{}, errors.New("ntasks: Command is required")
	}
	cfg.Name = cmp(cfg.Name, "ntasks")
	cfg.Role = cmp(cfg.Role, "*")
	if cfg.CPUs <= 0 {
		cfg.CPUs = 0.1
	}
	if cfg.Mem <= 0 {
		cfg.Mem = 32
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	f := newFramework(cfg)
	err := scheduler.Run(ctx, scheduler.Config{
		Master:    cfg.Master,
		Framework: &corralpb.FrameworkInfo{Name: cfg.Name, Roles: []string{cfg.Role}},
		Logger:    cfg.Logger,
	}, f)
	switch {
	case err != nil:
		return f.res, fmt.Errorf("ntasks: %w", err)
	case !f.done():
		return f.res, fmt.Errorf("ntasks: stopped with %d of %d tasks terminal: %w",
			f.res.Finished+f.res.Failed, cfg.Tasks, ctx.Err())
	}
	return f.res, nil
}

func newFramework(cfg Config) *framework {
	f := &framework{cfg: cfg, log: cfg.Logger.Named("ntasks"),
		res: Result{Statuses: make(map[string]corralpb.TaskState)}, execOn: map[string]bool{}}
	for i := range cfg.Tasks {
		f.pending = append(f.pending, i)
	}
	return f
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// framework implements scheduler.Scheduler; all its state is touched only
// from the SDK's event goroutine.
type framework struct {
	cfg        Config
	log        hclog.Logger
	pending    []int // task indexes not yet launched
	suppressed bool
	// declared is the pending count the master last accepted as our demand
	// (0: none). Run re-sends it after a re-subscription.
	declared int
	res      Result
	// execOn marks the agents where our executor runs (Config.Executor).
	execOn map[string]bool
	// acking counts updates whose acknowledgement has not been answered
	// yet. The SDK sends acks concurrently and they may complete out of
	// order, so the last task's ack is not the last ack: tearing down
	// before the others are answered would drop them.
	acking int
}

func (f *framework) done() bool { return f.res.Finished+f.res.Failed == f.cfg.Tasks }

func (f *framework) Subscribed(ctx context.Context, d scheduler.Driver, id string, reconnected bool) {
	f.log.Info("subscribed", "framework_id", id, "reconnected", reconnected)
	f.declare(ctx, d)
	f.finishIfDone(ctx, d) // a teardown may have failed on a broken stream
}

// demandShape is what one pending task is declared to need. With a custom
// executor, each task is declared as if it started the executor too: a
// shape cannot say "only the first task on an agent", and a shape without
// the executor's share would be offered in pieces that cannot start it.
// On an agent where the executor already runs, the surplus of an offer
// goes to further tasks (Offers packs as many as fit), so the overstatement
// costs fewer offers, never a task that cannot start.
func (f *framework) demandShape() map[string]float64 {
	shape := f.want()
	if e := f.cfg.Executor; e != nil {
		for name, v := range scalars(e.GetResources()) {
			shape[name] += v
		}
	}
	return shape
}

// want is one task's resources.
func (f *framework) want() map[string]float64 {
	want := map[string]float64{"cpus": f.cfg.CPUs, "mem": f.cfg.Mem}
	if f.cfg.Disk > 0 {
		want["disk"] = f.cfg.Disk
	}
	return want
}

// declare tells the master how many tasks are still to be launched, when
// that changed since the last declaration; at zero it withdraws the demand.
// A failure (for example a master without demand support) only costs
// offer sizing, so it is logged and retried at the next change.
func (f *framework) declare(ctx context.Context, d scheduler.Driver) {
	n := len(f.pending)
	if n == f.declared || f.suppressed {
		return
	}
	if err := d.Request(ctx, f.cfg.Role, scheduler.TaskShape{Resources: f.demandShape(), Count: n}); err != nil {
		f.log.Warn("declaring demand failed", "pending", n, "error", err)
		return
	}
	f.declared = n
}

func (f *framework) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	if f.cfg.OnOffers != nil {
		f.cfg.OnOffers(offers)
	}
	want := f.want()
	for _, o := range offers {
		var tasks []*corralpb.TaskInfo
		rest := o.GetResources()
		startsExec := false
		if e := f.cfg.Executor; e != nil && !f.execOn[o.GetAgentId()] {
			// The executor's own resources come out of this offer first.
			_, left, ok := scheduler.TakeScalars(rest, scalars(e.GetResources()))
			if !ok {
				rest = nil
			} else {
				rest, startsExec = left, true
			}
		}
		for rest != nil && len(f.pending) > len(tasks) && (f.cfg.MaxPerOffer <= 0 || len(tasks) < f.cfg.MaxPerOffer) {
			taken, left, ok := scheduler.TakeScalars(rest, want)
			if !ok {
				break
			}
			rest = left
			id := fmt.Sprintf("%s-%d", f.cfg.Name, f.pending[len(tasks)])
			tasks = append(tasks, &corralpb.TaskInfo{TaskId: id, Name: id, AgentId: o.GetAgentId(),
				Resources: taken, Command: &corralpb.CommandInfo{Shell: true, Value: f.cfg.Command}, Executor: f.cfg.Executor})
		}
		if len(tasks) == 0 {
			if err := d.Decline(ctx, []string{o.GetId()}, declineFilter); err != nil {
				// NotFound: the master withdrew the offer meanwhile; harmless.
				f.log.Debug("decline failed", "offer_id", o.GetId(), "error", err)
			}
			continue
		}
		filter := declineFilter
		if len(f.pending) > len(tasks) {
			// More tasks wait: let the remainder be offered again at once.
			filter = &corralpb.Filters{RefuseSeconds: proto.Float64(0)}
		}
		if err := d.Launch(ctx, []string{o.GetId()}, tasks, filter); err != nil {
			f.log.Warn("launch failed, tasks stay pending", "offer_id", o.GetId(), "error", err)
			continue
		}
		f.log.Info("launched", "offer_id", o.GetId(), "agent_id", o.GetAgentId(), "tasks", len(tasks))
		if startsExec {
			f.execOn[o.GetAgentId()] = true
		}
		f.pending = f.pending[len(tasks):]
	}
	f.declare(ctx, d) // once per batch: the allocator only looks between cycles
	if len(f.pending) == 0 && !f.suppressed {
		if err := d.Suppress(ctx); err != nil {
			f.log.Warn("suppress failed", "error", err)
			return
		}
		f.suppressed = true
	}
}

func (f *framework) Rescinded(context.Context, scheduler.Driver, string) {}

// Message is a message from our executor.
func (f *framework) Message(_ context.Context, _ scheduler.Driver, agentID, _ string, data []byte) {
	if f.cfg.OnMessage != nil {
		f.cfg.OnMessage(agentID, data)
	}
}

// Failure: an agent, or our executor on it, is gone; a later task there
// starts the executor again (with its resources).
func (f *framework) Failure(_ context.Context, _ scheduler.Driver, agentID, message string) {
	f.log.Info("failure", "agent_id", agentID, "message", message)
	delete(f.execOn, agentID)
}

// scalars reads a resource list's scalars by name.
func scalars(rs []*corralpb.Resource) map[string]float64 {
	out := map[string]float64{}
	for _, r := range rs {
		if s, ok := r.GetValue().(*corralpb.Resource_Scalar); ok {
			out[r.GetName()] += s.Scalar
		}
	}
	return out
}

func (f *framework) Update(ctx context.Context, d scheduler.Driver, st *corralpb.TaskStatus) {
	f.res.UpdatesReceived++
	if f.cfg.OnUpdate != nil {
		f.cfg.OnUpdate(st)
	}
	prev, seen := f.res.Statuses[st.GetTaskId()]
	f.res.Statuses[st.GetTaskId()] = st.GetState()
	if terminal(st.GetState()) && !(seen && terminal(prev)) { // count each task once
		if st.GetState() == corralpb.TaskState_TASK_FINISHED {
			f.res.Finished++
		} else {
			f.res.Failed++
			f.log.Warn("task failed", "task_id", st.GetTaskId(), "state", st.GetState(), "message", st.GetMessage())
		}
	}
	// An update with a uuid is acknowledged after this returns; tearing down
	// now would skip that ack, so wait for Acknowledged.
	if len(st.GetUuid()) > 0 {
		f.acking++
		return
	}
	f.finishIfDone(ctx, d)
}

func (f *framework) Acknowledged(ctx context.Context, d scheduler.Driver, _ *corralpb.TaskStatus, err error) {
	if err == nil {
		f.res.AcksSent++
	}
	f.acking--
	f.finishIfDone(ctx, d)
}

func (f *framework) Error(_ context.Context, _ scheduler.Driver, msg string) {
	f.log.Error("error from master", "message", msg)
}

func (f *framework) finishIfDone(ctx context.Context, d scheduler.Driver) {
	if !f.done() || f.acking > 0 {
		return
	}
	if err := d.Teardown(ctx); err != nil {
		f.log.Warn("teardown failed, will retry after re-subscribing", "error", err)
	}
}

func terminal(s corralpb.TaskState) bool {
	switch s {
	case corralpb.TaskState_TASK_FINISHED, corralpb.TaskState_TASK_FAILED, corralpb.TaskState_TASK_KILLED,
		corralpb.TaskState_TASK_LOST, corralpb.TaskState_TASK_ERROR:
		return true
	}
	return false
}
