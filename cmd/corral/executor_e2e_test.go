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
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/sdk/examples/ntasks"
	corralpb "github.com/corral-project/corral/sdk/proto"
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
