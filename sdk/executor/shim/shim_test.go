package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/corral-project/corral/sdk/procfs"
)

func TestMain(m *testing.M) {
	MaybeRun()
	os.Exit(m.Run())
}

// startShim starts this test binary as the shim of argv in sandbox and
// returns the task's pid.
func startShim(t *testing.T, sandbox string, argv ...string) int {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := startShimBinary(t, self, sandbox, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// startShimBinary starts bin as the shim of argv in sandbox and returns the
// task's pid, or the error the shim reported on its status pipe.
func startShimBinary(t *testing.T, bin, sandbox string, argv ...string) (int, error) {
	t.Helper()
	controlR, controlW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{Arg}, argv...)...)
	cmd.Dir = sandbox
	cmd.ExtraFiles = []*os.File{controlR, statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = controlR.Close()
	_ = statusW.Close()
	_ = controlW.Close()
	defer statusR.Close()
	go func() { _ = cmd.Wait() }()
	pid, err := ReadStart(bufio.NewReader(statusR))
	if err != nil {
		return 0, err
	}
	task, _ := procfs.Identify(pid) // by cleanup the pid may name another test's process
	t.Cleanup(func() { _ = task.SignalGroup(syscall.SIGKILL); _ = cmd.Process.Kill() })
	return pid, nil
}

func TestShimRecordsExitAndAnswers(t *testing.T) {
	cases := []struct {
		name string
		argv []string
		kill bool
		want Status
	}{
		{"exit code", []string{"/bin/sh", "-c", "exit 5"}, false, Status{ExitCode: 5}},
		{"clean exit", []string{"/bin/true"}, false, Status{}},
		{"signalled through the shim", []string{"/bin/sleep", "600"}, true, Status{ExitCode: 128 + 15, Signal: 15}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A deep sandbox: longer than a unix socket path may be.
			sandbox := filepath.Join(t.TempDir(), "sandboxes", "framework-0123456789abcdef0123456789abcdef", "task-0123456789abcdef0123456789abcdef")
			if err := os.MkdirAll(sandbox, 0o755); err != nil {
				t.Fatal(err)
			}
			pid := startShim(t, sandbox, tc.argv...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.kill {
				if !Alive(ctx, sandbox) {
					t.Fatal("shim does not answer")
				}
				if err := Signal(ctx, sandbox, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			st, err := Wait(ctx, sandbox)
			if err != nil || st != tc.want {
				t.Fatalf("Wait = %+v, %v; want %+v", st, err, tc.want)
			}
			// The record outlives the shim.
			var rec Status
			deadline := time.Now().Add(30 * time.Second)
			for {
				if rec, err = ReadExit(sandbox); err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil || rec != tc.want {
				t.Fatalf("ReadExit = %+v, %v; want %+v", rec, err, tc.want)
			}
			if err := syscall.Kill(pid, 0); err == nil {
				t.Fatalf("task pid %d still exists after it was reported ended", pid)
			}
		})
	}
}

func TestNoShimNoRecord(t *testing.T) {
	sandbox := t.TempDir()
	if _, err := Wait(context.Background(), sandbox); err != ErrGone {
		t.Fatalf("Wait with no shim = %v, want ErrGone", err)
	}
}

// TestShimBinary runs the dedicated corral-shim binary (make build) through
// the same protocol: a start failure, several waiters, a signal.
func TestShimBinary(t *testing.T) {
	dir := os.Getenv("CORRAL_BIN_DIR")
	if dir == "" {
		t.Skip("CORRAL_BIN_DIR is unset (make build, then set it to bin/)")
	}
	bin := filepath.Join(dir, "plugins", BinaryName)
	sandbox := t.TempDir()
	// A command that cannot be started is the task's end: the shim says so
	// and records exit code 127, as shells do.
	_, err := startShimBinary(t, bin, sandbox, "/nonexistent/command")
	var se *StartError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "/nonexistent/command") {
		t.Fatalf("start of a missing command: err = %v, want a *StartError naming it", err)
	}
	if st, err := ReadExit(sandbox); err != nil || st != (Status{ExitCode: 127}) {
		t.Fatalf("recorded exit of a command that never started = %+v, %v; want exit code 127", st, err)
	}
	pid, err := startShimBinary(t, bin, sandbox, "sleep", "600") // found through PATH
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waits := make(chan Status, 3)
	for range 3 {
		go func() {
			st, err := Wait(ctx, sandbox)
			if err != nil {
				t.Error(err)
			}
			waits <- st
		}()
	}
	// A waiter that connects after the task ended reads the exit file
	// instead: both paths must give the same status.
	if !Alive(ctx, sandbox) {
		t.Fatal("shim does not answer")
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("task pid %d: %v", pid, err)
	}
	if err := Signal(ctx, sandbox, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	want := Status{ExitCode: 128 + 9, Signal: 9}
	for range 3 {
		if st := <-waits; st != want {
			t.Fatalf("Wait = %+v, want %+v", st, want)
		}
	}
}

// TestShimProtocolErrors: requests the shim does not understand get an
// "err" answer, and the task runs on.
func TestShimProtocolErrors(t *testing.T) {
	sandbox := t.TempDir()
	startShim(t, sandbox, "/bin/sleep", "600")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ line, want string }{
		{"frobnicate", `err unknown request "frobnicate"`},
		{"signal x", `err bad signal "x"`},
		{"signal -3", `err bad signal "-3"`},
	} {
		got, err := request(ctx, sandbox, tc.line)
		if err != nil || got != tc.want {
			t.Errorf("%q -> %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if !Alive(ctx, sandbox) {
		t.Fatal("shim stopped answering after bad requests")
	}
	if err := Signal(ctx, sandbox, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st, err := Wait(ctx, sandbox); err != nil || st.Signal != 15 {
		t.Fatalf("Wait = %+v, %v", st, err)
	}
}

// TestHeldTaskRunsOnlyAfterGo: with -hold the task exists (its pid is
// reported, its limits are on it) but its command has not run a single
// instruction until the executor writes GoByte; EOF instead kills it.
func TestHeldTaskRunsOnlyAfterGo(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, release := range []bool{true, false} {
		sandbox := t.TempDir()
		controlR, controlW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		statusR, statusW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		const nofile = 77
		opts := Options{Hold: true, Rlimits: []Rlimit{{Resource: syscall.RLIMIT_NOFILE, Soft: nofile, Hard: nofile}}}
		cmd := exec.Command(self, opts.Args([]string{"/bin/sh", "-c", "ulimit -n > ran"})...)
		cmd.Dir = sandbox
		cmd.ExtraFiles = []*os.File{controlR, statusW}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_ = controlR.Close()
		_ = statusW.Close()
		pid, err := ReadStart(bufio.NewReader(statusR))
		_ = statusR.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Stopped at its exec: traced, and nothing written yet.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); f[0] != "t" {
			t.Errorf("held task state %q, want t (stopped by its tracer)", f[0])
		}
		var lim syscall.Rlimit
		if err := prlimitOf(pid, syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur != nofile || lim.Max != nofile {
			t.Errorf("held task's nofile = %+v, %v; want %d", lim, err, nofile)
		}
		if _, err := os.Stat(filepath.Join(sandbox, "ran")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the held command ran before go (stat: %v)", err)
		}
		if release {
			if _, err := controlW.Write([]byte{GoByte}); err != nil {
				t.Fatal(err)
			}
		}
		_ = controlW.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := Wait(ctx, sandbox)
		cancel()
		_ = cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		out, readErr := os.ReadFile(filepath.Join(sandbox, "ran"))
		switch {
		case release && (st != Status{} || string(out) != fmt.Sprint(nofile, "\n")):
			t.Errorf("released: Wait = %+v, output %q (%v); want success printing %d", st, out, readErr, nofile)
		case !release && (st.Signal != int(syscall.SIGKILL) || readErr == nil):
			t.Errorf("not released: Wait = %+v, output %q; want SIGKILL before the command ran", st, out)
		}
	}
}

// prlimitOf reads pid's limit of resource.
func prlimitOf(pid, resource int, lim *syscall.Rlimit) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(resource), 0, uintptr(unsafe.Pointer(lim)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func TestOptionsArgs(t *testing.T) {
	args := Options{
		Rlimits:     []Rlimit{{Resource: 7, Soft: 10, Hard: ^uint64(0)}},
		CgroupProcs: []string{"/a/cgroup.procs"},
		User:        &Credential{UID: 65534, GID: 65534, Groups: []uint32{1, 2}},
		Hold:        true,
	}.Args([]string{"-x", "--"})
	want := []string{Arg, "-rlimit=7:10:-1", "-cgroup=/a/cgroup.procs", "-user=65534:65534:1,2", "-hold", "--", "-x", "--"}
	if strings.Join(args, " ") != strings.Join(want, " ") {
		t.Errorf("Args = %q, want %q", args, want)
	}
}
