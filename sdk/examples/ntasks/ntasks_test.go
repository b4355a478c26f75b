package ntasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/scheduler"
)

// recDriver records the framework's decisions. The SDK's wire behaviour is
// tested in sdk/scheduler; here only the framework's policy is under test.
type recDriver struct {
	scheduler.Driver // calls not listed below panic: the framework must not make them
	failLaunch       map[string]bool
	launched         []string // "offer:task"
	declined         []string
	suppresses       int
	teardowns        int
	failRequest      bool
	calls            []string // requests and suppresses, in order
}

func (d *recDriver) Request(_ context.Context, role string, shapes ...scheduler.TaskShape) error {
	if d.failRequest {
		return errors.New("request: Unavailable: master gone")
	}
	d.calls = append(d.calls, fmt.Sprintf("request %s %v", role, shapes))
	return nil
}

func (d *recDriver) Launch(_ context.Context, offerIDs []string, tasks []*corralpb.TaskInfo, _ *corralpb.Filters) error {
	if d.failLaunch[offerIDs[0]] {
		return errors.New("accept: NotFound: offer gone")
	}
	for _, t := range tasks {
		d.launched = append(d.launched, offerIDs[0]+":"+t.GetTaskId())
	}
	return nil
}

func (d *recDriver) Decline(_ context.Context, offerIDs []string, _ *corralpb.Filters) error {
	d.declined = append(d.declined, offerIDs...)
	return nil
}

func (d *recDriver) Suppress(context.Context, ...string) error {
	d.suppresses++
	d.calls = append(d.calls, "suppress")
	return nil
}
func (d *recDriver) Teardown(context.Context) error { d.teardowns++; return nil }

func offer(id string, cpus, mem float64) *corralpb.Offer {
	return &corralpb.Offer{Id: id, AgentId: "a1", Resources: []*corralpb.Resource{
		{Name: "cpus", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: cpus}},
		{Name: "mem", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: mem}},
	}}
}

func status(task string, state corralpb.TaskState, uuid string) *corralpb.TaskStatus {
	return &corralpb.TaskStatus{TaskId: task, AgentId: "a1", State: state, Uuid: []byte(uuid)}
}

func TestPacksOffersThenSuppresses(t *testing.T) {
	f := newFramework(Config{Name: "job", Tasks: 4, Command: "true", CPUs: 0.1, Mem: 32, Logger: hclog.NewNullLogger()})
	d := &recDriver{failLaunch: map[string]bool{"gone": true}}
	ctx := context.Background()

	f.Offers(ctx, d, []*corralpb.Offer{
		offer("gone", 1, 1000),   // launch fails: its tasks stay pending
		offer("o1", 0.25, 1000),  // CPU-bound: two tasks
		offer("small", 0.05, 64), // fits nothing
	})
	f.Offers(ctx, d, []*corralpb.Offer{offer("o2", 1, 1000)})
	f.Offers(ctx, d, []*corralpb.Offer{offer("late", 1, 1000)}) // nothing left to place

	if want := []string{"o1:job-0", "o1:job-1", "o2:job-2", "o2:job-3"}; !slices.Equal(d.launched, want) {
		t.Errorf("launched %q, want %q", d.launched, want)
	}
	if want := []string{"small", "late"}; !slices.Equal(d.declined, want) {
		t.Errorf("declined %q, want %q", d.declined, want)
	}
	if d.suppresses != 1 {
		t.Errorf("suppressed %d times, want once after the last launch", d.suppresses)
	}
}

func TestCountsOutcomesAndTearsDownAfterLastAck(t *testing.T) {
	var seen []string
	f := newFramework(Config{Tasks: 3, Command: "true", Logger: hclog.NewNullLogger(),
		OnUpdate: func(st *corralpb.TaskStatus) { seen = append(seen, st.GetTaskId()) }})
	d := &recDriver{}
	ctx := context.Background()
	deliver := func(st *corralpb.TaskStatus) { // what the SDK does: Update, then ack
		f.Update(ctx, d, st)
		if len(st.GetUuid()) > 0 {
			f.Acknowledged(ctx, d, st, nil)
		}
	}

	deliver(status("ntasks-0", corralpb.TaskState_TASK_RUNNING, "u1"))
	deliver(status("ntasks-0", corralpb.TaskState_TASK_FINISHED, "u2"))
	deliver(status("ntasks-0", corralpb.TaskState_TASK_FINISHED, "")) // reconciliation repeat: not counted twice
	deliver(status("ntasks-1", corralpb.TaskState_TASK_LOST, "u3"))
	if d.teardowns != 0 {
		t.Fatalf("tore down with a task still running")
	}
	f.Update(ctx, d, status("ntasks-2", corralpb.TaskState_TASK_FAILED, "u4"))
	if d.teardowns != 0 {
		t.Fatalf("tore down before the last update was acknowledged")
	}
	f.Acknowledged(ctx, d, status("ntasks-2", corralpb.TaskState_TASK_FAILED, "u4"), nil)
	if d.teardowns != 1 {
		t.Fatalf("teardowns = %d after the last ack, want 1", d.teardowns)
	}

	r := f.res
	want := Result{Finished: 1, Failed: 2, UpdatesReceived: 5, AcksSent: 4, Statuses: map[string]corralpb.TaskState{
		"ntasks-0": corralpb.TaskState_TASK_FINISHED, "ntasks-1": corralpb.TaskState_TASK_LOST, "ntasks-2": corralpb.TaskState_TASK_FAILED}}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("result = %+v, want %+v", r, want)
	}
	if len(seen) != 5 {
		t.Errorf("OnUpdate saw %d updates, want 5", len(seen))
	}
}

