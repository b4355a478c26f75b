package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/procfs"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// helperEnv, when set, turns the test binary into a workload (see
// runHelper); its value is the mode and helperArgEnv its argument.
const (
	helperEnv    = "CORRAL_CGROUPS_TEST_HELPER"
	helperArgEnv = "CORRAL_CGROUPS_TEST_HELPER_ARG"
	// testRoot holds every test parent, so a test run never touches the
	// agent's /corral tree.
	testRoot = "/corral-test"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode, os.Getenv(helperArgEnv))
		return
	}
	os.Exit(m.Run())
}

// runHelper is a workload started inside a container. It first waits for a
// line on stdin (sent once the test has isolated it), so that all it does
// is charged to the container.
func runHelper(mode, arg string) {
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	switch mode {
	case "alloc": // touch arg MiB, one page at a time, then wait
		n, _ := strconv.Atoi(arg)
		var keep [][]byte
		for range n {
			b := make([]byte, mib)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep))
		select {}
	case "fork": // try to start arg children, report how many the kernel allowed
		n, _ := strconv.Atoi(arg)
		started, failed := 0, 0
		for range n {
			if err := exec.Command("sleep", "600").Start(); err != nil {
				failed++
			} else {
				started++
			}
		}
		fmt.Println("started", started, "failed", failed)
		select {}
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
}

// needRoot skips tests that create cgroups when they cannot: the only skip.
func needRoot(t *testing.T) *Hierarchy {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("creating cgroups needs root; running as euid %d", os.Geteuid())
	}
	h, err := Detect()
	if err != nil {
		t.Fatalf("no usable cgroup hierarchy: %v", err)
	}
	return h
}

var parentSeq atomic.Int64

// testIsolatorB is testIsolator for benchmarks.
func testIsolatorB(b *testing.B) *Isolator {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skipf("creating cgroups needs root; running as euid %d", os.Geteuid())
	}
	h, err := Detect()
	if err != nil {
		b.Fatal(err)
	}
	parent := fmt.Sprintf("%s/%d-bench-%d", testRoot, os.Getpid(), parentSeq.Add(1))
	iso := New(hclog.NewNullLogger(), WithDefaultParent(parent))
	if err := iso.SetConfig(context.Background(), []byte(`{}`), "v1"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, d := range h.Dirs(parent) {
			_ = unix.Rmdir(d)
		}
		for _, d := range h.Dirs(testRoot) {
			_ = unix.Rmdir(d)
		}
	})
	return iso
}

// testIsolator returns a configured isolator whose parent is unique to the
// test, and checks when the test ends that no cgroup was left under it in
// any controller, then removes the parent.
func testIsolator(t *testing.T, configJSON string) *Isolator {
	t.Helper()
	h := needRoot(t)
	parent := fmt.Sprintf("%s/%d-%d", testRoot, os.Getpid(), parentSeq.Add(1))
	iso := New(hclog.New(&hclog.LoggerOptions{Name: "test", Output: os.Stderr, Level: hclog.Warn}), WithDefaultParent(parent))
	if err := iso.SetConfig(testCtx(t), []byte(configJSON), "v1"); err != nil {
		t.Fatalf("SetConfig(%s): %v", configJSON, err)
	}
	t.Cleanup(func() { checkNoCgroupsLeft(t, h, parent) })
	return iso
}

// checkNoCgroupsLeft fails the test if parent has a child cgroup in any
// controller, then removes them (killing what is inside) and the parent.
func checkNoCgroupsLeft(t *testing.T, h *Hierarchy, parent string) {
	t.Helper()
	left, err := h.Children(parent)
	if err != nil {
		t.Errorf("walk %s: %v", parent, err)
	}
	if len(left) > 0 {
		t.Errorf("cgroups left under %s: %v", parent, left)
		tidy := New(hclog.NewNullLogger(), WithDefaultParent(parent))
		for _, id := range left {
			if err := tidy.Cleanup(context.Background(), id); err != nil {
				t.Errorf("remove leftover %s: %v", id, err)
			}
		}
	}
	for _, d := range h.Dirs(parent) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			t.Errorf("remove parent cgroup %s: %v", d, err)
		}
	}
	// The shared root goes too once no test package uses it.
	for _, d := range h.Dirs(testRoot) {
		_ = unix.Rmdir(d)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// workload is a process started gated, then isolated into a container.
type workload struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *os.File
	exited chan struct{}
	state  *os.ProcessState
}

// start launches cmd (whose first act must be to read a line from stdin),
// isolates it into container id, then lets it go. It is killed when the test
// ends if the isolator did not kill it.
func start(t *testing.T, iso isolator.Isolator, id string, cmd *exec.Cmd) *workload {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	// Identified before it can be reaped: by cleanup its pid may name
	// another test's process.
	session, _ := procfs.Identify(cmd.Process.Pid)
	w := &workload{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out), stderr: stderr, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		w.state = cmd.ProcessState
		close(w.exited)
	}()
	t.Cleanup(func() {
		_ = session.SignalGroup(syscall.SIGKILL)
		<-w.exited
	})
	if err := iso.Isolate(testCtx(t), id, cmd.Process.Pid); err != nil {
		t.Fatalf("Isolate(%s, %d): %v", id, cmd.Process.Pid, err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatalf("release workload: %v", err)
	}
	return w
}

// helper is a command running this test binary as a workload.
func helper(mode, arg string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperArgEnv+"="+arg, "GOMAXPROCS=1")
	return cmd
}

// shell is a command running script after the gate line.
func shell(script string) *exec.Cmd {
	return exec.Command("/bin/sh", "-c", "read gate; "+script)
}

// prepare creates container id with res and registers its Cleanup.
func prepare(t *testing.T, iso isolator.Isolator, id, res string) *isolator.LaunchSpec {
	t.Helper()
	spec, err := iso.Prepare(testCtx(t), isolator.PrepareRequest{ContainerID: id, Resources: resources.MustParse(res), SandboxDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Prepare(%s, %s): %v", id, res, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := iso.Cleanup(ctx, id); err != nil {
			t.Errorf("Cleanup(%s): %v", id, err)
		}
	})
	return spec
}

func usage(t *testing.T, iso isolator.Isolator, id string) isolator.Usage {
	t.Helper()
	us, err := iso.Usage(testCtx(t), []string{id})
	if err != nil || len(us) != 1 {
		t.Fatalf("Usage(%s) = %+v, %v", id, us, err)
	}
	return us[0]
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
