package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/masterpb"
	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/mesostest"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
)

// mesosWait bounds waits for cluster events; generous because the machine
// is shared.
const mesosWait = 90 * time.Second

// TestMesosFrameworkExample runs sdk/examples/mesosfw, a framework that
// imports nothing from corral, against a real dev cluster: 20 command tasks
// in JSON, then 20 in protobuf, all of which must finish.
func TestMesosFrameworkExample(t *testing.T) {
	addr, _ := startDev(t)
	for _, enc := range []string{"json", "protobuf"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "mesosfw"), "-master", addr, "-tasks", "20",
			"-encoding", enc, "-timeout", "4m")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "20 tasks finished") {
			t.Fatalf("mesosfw -encoding %s: %v\n%s", enc, err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))
	}
}

func mesosResources(cpus, mem float64) []*mesospb.Resource {
	return []*mesospb.Resource{
		{Name: proto.String("cpus"), Type: mesospb.Value_SCALAR.Enum(), Scalar: &mesospb.Value_Scalar{Value: proto.Float64(cpus)}},
		{Name: proto.String("mem"), Type: mesospb.Value_SCALAR.Enum(), Scalar: &mesospb.Value_Scalar{Value: proto.Float64(mem)}},
	}
}

func awaitOffer(t *testing.T, s *mesostest.Stream) *mesospb.Offer {
	t.Helper()
	ev, err := s.Await(mesosWait, "an offer", func(e *schedpb.Event) bool { return len(e.GetOffers().GetOffers()) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	return ev.GetOffers().GetOffers()[0]
}

// TestMesosSchedulerAPIOnCluster drives offers, launches, updates,
// acknowledgements, reconciliation, kills, rescinds and the operator
// endpoints through the v1 API on a real cluster, in both encodings.
func TestMesosSchedulerAPIOnCluster(t *testing.T) {
	addr, _ := startDev(t)
	for _, enc := range []string{mesostest.JSON, mesostest.Protobuf} {
		t.Run(enc, func(t *testing.T) {
			ctx := context.Background()
			c := mesostest.New(addr, enc)

			// Offers shaped for a framework without capabilities: no
			// allocation_info, pre-refinement role "*".
			plain, err := c.Subscribe(ctx, mesostest.SubscribeCall("plain"), enc)
			if err != nil {
				t.Fatal(err)
			}
			o := awaitOffer(t, plain)
			if o.AllocationInfo != nil || o.Resources[0].AllocationInfo != nil || o.Resources[0].GetRole() != "*" || o.GetUrl().GetAddress().GetPort() == 0 {
				t.Errorf("offer for a plain framework: %v", o)
			}
			plain.Close()

			call := mesostest.SubscribeCall("full", mesospb.FrameworkInfo_Capability_MULTI_ROLE,
				mesospb.FrameworkInfo_Capability_RESERVATION_REFINEMENT, mesospb.FrameworkInfo_Capability_TASK_KILLING_STATE)
			call.Subscribe.FrameworkInfo.Roles = []string{"*", "batch"}
			s, err := c.Subscribe(ctx, call, enc)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fid := mesostest.FID("")
			o = awaitOffer(t, s)
			fid.Value = proto.String(s.FrameworkID)
			if o.GetAllocationInfo().GetRole() == "" || o.Resources[0].GetAllocationInfo().GetRole() == "" || o.Resources[0].Role != nil {
				t.Errorf("offer for a MULTI_ROLE, RESERVATION_REFINEMENT framework: %v", o)
			}
			send := func(call *schedpb.Call, want int) {
				t.Helper()
				call.FrameworkId = fid
				r, err := c.Call(ctx, s.ID, call)
				if err != nil || r.Status != want {
					t.Fatalf("%s: %d %q %v, want %d", call.GetType(), r.Status, r.Body, err, want)
				}
			}
			task := func(name string, cmd *mesospb.CommandInfo) *mesospb.TaskInfo {
				return &mesospb.TaskInfo{Name: proto.String(name), TaskId: &mesospb.TaskID{Value: proto.String(name)},
					AgentId: o.AgentId, Resources: mesosResources(0.1, 16), Command: cmd}
			}
			send(&schedpb.Call{Type: schedpb.Call_ACCEPT.Enum(), Accept: &schedpb.Call_Accept{
				OfferIds: []*mesospb.OfferID{o.Id},
				Operations: []*mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{
					TaskInfos: []*mesospb.TaskInfo{
						task("argv", &mesospb.CommandInfo{Shell: proto.Bool(false), Value: proto.String("/bin/sh"),
							Arguments:   []string{"sh", "-c", `test "$GREETING" = hi`},
							Environment: &mesospb.Environment{Variables: []*mesospb.Environment_Variable{{Name: proto.String("GREETING"), Value: proto.String("hi")}}}}),
						task("fails", &mesospb.CommandInfo{Value: proto.String("exit 3")}),
						task("long", &mesospb.CommandInfo{Value: proto.String("sleep 300")}),
						task("shutdown", &mesospb.CommandInfo{Value: proto.String("sleep 300")}),
						// Too big for the offer: refused alone, as in Mesos.
						{Name: proto.String("toobig"), TaskId: &mesospb.TaskID{Value: proto.String("toobig")}, AgentId: o.AgentId,
							Resources: mesosResources(1000, 16), Command: &mesospb.CommandInfo{Value: proto.String("true")}},
					}}}}}}, 202)

			// Every update with a uuid is acknowledged; updates come one at a
			// time per task until acknowledged.
			final := map[string]*mesospb.TaskStatus{}
			ack := func(st *mesospb.TaskStatus) {
				if len(st.Uuid) == 0 {
					return
				}
				if len(st.Uuid) != 16 || st.GetSource() == mesospb.TaskStatus_SOURCE_MASTER || st.Timestamp == nil ||
					st.GetExecutorId().GetValue() != st.GetTaskId().GetValue() || st.GetAgentId().GetValue() != o.AgentId.GetValue() {
					t.Errorf("agent update: %v", st)
				}
				send(&schedpb.Call{Type: schedpb.Call_ACKNOWLEDGE.Enum(), Acknowledge: &schedpb.Call_Acknowledge{
					AgentId: st.AgentId, TaskId: st.TaskId, Uuid: st.Uuid}}, 202)
			}
			_, err = s.Await(mesosWait, "argv FINISHED, fails FAILED, long RUNNING", func(e *schedpb.Event) bool {
				if st := e.GetUpdate().GetStatus(); st != nil {
					ack(st)
					final[st.GetTaskId().GetValue()] = st
				}
				return final["argv"].GetState() == mesospb.TaskState_TASK_FINISHED &&
					final["fails"].GetState() == mesospb.TaskState_TASK_FAILED &&
					final["long"].GetState() == mesospb.TaskState_TASK_RUNNING &&
					final["shutdown"].GetState() == mesospb.TaskState_TASK_RUNNING &&
					final["toobig"].GetState() == mesospb.TaskState_TASK_ERROR
			})
			if err != nil {
				t.Fatalf("%v (last statuses %v)", err, final)
			}
			if r := final["fails"].GetReason(); r != mesospb.TaskStatus_REASON_COMMAND_EXECUTOR_FAILED {
				t.Errorf("failed task reason %s", r)
			}
			if st := final["toobig"]; st.GetReason() != mesospb.TaskStatus_REASON_TASK_INVALID || st.Uuid != nil || st.GetSource() != mesospb.TaskStatus_SOURCE_MASTER {
				t.Errorf("oversized task: %v", st)
			}

			// Implicit reconciliation answers for the live task, from the
			// master, without uuid.
			send(&schedpb.Call{Type: schedpb.Call_RECONCILE.Enum(), Reconcile: &schedpb.Call_Reconcile{}}, 202)
			ev, err := s.Await(mesosWait, "reconciliation of long", func(e *schedpb.Event) bool {
				st := e.GetUpdate().GetStatus()
				return st.GetReason() == mesospb.TaskStatus_REASON_RECONCILIATION && st.GetTaskId().GetValue() == "long"
			})
			if err != nil {
				t.Fatal(err)
			}
			if st := ev.GetUpdate().GetStatus(); st.Uuid != nil || st.GetState() != mesospb.TaskState_TASK_RUNNING || st.GetSource() != mesospb.TaskStatus_SOURCE_MASTER {
				t.Errorf("reconciliation update %v", st)
			}

			// The operator API sees the task.
			opBody, _ := c.Encode(&masterpb.Call{Type: masterpb.Call_GET_TASKS.Enum()})
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1", bytes.NewReader(opBody))
			req.Header.Set("Content-Type", enc)
			req.Header.Set("Accept", enc)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != enc || !bytes.Contains(buf.Bytes(), []byte("long")) {
				t.Errorf("GET_TASKS: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), buf.String())
			}

			// Kill: TASK_KILLING (the framework declared TASK_KILLING_STATE)
			// then TASK_KILLED.
			send(&schedpb.Call{Type: schedpb.Call_KILL.Enum(), Kill: &schedpb.Call_Kill{TaskId: &mesospb.TaskID{Value: proto.String("long")},
				KillPolicy: &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: proto.Int64(int64(time.Second))}}}}, 202)
			_, err = s.Await(mesosWait, "long KILLED", func(e *schedpb.Event) bool {
				st := e.GetUpdate().GetStatus()
				if st != nil {
					ack(st)
				}
				return st.GetTaskId().GetValue() == "long" && st.GetState() == mesospb.TaskState_TASK_KILLED
			})
			if err != nil {
				t.Fatal(err)
			}

			// SHUTDOWN of a command task's executor (its ID is the task's)
			// ends the task.
			send(&schedpb.Call{Type: schedpb.Call_SHUTDOWN.Enum(), Shutdown: &schedpb.Call_Shutdown{
				ExecutorId: &mesospb.ExecutorID{Value: proto.String("shutdown")}, AgentId: o.AgentId}}, 202)
			_, err = s.Await(mesosWait, "shutdown KILLED", func(e *schedpb.Event) bool {
				st := e.GetUpdate().GetStatus()
				if st != nil {
					ack(st)
				}
				return st.GetTaskId().GetValue() == "shutdown" && st.GetState() == mesospb.TaskState_TASK_KILLED
			})
			if err != nil {
				t.Fatal(err)
			}

			// Leaving a role rescinds the offers made under it.
			o = awaitOffer(t, s)
			keep := "batch"
			if o.GetAllocationInfo().GetRole() == "batch" {
				keep = "*"
			}
			upd := proto.Clone(call.Subscribe.FrameworkInfo).(*mesospb.FrameworkInfo)
			upd.Id = fid
			upd.Roles = []string{keep}
			send(&schedpb.Call{Type: schedpb.Call_UPDATE_FRAMEWORK.Enum(), UpdateFramework: &schedpb.Call_UpdateFramework{FrameworkInfo: upd}}, 200)
			if _, err := s.Await(mesosWait, "RESCIND of "+o.GetId().GetValue(), func(e *schedpb.Event) bool {
				return e.GetRescind().GetOfferId().GetValue() == o.GetId().GetValue()
			}); err != nil {
				t.Fatal(err)
			}

			// /state and /metrics/snapshot in Mesos's shapes.
			var state struct {
				Frameworks []struct {
					ID             string           `json:"id"`
					Roles          []string         `json:"roles"`
					CompletedTasks []map[string]any `json:"completed_tasks"`
				} `json:"frameworks"`
				Slaves []map[string]any `json:"slaves"`
			}
			if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/master/state")), &state); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, f := range state.Frameworks {
				if f.ID == s.FrameworkID {
					found = len(f.CompletedTasks) >= 4 && len(f.Roles) == 1
				}
			}
			if !found || len(state.Slaves) != 1 {
				t.Errorf("/master/state: %+v", state)
			}
			var metrics map[string]float64
			if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/metrics/snapshot")), &metrics); err != nil {
				t.Fatal(err)
			}
			if metrics["master/elected"] != 1 || metrics["master/tasks_finished"] < 1 || metrics["master/tasks_failed"] < 1 ||
				metrics["master/tasks_killed"] < 1 || metrics["master/cpus_total"] <= 0 {
				t.Errorf("/metrics/snapshot: %v", metrics)
			}

			send(&schedpb.Call{Type: schedpb.Call_TEARDOWN.Enum()}, 202)
			var after struct {
				Completed []struct {
					ID string `json:"id"`
				} `json:"completed_frameworks"`
			}
			if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/state")), &after); err != nil {
				t.Fatal(err)
			}
			torn := false
			for _, f := range after.Completed {
				torn = torn || f.ID == s.FrameworkID
			}
			if !torn {
				t.Errorf("/state after TEARDOWN: %+v, want the framework among completed_frameworks", after)
			}
		})
	}
}
