package mesos

import (
	"testing"
	"time"

	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestEventTranslation covers the events a test cluster does not easily
// produce (executor messages, agent failures, revocations).
func TestEventTranslation(t *testing.T) {
	m, err := master.New(master.Config{}, master.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s := New(m, Options{})
	plain := &stream{frameworkID: "f"}
	killing := &stream{frameworkID: "f", caps: caps{killingTask: true}}
	for _, tc := range []struct {
		name  string
		st    *stream
		in    *corralpb.Event
		check func([]*schedpb.Event) bool
	}{
		{"message", plain, &corralpb.Event{Event: &corralpb.Event_Message_{Message: &corralpb.Event_Message{AgentId: "a", TaskId: "t", Data: []byte("x")}}},
			func(out []*schedpb.Event) bool {
				mm := out[0].GetMessage()
				return out[0].GetType() == schedpb.Event_MESSAGE && mm.GetExecutorId().GetValue() == "t" && mm.GetAgentId().GetValue() == "a" && string(mm.GetData()) == "x"
			}},
		{"failure", plain, &corralpb.Event{Event: &corralpb.Event_Failure_{Failure: &corralpb.Event_Failure{AgentId: "a", Message: "gone"}}},
			func(out []*schedpb.Event) bool {
				return out[0].GetType() == schedpb.Event_FAILURE && out[0].GetFailure().GetAgentId().GetValue() == "a" && out[0].GetFailure().ExecutorId == nil
			}},
		{"inverse offers", plain, &corralpb.Event{Event: &corralpb.Event_InverseOffers_{InverseOffers: &corralpb.Event_InverseOffers{
			InverseOffers: []*corralpb.InverseOffer{{Id: "io", FrameworkId: "f", AgentId: "a", TaskId: "t", GraceSeconds: 30, DeadlineUnixMs: 1_700_000_000_000,
				Resources: []*corralpb.Resource{{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: 1}}}}}}}},
			func(out []*schedpb.Event) bool {
				io := out[0].GetInverseOffers().GetInverseOffers()[0]
				return out[0].GetType() == schedpb.Event_INVERSE_OFFERS && io.GetId().GetValue() == "io" &&
					io.GetUnavailability().GetStart().GetNanoseconds() == 1_700_000_000_000*int64(time.Millisecond) &&
					io.GetResources()[0].GetScalar().GetValue() == 1 && io.GetResources()[0].GetRole() == "*"
			}},
		{"killing hidden from frameworks without TASK_KILLING_STATE", plain, killingUpdate(nil), func(out []*schedpb.Event) bool { return len(out) == 0 }},
		{"killing with uuid still delivered for its ack", plain, killingUpdate([]byte("0123456789abcdef")), func(out []*schedpb.Event) bool {
			return out[0].GetUpdate().GetStatus().GetState() == mesospb.TaskState_TASK_RUNNING
		}},
		{"killing shown with TASK_KILLING_STATE", killing, killingUpdate(nil), func(out []*schedpb.Event) bool {
			return out[0].GetUpdate().GetStatus().GetState() == mesospb.TaskState_TASK_KILLING
		}},
		{"preempted", plain, &corralpb.Event{Event: &corralpb.Event_Update_{Update: &corralpb.Event_Update{Status: &corralpb.TaskStatus{
			TaskId: "t", State: corralpb.TaskState_TASK_KILLED, Reason: corralpb.TaskStatus_REASON_PREEMPTED, Source: corralpb.TaskStatus_SOURCE_MASTER}}}},
			func(out []*schedpb.Event) bool {
				st := out[0].GetUpdate().GetStatus()
				return st.GetReason() == mesospb.TaskStatus_REASON_CONTAINER_PREEMPTED && st.ExecutorId == nil
			}},
	} {
		out := s.eventToMesos(tc.st, tc.in)
		if !tc.check(out) {
			t.Errorf("%s: %v", tc.name, out)
		}
	}
}

func killingUpdate(uuid []byte) *corralpb.Event {
	return &corralpb.Event{Event: &corralpb.Event_Update_{Update: &corralpb.Event_Update{Status: &corralpb.TaskStatus{
		TaskId: "t", State: corralpb.TaskState_TASK_KILLING, Source: corralpb.TaskStatus_SOURCE_EXECUTOR, Uuid: uuid}}}}
}

func TestTaskTranslation(t *testing.T) {
	cpus := []*mesospb.Resource{{Name: strp("cpus"), Type: mesospb.Value_SCALAR.Enum(), Scalar: &mesospb.Value_Scalar{Value: f64p(1)}}}
	base := func() *mesospb.TaskInfo {
		return &mesospb.TaskInfo{Name: strp("n"), TaskId: &mesospb.TaskID{Value: strp("t")}, AgentId: &mesospb.AgentID{Value: strp("a")},
			Resources: cpus, Command: &mesospb.CommandInfo{Value: strp("echo hi")}}
	}
	got, err := taskToCorral(base())
	if err != nil || !got.Command.Shell || got.Command.Value != "echo hi" {
		t.Fatalf("shell omitted means shell: %v %v", got, err)
	}
	argv := base()
	argv.Command = &mesospb.CommandInfo{Shell: boolp(false), Value: strp("/bin/echo"), Arguments: []string{"echo", "a b"}}
	if got, err := taskToCorral(argv); err != nil || got.Command.Shell || len(got.Command.Arguments) != 1 || got.Command.Arguments[0] != "a b" {
		t.Errorf("argv[0] is dropped for corral: %v %v", got, err)
	}
	for name, mutate := range map[string]func(*mesospb.TaskInfo){
		"container": func(t *mesospb.TaskInfo) { t.Container = &mesospb.ContainerInfo{} },
		"uris":      func(t *mesospb.TaskInfo) { t.Command.Uris = []*mesospb.CommandInfo_URI{{Value: strp("x")}} },
		"executor":  func(t *mesospb.TaskInfo) { t.Command = nil; t.Executor = &mesospb.ExecutorInfo{} },
		"both":      func(t *mesospb.TaskInfo) { t.Executor = &mesospb.ExecutorInfo{} },
		"nothing":   func(t *mesospb.TaskInfo) { t.Command = nil },
		"no cpus":   func(t *mesospb.TaskInfo) { t.Resources = nil },
		"secret env": func(t *mesospb.TaskInfo) {
			t.Command.Environment = &mesospb.Environment{Variables: []*mesospb.Environment_Variable{{Name: strp("S"), Type: mesospb.Environment_Variable_SECRET.Enum()}}}
		},
		"health": func(t *mesospb.TaskInfo) { t.HealthCheck = &mesospb.HealthCheck{} },
		"limits": func(t *mesospb.TaskInfo) { t.Limits = map[string]*mesospb.Value_Scalar{"cpus": {Value: f64p(2)}} },
		"volume": func(t *mesospb.TaskInfo) {
			t.Resources = []*mesospb.Resource{{Name: strp("disk"), Type: mesospb.Value_SCALAR.Enum(), Disk: &mesospb.Resource_DiskInfo{}}}
		},
	} {
		ti := base()
		mutate(ti)
		if _, err := taskToCorral(ti); err == nil {
			t.Errorf("%s: accepted, want a clear refusal", name)
		}
	}
}

func strp(s string) *string   { return &s }
func f64p(f float64) *float64 { return &f }
func boolp(b bool) *bool      { return &b }
