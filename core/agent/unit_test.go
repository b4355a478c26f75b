package agent

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:5051", "http://127.0.0.1:5051"},
		{"0.0.0.0:4000", "http://node7:4000"},
		{"[::]:4000", "http://node7:4000"},
		{"[::1]:4000", "http://[::1]:4000"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := baseURL("http", addr, "node7"); got != tc.want {
			t.Errorf("baseURL(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

func TestAgentIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent_id")
	if id, err := loadID(path); err != nil || id != "" {
		t.Fatalf("missing file: %q, %v", id, err)
	}
	if err := storeID(path, "a-1"); err != nil {
		t.Fatal(err)
	}
	if err := storeID(path, "a-2"); err != nil {
		t.Fatal(err)
	}
	if id, err := loadID(path); err != nil || id != "a-2" {
		t.Fatalf("got %q, %v; want a-2", id, err)
	}
	// A file that does not hold an ID is refused, naming the file.
	for _, bad := range []string{"not an id; rm -rf /", "../../etc", "-flag", strings.Repeat("x", 200), "a\x00b"} {
		if err := os.WriteFile(path, []byte(bad+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if id, err := loadID(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not hold an agent ID") {
			t.Errorf("agent_id %q: got %q, %v; want an error naming %s", bad, id, err, path)
		}
	}
}

// TestWorkDirLock: a second agent on the same work dir is refused with a
// message naming the holder; the lock goes with its holder.
func TestWorkDirLock(t *testing.T) {
	dir := t.TempDir()
	release, err := lockWorkDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockWorkDir(dir)
	if err == nil || !strings.Contains(err.Error(), "is in use by the agent with pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v, want an error naming this pid", err)
	}
	release()
	again, err := lockWorkDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

func TestTaskEnvAndGrace(t *testing.T) {
	a := &Agent{cfg: Config{ExecutorShutdownGrace: 7 * time.Second, Hostname: "h1"}, id: "ag", url: "http://10.0.0.1:5051"}
	tk := &task{key: taskKey{"fw", "t"}, info: &corralpb.TaskInfo{Name: "web"}, containerID: "c1",
		framework: &corralpb.FrameworkInfo{Name: "marathon"}}
	res := resources.MustParse("cpus:1.5;mem:256;ports:[100-101,200-200]")
	env := a.taskEnv(tk, res, "/sb")
	want := map[string]string{
		"CORRAL_TASK_ID": "t", "CORRAL_FRAMEWORK_ID": "fw", "CORRAL_AGENT_ID": "ag", "CORRAL_SANDBOX": "/sb",
		"CORRAL_DIRECTORY": "/sb", "CORRAL_CONTAINER_ID": "c1", "CORRAL_EXECUTOR_ID": "t", "CORRAL_CHECKPOINT": "1",
		"CORRAL_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "7s", "CORRAL_TASK_NAME": "web", "CORRAL_FRAMEWORK_NAME": "marathon",
		"CORRAL_AGENT_HOSTNAME": "h1", "CORRAL_AGENT_ENDPOINT": "10.0.0.1:5051", "CORRAL_CPUS": "1.5", "CORRAL_MEM_MB": "256",
		"PORT0": "100", "PORT1": "101", "PORT2": "200", "PORTS": "100,101,200",
	}
	if len(env) != len(want) {
		t.Fatalf("env %v, want %v", env, want)
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := a.taskEnv(tk, resources.MustParse("cpus:1"), "/sb")["PORTS"]; ok {
		t.Error("PORTS set for a task without ports")
	}

	for _, tc := range []struct {
		task, requested float64
		want            time.Duration
	}{
		{0, 0, 7 * time.Second},
		{0, 2, 2 * time.Second},
		{1.5, 2, 1500 * time.Millisecond},
	} {
		tk.info.KillGraceSeconds = tc.task
		if got := a.graceFor(tk, time.Duration(tc.requested*float64(time.Second))); got != tc.want {
			t.Errorf("graceFor(task %v, kill %v) = %v, want %v", tc.task, tc.requested, got, tc.want)
		}
	}
}
