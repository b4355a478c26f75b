package command

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/plugins/isolator/process/posix"
	"github.com/corral-project/corral/sdk/procfs"
)

// TestRealBinary starts the built executor through go-plugin, as the agent
// does, and runs a task whose nofile limit comes from the real process
// isolator: the binary must re-execute itself as the launcher to apply it.
func TestRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin binary")
	}
	inst := plugintest.Start(t, base.KindExecutor, plugintest.Binary(t, "corral-executor-command", "./cmd"))
	e := inst.Raw.(executor.Executor)
	ctx := testCtx(t)

	if info, err := e.PluginInfo(ctx); err != nil || info.Name != Name || info.Kind != "executor" {
		t.Fatalf("PluginInfo = %+v, %v", info, err)
	}
	if err := e.SetConfig(ctx, []byte(`{"default_grace": "1s"}`), executor.APIVersions[0]); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	cs := newContainers(t, `{"rlimits": {"nofile": "123"}}`)
	req := request(t, executor.Command{Shell: true, Value: `ulimit -n; exec sleep 60`})
	resp, err := e.Launch(ctx, req, cs)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if task, err := procfs.Identify(int(resp.Pid)); err == nil { // by cleanup the pid may name another test's process
		t.Cleanup(func() { _ = task.SignalGroup(syscall.SIGKILL) })
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(req.StdoutPath)
		if len(b) > 0 {
			if string(b) != "123\n" {
				t.Fatalf("task saw nofile %q, want 123", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task printed nothing in 10s (stderr %q)", readFile(t, req.StderrPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The task's process is the launcher's: same pid, now running sleep,
	// in its own session, and known to the isolator.
	// The shell prints before it execs sleep: wait for the exec.
	for {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(resp.Pid) + "/comm")
		if err == nil && strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d runs %q (%v), want sleep", resp.Pid, comm, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, err := posix.ReadStat(resp.Pid); err != nil || st.Session != resp.Pid || st.StartTicks != resp.StartTicks {
		t.Errorf("task stat = %+v, %v; want its own session and start ticks %d", st, err, resp.StartTicks)
	}
	if u, err := cs.iso.Usage(ctx, []string{req.ContainerID}); err != nil || !u[0].Found || u[0].Processes != 1 {
		t.Errorf("isolator Usage = %+v, %v; want the task found", u, err)
	}
	if v, err := e.Version(ctx); err != nil || v.Tasks != 1 || v.Version != Version {
		t.Errorf("Version = %+v, %v; want 1 task", v, err)
	}
	// Just after the exec the new image may not have faulted in a page
	// yet: wait for resident memory rather than read it once.
	for {
		st, err := e.Stats(ctx, "t1")
		if err == nil && st.MemRSSBytes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats = %+v, %v; want resident memory", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.Signal(ctx, "t1", syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	res, err := e.Wait(ctx, "t1")
	if err != nil || res.Signal != int(syscall.SIGTERM) {
		t.Fatalf("Wait = %+v, %v; want death by SIGTERM", res, err)
	}
	if again, err := e.Wait(ctx, "t1"); err != nil || *again != *res {
		t.Errorf("second Wait = %+v, %v; want %+v", again, err, *res)
	}
	if _, err := e.Launch(ctx, req, cs); err == nil {
		t.Error("second Launch on one executor succeeded")
	}

	inst.Kill()
	if !inst.Exited() {
		t.Error("executor process still running after Kill")
	}
}
