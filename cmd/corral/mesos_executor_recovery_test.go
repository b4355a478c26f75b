package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/scheduler"
)

// recoverySched launches n tasks, each running data as its command, on
// one Mesos v1 executor (sdk/examples/mesosexec), and records every update.
type recoverySched struct {
	n        int
	execPath string
	encoding string // mesosexec -encoding
	data     func(taskID string) string

	mu       sync.Mutex
	launched bool
	updates  []*corralpb.TaskStatus
	errs     []string
	changed  chan struct{}
}

func (s *recoverySched) Subscribed(context.Context, scheduler.Driver, string, bool) {}
func (s *recoverySched) Rescinded(context.Context, scheduler.Driver, string)        {}
func (s *recoverySched) Error(_ context.Context, _ scheduler.Driver, msg string) {
	s.mu.Lock()
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
}

func (s *recoverySched) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	for _, o := range offers {
		s.mu.Lock()
		launch := !s.launched
		s.launched = true
		s.mu.Unlock()
		if !launch {
			_ = d.Decline(ctx, []string{o.GetId()}, &corralpb.Filters{RefuseSeconds: proto.Float64(5)})
			continue
		}
		ex := &corralpb.ExecutorInfo{ExecutorId: "mesos-exec", Api: "mesos",
			Command:   &corralpb.CommandInfo{Value: s.execPath, Arguments: []string{"-encoding", s.encoding}},
			Resources: scalarRes(0.2, 64)}
		var tasks []*corralpb.TaskInfo
		for i := range s.n {
			id := "t" + strconv.Itoa(i)
			tasks = append(tasks, &corralpb.TaskInfo{TaskId: id, AgentId: o.GetAgentId(), Resources: scalarRes(0.1, 16),
				Executor: ex, Data: []byte(s.data(id))})
		}
		if err := d.Launch(ctx, []string{o.GetId()}, tasks, nil); err != nil {
			s.Error(ctx, d, "launch: "+err.Error())
		}
	}
}

