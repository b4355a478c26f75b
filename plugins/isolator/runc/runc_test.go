package runc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/base/basetest"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/pluginapi/isolator/contracttest"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-hclog"
)

// TestNamespacesAndRootfs runs a shell in the busybox rootfs: it sees only
// its own processes, the rootfs's files rather than the host's, the
// task's hostname, and the sandbox at /mnt/sandbox, where its stdout lands.
func TestNamespacesAndRootfs(t *testing.T) {
	e := testEnv(t, "")
	hostHostname, _ := os.ReadFile("/etc/hostname")
	tk := e.start(t, "ns", isolator.PrepareRequest{Hostname: "ns-task", Resources: resources.MustParse("cpus:0.5;mem:64")},
		"/bin/sh", "-c", `echo "pid1=$(cat /proc/1/comm)"; echo "procs=$(ps -o pid= | wc -l)"; ps -o pid,comm; `+
			`echo "hostname=$(hostname)"; echo "etc_hostname=$(cat /etc/hostname)"; echo "pwd=$(pwd)"; `+
			`echo inside > /mnt/sandbox/marker; echo "home=$HOME"; test -e /usr/bin/go && echo host-files-visible; exit 3`)
	ws := tk.wait(t)
	out, errOut := tk.read(t, "stdout"), tk.read(t, "stderr")
	t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	if ws.ExitStatus() != 3 {
		t.Errorf("exit status %v, want 3 (the command's)", ws)
	}
	for _, want := range []string{"pid1=sh\n", "hostname=ns-task\n", "etc_hostname=busybox-rootfs\n", "pwd=/mnt/sandbox\n", "home=/mnt/sandbox\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	// ps sees the task's shell (pid 1) and itself, none of the host's.
	_, listing, _ := strings.Cut(out, "PID   COMMAND\n")
	listing, _, _ = strings.Cut(listing, "hostname=")
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		if f := strings.Fields(line); len(f) != 2 || (f[1] != "sh" && f[1] != "ps") {
			t.Errorf("ps inside the container lists %q: not the task's", line)
		}
	}
	if strings.Contains(out, "host-files-visible") {
		t.Error("the host's /usr/bin/go is visible inside the container")
	}
	if len(hostHostname) > 0 && strings.Contains(out, "etc_hostname="+strings.TrimSpace(string(hostHostname))+"\n") {
		t.Error("the host's /etc/hostname is visible inside the container")
	}
	if b, err := os.ReadFile(tk.sandbox + "/marker"); err != nil || string(b) != "inside\n" {
		t.Errorf("sandbox marker = %q, %v: the sandbox is not /mnt/sandbox", b, err)
	}
}

// TestMemoryLimitOOM: a container allocating past its mem is OOM-killed
// inside its limit, the starter dies of the same SIGKILL, and the cgroup
// keeps the OOM count for the agent to read after the exit.
func TestMemoryLimitOOM(t *testing.T) {
	e := testEnv(t, "")
	tk := e.start(t, "hog", isolator.PrepareRequest{Resources: resources.MustParse("cpus:0.5;mem:32")},
		"/bin/sh", "-c", `x=$(head -c 200000000 /dev/zero | tr '\0' a); echo survived ${#x}`)
	ws := tk.wait(t)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("wait status %v, want killed by SIGKILL (the OOM killer's)", ws)
	}
	u, err := e.iso.Usage(testCtx(t), []string{"hog"})
	if err != nil || len(u) != 1 || !u[0].Found {
		t.Fatalf("Usage after the OOM = %+v, %v", u, err)
	}
	if u[0].OOMKills == 0 || u[0].MemLimitBytes != 32<<20 || u[0].MemPeakBytes < 30<<20 {
		t.Errorf("usage %+v: want OOM kills, a 32 MiB limit and a peak near it", u[0])
	}
	if strings.Contains(tk.read(t, "stdout"), "survived") {
		t.Error("the hog survived its limit")
	}
	if err := e.iso.Cleanup(testCtx(t), "hog"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
}

