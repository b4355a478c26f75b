package executor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/sdk/procfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

const helperEnv = "CORRAL_EXECUTOR_TEST_PLUGIN"

// TestHelperPlugin is not a test: run as a child of the test binary with
// helperEnv set, it is an executor plugin binary serving shell.
func TestHelperPlugin(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestServeRealProcessAndReattach")
	}
	executor.Serve(&shell{}, hclog.New(&hclog.LoggerOptions{Name: "executor.shell", Output: os.Stderr, JSONFormat: true}))
	os.Exit(0)
}

// TestServeRealProcessAndReattach runs Serve in a separate process, the way
// the agent runs executors: it launches a task through the broker, drops the
// client without killing the plugin, reattaches from the ReattachConfig
// alone (no AutoMTLS) and finds the task still running.
func TestServeRealProcessAndReattach(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPlugin$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	first := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  executor.Handshake,
		Plugins:          executor.PluginSet(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(first.Kill)
	e := dispense(t, first)

	sandbox := t.TempDir()
	req := &executor.LaunchRequest{
		ContainerID: "c1", TaskID: "t1",
		Command:    executor.Command{Shell: true, Value: "echo $X; sleep 60"},
		SandboxDir: sandbox, StdoutPath: filepath.Join(sandbox, "stdout"), StderrPath: filepath.Join(sandbox, "stderr"),
	}
	host := &hostContainers{}
	resp, err := e.Launch(ctx(t), req, host)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	// The task leads its own session and would outlive a failed test.
	if task, err := procfs.Identify(int(resp.Pid)); err == nil {
		t.Cleanup(func() { _ = task.SignalGroup(syscall.SIGKILL) })
	}
	host.mu.Lock()
	isolated := append([]int(nil), host.isolated...)
	host.mu.Unlock()
	if len(isolated) != 1 || isolated[0] != resp.Pid {
		t.Errorf("host isolated %v, task pid %d", isolated, resp.Pid)
	}

	reattach := first.ReattachConfig()
	if reattach == nil {
		t.Fatal("no reattach config")
	}
	// Drop the first client as a restarting agent would, without Kill.
	second := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  executor.Handshake,
		Plugins:          executor.PluginSet(nil),
		Reattach:         reattach,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(second.Kill)
	e2 := dispense(t, second)
	v, err := e2.Version(ctx(t))
	if err != nil {
		t.Fatalf("Version after reattach: %v", err)
	}
	if v.Tasks != 1 {
		t.Errorf("Version().Tasks = %d after reattach, want the 1 task launched before", v.Tasks)
	}
	// The task writes its environment before it sleeps; on a loaded machine
	// that can take a while, and a shutdown first would leave no output.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, _ := os.ReadFile(req.StdoutPath); strings.TrimSpace(string(out)) == "y" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e2.Shutdown(ctx(t), req.TaskID, 100*time.Millisecond); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	res, err := e2.Wait(ctx(t), req.TaskID)
	if err != nil || res.Signal == 0 {
		t.Fatalf("Wait = %+v, %v; want death by signal", res, err)
	}
	out, _ := os.ReadFile(req.StdoutPath)
	if strings.TrimSpace(string(out)) != "y" {
		t.Errorf("stdout = %q, want the host's launch spec environment (X=y)", out)
	}
}

func dispense(t *testing.T, c *plugin.Client) executor.Executor {
	t.Helper()
	rpc, err := c.Client()
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	raw, err := rpc.Dispense(executor.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	return raw.(executor.Executor)
}