func (s *recoverySched) Update(_ context.Context, _ scheduler.Driver, st *corralpb.TaskStatus) {
	s.mu.Lock()
	s.updates = append(s.updates, st)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// freePort picks a port for an agent that must come back on the same
// address: a Mesos executor's MESOS_AGENT_ENDPOINT is fixed at its start.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestMesosExecutorRecoversAfterAgentKill9: an agent running three tasks on
// a Mesos v1 executor (sdk/examples/mesosexec, no corral imports) is killed
// with SIGKILL; the tasks finish while it is down, so the executor's
// TASK_FINISHED updates cannot be delivered. The agent is started again on
// the same address; the executor re-subscribes with its unacknowledged
// tasks and updates, as a checkpointing Mesos executor does, and the
// framework gets every TASK_FINISHED, from the same executor process,
// with nothing reported lost or failed. In JSON and in protobuf.
func TestMesosExecutorRecoversAfterAgentKill9(t *testing.T) {
	for _, enc := range []string{"json", "protobuf"} {
		t.Run(enc, func(t *testing.T) { testMesosExecutorRecovery(t, enc) })
	}
}

func testMesosExecutorRecovery(t *testing.T, encoding string) {
	m := startCorral(t, "master", "-master", "127.0.0.1:0", "-work-dir", t.TempDir())
	addr := m.waitLine(masterLine)
	work := t.TempDir()
	agentArgs := []string{"agent", "-config", execTestConfig(t, "60s"), "-on-shutdown", "kill", "-master", addr,
		"-address", freePort(t), "-work-dir", work}
	ag := startCorral(t, agentArgs...)
	ag.waitLine(agentLine)
	waitState(t, addr, "agent registered", func(s master.State) bool { return len(s.Agents) == 1 && s.Agents[0].Connected })

	dir := t.TempDir()
	marker := filepath.Join(dir, "go")
	const n = 3
	s := &recoverySched{n: n, execPath: filepath.Join(binDir(t), "mesosexec"), encoding: encoding, changed: make(chan struct{}, 1),
		data: func(id string) string {
			return "while [ ! -e " + marker + " ]; do sleep 0.1; done; touch " + filepath.Join(dir, "done-"+id) + "; echo executor=$PPID"
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() {
		runDone <- scheduler.Run(ctx, scheduler.Config{Master: addr,
			Framework: &corralpb.FrameworkInfo{Name: "mesos-recovery", Roles: []string{"*"}, Checkpoint: true, FailoverTimeoutSeconds: 600},
			Logger:    hclog.NewNullLogger()}, s)
	}()
	t.Cleanup(func() { cancel(); <-runDone })

	waitState(t, addr, "three running tasks", func(st master.State) bool {
		running := 0
		for _, f := range st.Frameworks {
			for _, tk := range f.Tasks {
				if tk.State == "TASK_RUNNING" {
					running++
				}
			}
		}
		return running == n
	})
	checkExecutorState(t, addr, filepath.Join(binDir(t), "mesosexec"))
	if err := syscall.Kill(ag.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-ag.done
	// The tasks end while no agent is there to take their updates.
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < n; {
		if _, err := os.Stat(filepath.Join(dir, "done-t"+strconv.Itoa(i))); err == nil {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("task t%d did not end while the agent was down", i)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ag2 := startCorral(t, agentArgs...)
	ag2.waitLine(agentLine)
	// The executor comes back with the updates the dead agent never took.
	resub := ag2.waitLine(regexp.MustCompile(`executor subscribed.*unacknowledged_updates=(\d+)`))
	if resub == "0" {
		t.Fatalf("the executor re-subscribed with no unacknowledged update, though its tasks ended while the agent was down")
	}
	t.Logf("executor re-subscribed with %s unacknowledged updates", resub)
	want := map[string]string{"json": "application/json", "protobuf": "application/x-protobuf"}[encoding]
	if ct := ag2.waitLine(regexp.MustCompile(`mesos executor subscribed.*content_type=(\S+)`)); ct != want {
		t.Fatalf("executor subscribed in %s, want %s", ct, want)
	}

	finished := func() (map[string]string, []string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		done := map[string]string{}
		var states []string
		for _, u := range s.updates {
			states = append(states, u.GetTaskId()+":"+u.GetState().String())
			if u.GetState() == corralpb.TaskState_TASK_FINISHED {
				done[u.GetTaskId()] = u.GetMessage()
			}
		}
		return done, states
	}
	timeout := time.After(2 * time.Minute)
	for {
		done, states := finished()
		for _, st := range states {
			if strings.Contains(st, "LOST") || strings.Contains(st, "FAILED") || strings.Contains(st, "KILLED") {
				t.Fatalf("a task was reported %s across the agent restart; updates %v", st, states)
			}
		}
		if len(done) == n {
			execs := map[string]bool{}
			for _, msg := range done {
				execs[msg] = true
			}
			if len(execs) != 1 || !strings.HasPrefix(strings.Join(keys(execs), ""), "executor=") {
				t.Fatalf("tasks finished with %v, want one executor process", done)
			}
			break
		}
		select {
		case <-s.changed:
		case <-timeout:
			s.mu.Lock()
			errs := s.errs
			s.mu.Unlock()
			t.Fatalf("finished %v of %d after the agent restart; updates %v; errors %v", done, n, states, errs)
		}
	}
	waitState(t, addr, "no live task left", func(st master.State) bool {
		for _, f := range st.Frameworks {
			if len(f.Tasks) > 0 {
				return false
			}
		}
		return true
	})
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkExecutorState: the master's Mesos /state lists the framework's
// executor in Mesos's shape, and the v1 operator API's GET_EXECUTORS and
// GET_STATE list it too.
func checkExecutorState(t *testing.T, addr, execPath string) {
	t.Helper()
	var state struct {
		Slaves     []struct{ ID string } `json:"slaves"`
		Frameworks []struct {
			ID        string           `json:"id"`
			Executors []map[string]any `json:"executors"`
			Tasks     []struct {
				ID         string `json:"id"`
				ExecutorID string `json:"executor_id"`
			} `json:"tasks"`
			Completed []struct {
				ID         string `json:"id"`
				ExecutorID string `json:"executor_id"`
			} `json:"completed_tasks"`
		} `json:"frameworks"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/state")), &state); err != nil {
		t.Fatal(err)
	}
	if len(state.Frameworks) != 1 || len(state.Frameworks[0].Executors) != 1 || len(state.Slaves) != 1 {
		t.Fatalf("/state: %+v, want one framework with one executor on one agent", state)
	}
	// Each task names the executor it ran on, as Mesos's /state does.
	tasks := append(state.Frameworks[0].Tasks, state.Frameworks[0].Completed...)
	if len(tasks) == 0 {
		t.Errorf("/state lists no task of the framework")
	}
	for _, task := range tasks {
		if task.ExecutorID != "mesos-exec" {
			t.Errorf("/state task %s has executor_id %q, want mesos-exec", task.ID, task.ExecutorID)
		}
	}
	ex := state.Frameworks[0].Executors[0]
	cmd, _ := ex["command"].(map[string]any)
	res, _ := ex["resources"].(map[string]any)
	if ex["executor_id"] != "mesos-exec" || ex["framework_id"] != state.Frameworks[0].ID || ex["slave_id"] != state.Slaves[0].ID ||
		ex["type"] != "CUSTOM" || ex["role"] != "*" || cmd["value"] != execPath || res["cpus"] != 0.2 || res["mem"] != 64.0 {
		t.Fatalf("/state executor %v", ex)
	}
	for _, call := range []string{"GET_EXECUTORS", "GET_STATE"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1", strings.NewReader(`{"type":"`+call+`"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			GetExecutors *struct {
				Executors []struct {
					ExecutorInfo struct {
						ExecutorID struct{ Value string } `json:"executor_id"`
						Type       string                 `json:"type"`
					} `json:"executor_info"`
					AgentID struct{ Value string } `json:"agent_id"`
				} `json:"executors"`
			} `json:"get_executors"`
			GetState *struct {
				GetExecutors json.RawMessage `json:"get_executors"`
			} `json:"get_state"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		if body.GetState != nil {
			if err := json.Unmarshal(body.GetState.GetExecutors, &body.GetExecutors); err != nil {
				t.Fatalf("GET_STATE get_executors: %v", err)
			}
		}
		if body.GetExecutors == nil || len(body.GetExecutors.Executors) != 1 {
			t.Fatalf("%s: %+v, want one executor", call, body)
		}
		e := body.GetExecutors.Executors[0]
		if e.ExecutorInfo.ExecutorID.Value != "mesos-exec" || e.ExecutorInfo.Type != "CUSTOM" || e.AgentID.Value != state.Slaves[0].ID {
			t.Fatalf("%s executor %+v", call, e)
		}
	}
}
