// Package shimtest starts task shims (package shim) the way an executor
// does, for tests: the shim's contract tests, which run against both of its
// implementations, and the executors' and benchmarks' tests.
//
// There are two implementations of one contract: the C corral-shim binary
// (sdk/executor/shim/cshim, which `make build` puts in bin/plugins and the
// command executor prefers) and the Go one (package shimrun), which is the
// built-in shim mode of any binary whose main calls shim.MaybeRun: the
// executor's, and a test binary whose TestMain does.
//
// It is a test helper: it fails the test on errors of its own and cleans up
// every process it started.
package shimtest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/corral-project/corral/sdk/executor/shim"
	"github.com/corral-project/corral/sdk/procfs"
)

// Impl is one implementation of the shim, as a binary to start.
type Impl struct {
	Name string // "go" or "c"
	// Bin is the binary, or, for "go", empty: the test binary itself,
	// whose TestMain must call shim.MaybeRun.
	Bin string
}

// Run runs f as a subtest for each implementation of the shim, with the
// binary to start as the shim. The C one is the corral-shim `make build`
// put in $CORRAL_BIN_DIR/plugins: the subtest is skipped when
// CORRAL_BIN_DIR is unset (a plain `go test`) and fails when it is set and
// the binary is missing (`make test` builds it).
func Run(t *testing.T, f func(t *testing.T, bin string)) {
	t.Helper()
	t.Run("go", func(t *testing.T) { f(t, Self(t)) })
	t.Run("c", func(t *testing.T) { f(t, CBinary(t)) })
}

// Self is the running test binary, as the Go shim (its TestMain calls
// shim.MaybeRun).
func Self(tb testing.TB) string {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return self
}

// CBinary is the C corral-shim in $CORRAL_BIN_DIR/plugins; it skips the
// test when CORRAL_BIN_DIR is unset and fails it when the binary is
// missing there.
func CBinary(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CORRAL_BIN_DIR")
	if dir == "" {
		tb.Skip("CORRAL_BIN_DIR is unset: the C corral-shim is tested under `make test` (make build, then CORRAL_BIN_DIR=$PWD/bin)")
	}
	bin := filepath.Join(dir, "plugins", shim.BinaryName)
	if st, err := os.Stat(bin); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		tb.Fatalf("CORRAL_BIN_DIR is set but %s is not an executable there (run `make build`): %v", bin, err)
	}
	if b, err := os.ReadFile(bin); err == nil && bytes.Contains(b, goBuildInfo) {
		tb.Skipf("%s is the Go shim: make build found no C compiler with a static libc (apt-get install gcc libc6-dev)", bin)
	}
	return bin
}

// goBuildInfo opens the build information section of every Go binary.
var goBuildInfo = []byte("\xff Go buildinf:")

// Task is a task started through a shim.
type Task struct {
	Pid  int       // the task's pid
	Shim *exec.Cmd // the shim; its ProcessState is set once ShimExited is closed
	// ShimExited is closed once the shim process has exited and been
	// reaped.
	ShimExited <-chan struct{}
	control    *os.File
}

// Start starts bin as the shim of a task in sandbox, as an executor does:
// args are the shim's arguments after shim.Arg (shim.Options.Args without
// its first element, or the bare argv), the sandbox its working directory,
// the control and status pipes its fds 3 and 4, a session of its own. It
// returns once the shim has answered on its status pipe: the task, or the
// error the shim reported (a *shim.StartError for a command that could
// not be started; the shim has then exited). A held task (-hold) waits for
// Release. Cleanup kills the task's group and the shim.
func Start(tb testing.TB, bin, sandbox string, args ...string) (*Task, error) {
	tb.Helper()
	controlR, controlW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer statusR.Close()
	cmd := exec.Command(bin, append([]string{shim.Arg}, args...)...)
	cmd.Dir = sandbox
	cmd.ExtraFiles = []*os.File{controlR, statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	startErr := cmd.Start()
	_ = controlR.Close()
	_ = statusW.Close()
	if startErr != nil {
		_ = controlW.Close()
		tb.Fatal(startErr)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	task := &Task{Shim: cmd, ShimExited: exited, control: controlW}
	tb.Cleanup(func() { _ = controlW.Close(); _ = cmd.Process.Kill(); <-exited })
	pid, err := shim.ReadStart(bufio.NewReader(statusR))
	if err != nil {
		return nil, err
	}
	task.Pid = pid
	// By cleanup the pid may name another test's process: identify it now.
	if p, err := procfs.Identify(pid); err == nil {
		tb.Cleanup(func() { _ = p.SignalGroup(syscall.SIGKILL) })
	}
	return task, nil
}

// Release lets a held task's command run: GoByte on the control pipe.
func (t *Task) Release() error {
	_, err := t.control.Write([]byte{shim.GoByte})
	_ = t.control.Close()
	return err
}

// Abort closes the control pipe without GoByte: the shim kills a held
// task before its command runs.
func (t *Task) Abort() { _ = t.control.Close() }