// TestCleanupLeavesNothing: Cleanup of a running container (a shell with
// children, as a forking task) ends every process of it and the starter,
// and leaves no cgroup in any controller, no mount and no state behind
// (the mounts and cgroups are checked by testEnv's cleanup).
func TestCleanupLeavesNothing(t *testing.T) {
	e := testEnv(t, "")
	tk := e.start(t, "busy", isolator.PrepareRequest{Resources: resources.MustParse("cpus:0.1;mem:64")},
		"/bin/sh", "-c", `sleep 600 & sleep 600 & sleep 600 & wait`)
	var u []isolator.Usage
	waitFor(t, "four processes in the container", time.Minute, func() bool {
		var err error
		u, err = e.iso.Usage(testCtx(t), []string{"busy"})
		return err == nil && len(u) == 1 && u[0].Processes == 4
	})
	pids, err := os.ReadFile(filepath.Join(allControllerDirs(e.parent + "/busy")[0], "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.iso.Cleanup(testCtx(t), "busy"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	ws := tk.wait(t)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("starter wait status %v, want the container init's SIGKILL", ws)
	}
	for _, p := range strings.Fields(string(pids)) {
		if _, err := os.Stat("/proc/" + p); err == nil {
			t.Errorf("process %s of the container still exists after Cleanup", p)
		}
	}
	if _, err := os.Stat(e.iso.ContainerDir("busy")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s still exists after Cleanup: %v", e.iso.ContainerDir("busy"), err)
	}
	if left := leftCgroups(e.parent); len(left) > 0 {
		t.Errorf("cgroups left after Cleanup: %v", left)
	}
}

// TestSignalForwarded: the executor's SIGTERM reaches the task through the
// starter, and a task that handles it ends on its own terms.
func TestSignalForwarded(t *testing.T) {
	e := testEnv(t, "")
	tk := e.start(t, "term", isolator.PrepareRequest{Resources: resources.MustParse("cpus:0.1;mem:64")},
		"/bin/sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done`)
	waitFor(t, "the task ready", time.Minute, func() bool { return strings.Contains(tk.read(t, "stdout"), "ready") })
	if err := syscall.Kill(-tk.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := tk.wait(t); ws.ExitStatus() != 7 {
		t.Errorf("wait status %v, want exit 7 from the task's TERM trap", ws)
	}
	if !strings.Contains(tk.read(t, "stdout"), "got TERM") {
		t.Error("the task did not get SIGTERM")
	}
}

// TestRecoverFindsOrphans: a container the agent does not know (a crash
// between Prepare and its checkpoint) is an orphan; Cleanup destroys it.
func TestRecoverFindsOrphans(t *testing.T) {
	e := testEnv(t, "")
	run := []string{"/bin/sh", "-c", "echo started; exec sleep 600"}
	known := e.start(t, "known", isolator.PrepareRequest{Resources: resources.MustParse("cpus:0.1;mem:64")}, run...)
	orphan := e.start(t, "orphan", isolator.PrepareRequest{Resources: resources.MustParse("cpus:0.1;mem:64")}, run...)
	waitFor(t, "both containers running their command", time.Minute, func() bool {
		return strings.Contains(known.read(t, "stdout"), "started") && strings.Contains(orphan.read(t, "stdout"), "started")
	})
	// A new plugin process: nothing in memory.
	fresh := New(hclog.NewNullLogger(), WithDefaults(strings.TrimSuffix(e.parent, "/agent-1")+"/{agent_id}",
		filepath.Dir(e.iso.stateDir())+"/{agent_id}", e.starter))
	if err := fresh.SetConfig(testCtx(t), []byte(`{}`), "v1"); err != nil {
		t.Fatal(err)
	}
	orphans, err := fresh.Recover(testCtx(t), "agent-1", []isolator.ContainerState{{ContainerID: "known", Resources: resources.MustParse("cpus:0.1;mem:64")}})
	if err != nil || len(orphans) != 1 || orphans[0] != "orphan" {
		t.Fatalf("Recover = %v, %v; want [orphan]", orphans, err)
	}
	if err := fresh.Cleanup(testCtx(t), "orphan"); err != nil {
		t.Fatalf("Cleanup orphan: %v", err)
	}
	orphan.wait(t)
	if u, err := fresh.Usage(testCtx(t), []string{"known"}); err != nil || !u[0].Found || u[0].Processes != 1 {
		t.Errorf("the known container after Recover: %+v, %v", u, err)
	}
	if err := fresh.Cleanup(testCtx(t), "known"); err != nil {
		t.Fatalf("Cleanup known: %v", err)
	}
	known.wait(t)
}

// TestPrepareRefusals: what the isolator cannot run is refused with an
// error naming the problem, and leaves nothing behind.
func TestPrepareRefusals(t *testing.T) {
	e := testEnv(t, "")
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	badBundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(badBundle, "config.json"), []byte(`{"root": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  isolator.PrepareRequest
		want string
	}{
		{"no rootfs", isolator.PrepareRequest{Rootfs: ""}, "needs a root filesystem"},
		{"relative", isolator.PrepareRequest{Rootfs: "rootfs"}, "absolute path"},
		{"missing", isolator.PrepareRequest{Rootfs: "/nonexistent/rootfs"}, "no such file"},
		{"not a dir", isolator.PrepareRequest{Rootfs: notDir}, "not a directory"},
		{"bundle without root", isolator.PrepareRequest{Rootfs: badBundle}, "no root.path"},
		{"unknown user", isolator.PrepareRequest{Rootfs: e.rootfs, User: "alice"}, `task user "alice"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.ContainerID, tc.req.AgentID, tc.req.SandboxDir = "refused", "agent-1", t.TempDir()
			tc.req.Resources = resources.MustParse("cpus:0.1;mem:16")
			_, err := e.iso.Prepare(testCtx(t), tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(e.iso.ContainerDir("refused")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused container left its state dir: %v", err)
			}
		})
	}
}

// TestOCIBundle runs a task from an OCI bundle: config.json's root.path
// (relative to the bundle) is the filesystem and its environment is kept
// under the task's.
func TestOCIBundle(t *testing.T) {
	e := testEnv(t, "")
	b := t.TempDir()
	if out, err := exec.Command("cp", "-a", e.rootfs, filepath.Join(b, "rootfs")).CombinedOutput(); err != nil {
		t.Fatalf("copy the rootfs into a bundle: %v\n%s", err, out)
	}
	cfg := `{"ociVersion": "1.2.0", "root": {"path": "rootfs", "readonly": true},
		"process": {"cwd": "/", "args": ["sh"], "env": ["PATH=/bin:/usr/bin", "FROM_IMAGE=yes"]}}`
	if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tk := e.start(t, "bundle", isolator.PrepareRequest{Rootfs: b, Resources: resources.MustParse("cpus:0.1;mem:64")},
		"sh", "-c", `echo "image=$FROM_IMAGE task=$CORRAL_TASK_ID"; touch /rootfs-write 2>/dev/null && echo writable`)
	if ws := tk.wait(t); ws.ExitStatus() != 1 {
		t.Errorf("wait status %v, want 1 (the read-only root refuses the write)", ws)
	}
	if out := tk.read(t, "stdout"); !strings.Contains(out, "image=yes task=bundle") || strings.Contains(out, "writable") {
		t.Errorf("stdout %q: want the image's and the task's variables and a read-only root", out)
	}
}

// TestHostname makes valid hostnames of task IDs.
func TestHostname(t *testing.T) {
	for _, tc := range []struct{ name, id, want string }{
		{"web-1", "c", "web-1"},
		{"", "c1", "c1"},
		{"my_task/ü", "c", "my-task"},
		{"---", "c", "container"},
		{strings.Repeat("a", 70), "c", strings.Repeat("a", 64)},
	} {
		if got := Hostname(tc.name, tc.id); got != tc.want {
			t.Errorf("Hostname(%q, %q) = %q, want %q", tc.name, tc.id, got, tc.want)
		}
	}
}

// TestBase runs the checks every plugin passes (info, schema, config,
// API version negotiation), directly and over gRPC. The isolator's
// container checks are the tests above: the shared contract suite moves a
// pid into the container with Isolate, which a wrapper isolator does not.
func TestBase(t *testing.T) {
	needRoot(t)
	starter := plugintest.Binary(t, StarterName, "github.com/corral-project/corral/plugins/isolator/runc/start/cmd")
	newImpl := func(t *testing.T) isolator.Isolator {
		return New(hclog.NewNullLogger(), WithDefaults(fmt.Sprintf("%s/runc-base-%d/{agent_id}", testRoot, os.Getpid()),
			t.TempDir()+"/{agent_id}", starter))
	}
	basetest.Run(t, base.KindIsolator, isolator.APIVersions, newImpl)
	t.Run("over gRPC", func(t *testing.T) {
		basetest.Run(t, base.KindIsolator, isolator.APIVersions, func(t *testing.T) isolator.Isolator {
			return contracttest.InProcess(t, newImpl(t))
		})
	})
}