func TestRunValidatesConfig(t *testing.T) {
	for _, cfg := range []Config{{Command: "true"}, {Tasks: 1}} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) = nil error", cfg)
		}
	}
}

func TestDeclaresPendingTasksAsTheyLaunch(t *testing.T) {
	f := newFramework(Config{Name: "job", Role: "eng", Tasks: 5, Command: "true", CPUs: 1, Mem: 4096, Logger: hclog.NewNullLogger()})
	d := &recDriver{failLaunch: map[string]bool{"gone": true}}
	ctx := context.Background()
	shape := "[{map[cpus:1 mem:4096] %d}]"

	f.Subscribed(ctx, d, "fw-1", false)
	f.Subscribed(ctx, d, "fw-1", true)                           // unchanged: the SDK re-sends, ntasks does not
	f.Offers(ctx, d, []*corralpb.Offer{offer("gone", 9, 18432)}) // failed launch: still 5 pending
	f.Offers(ctx, d, []*corralpb.Offer{offer("o1", 2, 18432)})   // two tasks
	f.Offers(ctx, d, []*corralpb.Offer{offer("small", 0.5, 18432)})
	f.Offers(ctx, d, []*corralpb.Offer{offer("o2", 1, 4096), offer("o3", 9, 18432)}) // one, then the last two

	want := []string{
		"request eng " + fmt.Sprintf(shape, 5),
		"request eng " + fmt.Sprintf(shape, 3),
		"request eng " + fmt.Sprintf(shape, 0), // withdrawn once per batch, before suppressing
		"suppress",
	}
	if !slices.Equal(d.calls, want) {
		t.Errorf("calls:\n got %q\nwant %q", d.calls, want)
	}
	if len(d.launched) != 5 {
		t.Errorf("launched %q, want 5 tasks", d.launched)
	}
}

// With a custom executor, every pending task is declared with the
// executor's share folded in, so an offer sized to one unit of demand can
// start the executor and its first task; the agent then runs the executor
// and the next offer there packs tasks alone.
func TestDeclaresDemandIncludingTheExecutor(t *testing.T) {
	exec := &corralpb.ExecutorInfo{ExecutorId: "ex", Resources: []*corralpb.Resource{
		{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: 0.5}},
		{Name: "mem", Value: &corralpb.Resource_Scalar{Scalar: 64}},
	}}
	f := newFramework(Config{Name: "job", Role: "eng", Tasks: 3, Command: "true", CPUs: 1, Mem: 128,
		Executor: exec, Logger: hclog.NewNullLogger()})
	d := &recDriver{}
	ctx := context.Background()
	f.Subscribed(ctx, d, "fw-1", false)
	f.Offers(ctx, d, []*corralpb.Offer{offer("o1", 1.5, 192)}) // exactly one unit: executor + one task
	f.Offers(ctx, d, []*corralpb.Offer{offer("o2", 2, 256)})   // executor runs on a1: two tasks fit

	want := []string{
		"request eng [{map[cpus:1.5 mem:192] 3}]",
		"request eng [{map[cpus:1.5 mem:192] 2}]",
		"request eng [{map[cpus:1.5 mem:192] 0}]",
		"suppress",
	}
	if !slices.Equal(d.calls, want) {
		t.Errorf("calls:\n got %q\nwant %q", d.calls, want)
	}
	if len(d.launched) != 3 || len(d.declined) != 0 {
		t.Errorf("launched %q, declined %q; want 3 tasks on two offers, nothing declined", d.launched, d.declined)
	}
}

func TestDemandRetriedAfterAFailedDeclaration(t *testing.T) {
	f := newFramework(Config{Role: "*", Tasks: 3, Command: "true", CPUs: 0.1, Mem: 32, Logger: hclog.NewNullLogger()})
	d := &recDriver{failRequest: true}
	ctx := context.Background()
	f.Subscribed(ctx, d, "fw-1", false)
	d.failRequest = false
	f.Offers(ctx, d, []*corralpb.Offer{offer("small", 0.05, 64)}) // nothing launched, but the declaration is retried
	if want := []string{"request * [{map[cpus:0.1 mem:32] 3}]"}; !slices.Equal(d.calls, want) {
		t.Errorf("calls = %q, want %q", d.calls, want)
	}
}
