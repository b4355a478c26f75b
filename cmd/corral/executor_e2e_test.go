package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/examples/ntasks"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/scheduler"
)

// execTestConfig is a dev cluster config with a short executor idle
// timeout, so that idle executors are shut down within a test.
func execTestConfig(t *testing.T, idle string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corral.hcl")
	body := "agent {\n  executor_idle_timeout = \"" + idle + "\"\n  resources = \"cpus:4;mem:4096\"\n}\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func scalarRes(cpus, mem float64) []*corralpb.Resource {
	return []*corralpb.Resource{
		{Name: "cpus", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: cpus}},
		{Name: "mem", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: mem}},
	}
}

var execPidRe = regexp.MustCompile(`executor pid=(\d+)`)

// TestCustomExecutorRunsManyTasks runs the ntasks example in its custom
// executor mode: 20 tasks of one framework on sdk/examples/customexec, all
// in one executor process (every update names the executor's pid).
func TestCustomExecutorRunsManyTasks(t *testing.T) {
	addr, _ := startDev(t, "-config", execTestConfig(t, "60s"))
	var mu sync.Mutex
	pids := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := ntasks.Run(ctx, ntasks.Config{
		Master: addr, Name: "spark", Tasks: 20, Command: "sleep 0.2; echo ran $CORRAL_TASK_ID", CPUs: 0.1, Mem: 16,
		Executor: &corralpb.ExecutorInfo{
			ExecutorId: "spark-exec", Name: "spark executor",
			Command:   &corralpb.CommandInfo{Value: filepath.Join(binDir(t), "customexec")},
			Resources: scalarRes(0.2, 64),
		},
		Logger: hclog.NewNullLogger(),
		OnUpdate: func(st *corralpb.TaskStatus) {
			if m := execPidRe.FindStringSubmatch(st.GetMessage()); m != nil {
				mu.Lock()
				pids[m[1]] = true
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatalf("ntasks: %v (result %+v)", err, res)
	}
	if res.Finished != 20 {
		t.Fatalf("finished %d of 20: %+v", res.Finished, res.Statuses)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pids) != 1 {
		t.Fatalf("tasks ran in %d executor processes (%v), want 1", len(pids), pids)
	}
}

// TestMesosFrameworkWithCustomExecutor runs sdk/examples/mesosfw (no
// corral imports) with 20 command tasks and 20 tasks on
// sdk/examples/mesosexec, a custom executor written only against the Mesos
// v1 executor API (no corral imports either), fetched into the sandbox from
// its path; in JSON, then in protobuf. The framework pings its executor
// and waits for the answer: framework messages both ways.
func TestMesosFrameworkWithCustomExecutor(t *testing.T) {
	addr, _ := startDev(t, "-config", execTestConfig(t, "60s"))
	for _, enc := range []string{"json", "protobuf"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "mesosfw"), "-master", addr, "-tasks", "20",
			"-executor", filepath.Join(binDir(t), "mesosexec"), "-executor-tasks", "20", "-encoding", enc, "-timeout", "4m")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "20 tasks finished") ||
			!strings.Contains(string(out), "20 executor tasks finished; executor answered \"pong:") {
			t.Fatalf("mesosfw -encoding %s: %v\n%s", enc, err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))
	}
}

// idleSched launches one task on customexec, pings the executor, and then
// watches offers until the whole agent is offered again.
type idleSched struct {
	t        *testing.T
	execPath string
	launched bool
	events   chan string // "pong:...", "failure", "full-offer"
	failed   bool
}

func (s *idleSched) Subscribed(context.Context, scheduler.Driver, string, bool) {}
func (s *idleSched) Rescinded(context.Context, scheduler.Driver, string)        {}
func (s *idleSched) Error(_ context.Context, _ scheduler.Driver, msg string) {
	s.events <- "error: " + msg
}

func (s *idleSched) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	for _, o := range offers {
		cpus, mem := 0.0, 0.0
		for _, r := range o.GetResources() {
			switch r.GetName() {
			case "cpus":
				cpus += r.GetScalar()
			case "mem":
				mem += r.GetScalar()
			}
		}
		if !s.launched && cpus >= 1 && mem >= 512 {
			s.launched = true
			task := &corralpb.TaskInfo{TaskId: "one", AgentId: o.GetAgentId(), Resources: scalarRes(0.1, 16),
				Command: &corralpb.CommandInfo{Shell: true, Value: "true"},
				Executor: &corralpb.ExecutorInfo{ExecutorId: "idle-exec", Command: &corralpb.CommandInfo{Value: s.execPath},
					Resources: scalarRes(0.5, 256)}}
			if err := d.Launch(ctx, []string{o.GetId()}, []*corralpb.TaskInfo{task}, &corralpb.Filters{RefuseSeconds: proto.Float64(0.2)}); err != nil {
				s.events <- "error: launch: " + err.Error()
			}
			continue
		}
		if s.failed && cpus >= 4 && mem >= 4096 {
			s.events <- "full-offer"
		}
		_ = d.Decline(ctx, []string{o.GetId()}, &corralpb.Filters{RefuseSeconds: proto.Float64(0.2)})
	}
}

func (s *idleSched) Update(ctx context.Context, d scheduler.Driver, st *corralpb.TaskStatus) {
	if st.GetState() == corralpb.TaskState_TASK_RUNNING {
		if err := d.Message(ctx, st.GetAgentId(), st.GetTaskId(), []byte("ping:idle")); err != nil {
			s.events <- "error: message: " + err.Error()
		}
	}
}

func (s *idleSched) Message(_ context.Context, _ scheduler.Driver, _, _ string, data []byte) {
	s.events <- string(data)
}

func (s *idleSched) Failure(_ context.Context, _ scheduler.Driver, _, message string) {
	s.failed = true
	s.events <- "failure: " + message
}

// TestCustomExecutorIdleShutdownFreesResources: a custom executor whose
// only task ended is shut down after the agent's executor_idle_timeout; the
// framework hears of it (a failure naming the executor) and the executor's
// resources are offered again (an offer of the whole agent). On the way, a
// framework message reaches the executor and its answer comes back.
func TestCustomExecutorIdleShutdownFreesResources(t *testing.T) {
	addr, _ := startDev(t, "-config", execTestConfig(t, "2s"))
	s := &idleSched{t: t, execPath: filepath.Join(binDir(t), "customexec"), events: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() {
		runDone <- scheduler.Run(ctx, scheduler.Config{Master: addr, Framework: &corralpb.FrameworkInfo{Name: "idle", Roles: []string{"*"}},
			Logger: hclog.NewNullLogger()}, s)
	}()
	var pong, failure bool
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case ev := <-s.events:
			switch {
			case strings.HasPrefix(ev, "pong:idle pid="):
				pong = true
			case strings.HasPrefix(ev, "failure: ") && strings.Contains(ev, "idle-exec"):
				failure = true
			case ev == "full-offer":
				if !pong || !failure {
					t.Fatalf("whole agent offered again before pong=%v failure=%v", pong, failure)
				}
				cancel()
				<-runDone
				return
			case strings.HasPrefix(ev, "error: "):
				t.Fatal(ev)
			}
		case <-deadline:
			t.Fatalf("timed out: pong=%v executor failure=%v, whole agent not offered again", pong, failure)
		}
	}
}

// TestCustomExecutorSurvivesAgentKill9: an agent is killed with SIGKILL
// while its custom executor runs five tasks; a restarted agent reconnects
// to the live executor (it re-subscribes on its socket) and the tasks
// finish, all in the same executor process, with nothing reported lost.
func TestCustomExecutorSurvivesAgentKill9(t *testing.T) {
	m := startCorral(t, "master", "-master", "127.0.0.1:0", "-work-dir", t.TempDir())
	addr := m.waitLine(masterLine)
	work := t.TempDir()
	cfg := execTestConfig(t, "60s")
	agentArgs := []string{"agent", "-config", cfg, "-on-shutdown", "kill", "-master", addr, "-address", "127.0.0.1:0", "-work-dir", work}
	ag := startCorral(t, agentArgs...)
	ag.waitLine(agentLine)
	waitState(t, addr, "agent registered", func(s master.State) bool { return len(s.Agents) == 1 && s.Agents[0].Connected })

	marker := filepath.Join(t.TempDir(), "go")
	var mu sync.Mutex
	pids := map[string]bool{}
	var states []string
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	type outcome struct {
		res ntasks.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := ntasks.Run(ctx, ntasks.Config{
			Master: addr, Name: "survivor", Tasks: 5, CPUs: 0.1, Mem: 16,
			Command: "while [ ! -e " + marker + " ]; do sleep 0.1; done",
			Executor: &corralpb.ExecutorInfo{ExecutorId: "survivor-exec",
				Command: &corralpb.CommandInfo{Value: filepath.Join(binDir(t), "customexec")}, Resources: scalarRes(0.2, 64)},
			Logger: hclog.NewNullLogger(),
			OnUpdate: func(st *corralpb.TaskStatus) {
				mu.Lock()
				defer mu.Unlock()
				states = append(states, st.GetTaskId()+":"+st.GetState().String())
				if m := execPidRe.FindStringSubmatch(st.GetMessage()); m != nil {
					pids[m[1]] = true
				}
			},
		})
		done <- outcome{res, err}
	}()
	waitState(t, addr, "five running tasks", func(s master.State) bool {
		n := 0
		for _, f := range s.Frameworks {
			for _, tk := range f.Tasks {
				if tk.State == "TASK_RUNNING" {
					n++
				}
			}
		}
		return n == 5
	})
	if err := syscall.Kill(ag.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-ag.done
	ag2 := startCorral(t, agentArgs...)
	ag2.waitLine(regexp.MustCompile(`(executor subscribed)`))
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := <-done
	mu.Lock()
	defer mu.Unlock()
	if out.err != nil || out.res.Finished != 5 {
		t.Fatalf("ntasks: %v, finished %d of 5; updates %v", out.err, out.res.Finished, states)
	}
	if len(pids) != 1 {
		t.Fatalf("tasks ran in %d executor processes (%v), want the one that survived the agent", len(pids), pids)
	}
	for _, s := range states {
		if strings.Contains(s, "LOST") || strings.Contains(s, "FAILED") {
			t.Fatalf("a task was reported %s across the agent restart; updates %v", s, states)
		}
	}
}
