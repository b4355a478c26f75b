package shim_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/corral-project/corral/sdk/executor/shim"
	"github.com/corral-project/corral/sdk/executor/shim/shimtest"
)

// TestMain makes this test binary the Go shim (shimtest.Run's "go").
func TestMain(m *testing.M) {
	shim.MaybeRun()
	os.Exit(m.Run())
}

// startShim starts bin as the shim of argv (no options) in sandbox and
// returns the task's pid.
func startShim(t *testing.T, bin, sandbox string, argv ...string) int {
	t.Helper()
	task, err := shimtest.Start(t, bin, sandbox, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return task.Pid
}

func TestShimRecordsExitAndAnswers(t *testing.T) {
	cases := []struct {
		name string
		argv []string
		kill bool
		want shim.Status
	}{
		{"exit code", []string{"/bin/sh", "-c", "exit 5"}, false, shim.Status{ExitCode: 5}},
		{"clean exit", []string{"/bin/true"}, false, shim.Status{}},
		{"signalled through the shim", []string{"/bin/sleep", "600"}, true, shim.Status{ExitCode: 128 + 15, Signal: 15}},
	}
	shimtest.Run(t, func(t *testing.T, bin string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				// A deep sandbox: longer than a unix socket path may be.
				sandbox := filepath.Join(t.TempDir(), "sandboxes", "framework-0123456789abcdef0123456789abcdef", "task-0123456789abcdef0123456789abcdef")
				if err := os.MkdirAll(sandbox, 0o755); err != nil {
					t.Fatal(err)
				}
				pid := startShim(t, bin, sandbox, tc.argv...)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if tc.kill {
					if !shim.Alive(ctx, sandbox) {
						t.Fatal("shim does not answer")
					}
					if err := shim.Signal(ctx, sandbox, syscall.SIGTERM); err != nil {
						t.Fatal(err)
					}
				}
				st, err := shim.Wait(ctx, sandbox)
				if err != nil || st != tc.want {
					t.Fatalf("Wait = %+v, %v; want %+v", st, err, tc.want)
				}
				// The record outlives the shim.
				var rec shim.Status
				deadline := time.Now().Add(30 * time.Second)
				for {
					if rec, err = shim.ReadExit(sandbox); err == nil || time.Now().After(deadline) {
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
	})
}

func TestNoShimNoRecord(t *testing.T) {
	sandbox := t.TempDir()
	if _, err := shim.Wait(context.Background(), sandbox); err != shim.ErrGone {
		t.Fatalf("Wait with no shim = %v, want ErrGone", err)
	}
}

// TestShimStartFailures: what a shim says when the task cannot be started
// (a *StartError, exit code 127 recorded: the task's end) or when its own
// arguments are wrong (an error, nothing recorded), word for word the same
// from both implementations.
func TestShimStartFailures(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		start bool // a *StartError (else the shim's own error)
		want  string
	}{
		{"missing path", []string{"/nonexistent/command"}, true, "exec /nonexistent/command: no such file or directory"},
		{"not in PATH", []string{"corral-no-such-command"}, true, `exec: "corral-no-such-command": executable file not found in $PATH`},
		{"not executable", []string{"-hold", "--", "/etc/passwd"}, true, "exec /etc/passwd: permission denied"},
		{"missing cgroup", []string{"-cgroup=/nonexistent/cgroup.procs", "--", "/bin/true"}, true,
			"join cgroup: open /nonexistent/cgroup.procs: no such file or directory"},
		{"soft above hard", []string{"-rlimit=7:10:5", "--", "/bin/true"}, true, "setrlimit 7 to 10:5: invalid argument"},
		{"unknown option", []string{"-bogus", "--", "/bin/true"}, false, "shim: option -bogus: invalid argument"},
		{"bad rlimit", []string{"-rlimit=7:1", "--", "/bin/true"}, false, "shim: option -rlimit=7:1: invalid argument"},
		{"bad user", []string{"-user=x:1", "--", "/bin/true"}, false, "shim: option -user=x:1: invalid argument"},
		{"empty cgroup", []string{"-cgroup=", "--", "/bin/true"}, false, "shim: option -cgroup=: invalid argument"},
		{"no argv separator", []string{"-hold"}, false, `shim: options : no "--" before the task's argv`},
		{"no argv", []string{"-hold", "--"}, false, "shim: invalid argument"},
	}
	shimtest.Run(t, func(t *testing.T, bin string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				sandbox := t.TempDir()
				_, err := shimtest.Start(t, bin, sandbox, tc.args...)
				var se *shim.StartError
				if err == nil || errors.As(err, &se) != tc.start || err.Error() != tc.want {
					t.Fatalf("start error = %#v; want %q (a StartError: %v)", err, tc.want, tc.start)
				}
				rec, recErr := shim.ReadExit(sandbox)
				switch {
				case tc.start && (recErr != nil || rec != shim.Status{ExitCode: 127}):
					t.Errorf("recorded exit = %+v, %v; want exit code 127", rec, recErr)
				case !tc.start && !errors.Is(recErr, shim.ErrGone):
					t.Errorf("recorded exit = %+v, %v; want none (the shim failed, not the task)", rec, recErr)
				}
			})
		}
	})
}

// TestShimWaiters: every client waiting when the task ends is answered over
// the socket, and a later one reads the same status from the record.
func TestShimWaiters(t *testing.T) {
	shimtest.Run(t, func(t *testing.T, bin string) {
		sandbox := t.TempDir()
		pid := startShim(t, bin, sandbox, "sleep", "600") // found through PATH
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Raw connections: Wait would fall back to the exit file if the
		// shim failed to answer one of them.
		var waiters []*bufio.Reader
		for range 3 {
			c, err := net.Dial("unix", filepath.Join(sandbox, shim.Dir, shim.SocketName))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write([]byte("wait\n")); err != nil {
				t.Fatal(err)
			}
			waiters = append(waiters, bufio.NewReader(c))
		}
		if !shim.Alive(ctx, sandbox) {
			t.Fatal("shim does not answer")
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("task pid %d: %v", pid, err)
		}
		if err := shim.Signal(ctx, sandbox, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for i, r := range waiters {
			if line, err := r.ReadString('\n'); err != nil || line != "exit 137 9\n" {
				t.Errorf("waiter %d read %q, %v; want \"exit 137 9\\n\" from the socket", i, line, err)
			}
		}
		want := shim.Status{ExitCode: 128 + 9, Signal: 9}
		if st, err := shim.Wait(ctx, sandbox); err != nil || st != want {
			t.Fatalf("Wait after the end = %+v, %v; want %+v", st, err, want)
		}
	})
}

// TestShimProtocolErrors: requests the shim does not understand get an
// "err" answer, a line too long is cut off, and the task runs on.
func TestShimProtocolErrors(t *testing.T) {
	shimtest.Run(t, func(t *testing.T, bin string) {
		sandbox := t.TempDir()
		startShim(t, bin, sandbox, "/bin/sleep", "600")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, tc := range []struct{ line, want string }{
			{"frobnicate", `err unknown request "frobnicate"`},
			{"signal x", `err bad signal "x"`},
			{"signal -3", `err bad signal "-3"`},
			{"signal", `err bad signal ""`},
			{"signal 99999", `err invalid argument`},
			{"  pid\t", fmt.Sprint("pid ", mustPid(ctx, t, sandbox))},
			{"wh\x00at \xff\u0085", `err unknown request "wh\x00at"`},
		} {
			got, err := shim.Request(ctx, sandbox, tc.line)
			if err != nil || got != tc.want {
				t.Errorf("%q -> %q, %v; want %q", tc.line, got, err, tc.want)
			}
		}
		// No newline within the limit: the shim hangs up.
		c, err := net.Dial("unix", filepath.Join(sandbox, shim.Dir, shim.SocketName))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte(strings.Repeat("x", 1000))); err != nil {
			t.Fatal(err)
		}
		if b, err := bufio.NewReader(c).ReadString('\n'); err == nil || b != "" {
			t.Errorf("a 1000-byte line got %q, %v; want the connection closed", b, err)
		}
		if !shim.Alive(ctx, sandbox) {
			t.Fatal("shim stopped answering after bad requests")
		}
		if err := shim.Signal(ctx, sandbox, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if st, err := shim.Wait(ctx, sandbox); err != nil || st.Signal != 15 {
			t.Fatalf("Wait = %+v, %v", st, err)
		}
	})
}

// TestTaskSignalState: the task gets the signal mask and the ignored
// signals the shim was started with (here: none), not the shim's own (the
// C shim ignores SIGPIPE for itself).
func TestTaskSignalState(t *testing.T) {
	shimtest.Run(t, func(t *testing.T, bin string) {
		sandbox := t.TempDir()
		// grep's own status: the task is grep, as exec'd by the shim.
		startShim(t, bin, sandbox, "/bin/sh", "-c", "exec grep -E '^Sig(Blk|Ign)' /proc/self/status > signals")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if st, err := shim.Wait(ctx, sandbox); err != nil || st != (shim.Status{}) {
			t.Fatalf("Wait = %+v, %v", st, err)
		}
		out, err := os.ReadFile(filepath.Join(sandbox, "signals"))
		// Nothing blocked; ignored exactly what this test process passed
		// on (a parent may have ignored some, e.g. CI's runner signal 32).
		if want := "SigBlk:\t0000000000000000\n" + ownSigIgn(t); err != nil || string(out) != want {
			t.Errorf("task's signal state %q, %v; want %q", out, err, want)
		}
	})
}

// ownSigIgn is the SigIgn line of this process's status: the signals it
// was started with ignored and keeps ignored (Go's runtime leaves them
// so), which a child it execs inherits.
func ownSigIgn(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(line, "SigIgn:") {
			return line
		}
	}
	t.Fatal("no SigIgn line in /proc/self/status")
	return ""
}

// TestShimWithoutPipes: a shim started without its control and status
// pipes (by hand) does not mistake its own socket or pidfd for them: a
// held task, never told to go, is killed and recorded, and the shim exits.
func TestShimWithoutPipes(t *testing.T) {
	shimtest.Run(t, func(t *testing.T, bin string) {
		sandbox := t.TempDir()
		cmd := exec.Command(bin, shim.Options{Hold: true}.Args([]string{"/bin/sleep", "600"})...)
		cmd.Dir = sandbox
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("shim: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the shim did not exit within 30s of its held task's end")
		}
		if st, err := shim.ReadExit(sandbox); err != nil || st != (shim.Status{ExitCode: 137, Signal: 9}) {
			t.Errorf("recorded exit = %+v, %v; want SIGKILL", st, err)
		}
	})
}

// mustPid is the pid the shim in sandbox answers.
func mustPid(ctx context.Context, t *testing.T, sandbox string) string {
	t.Helper()
	reply, err := shim.Request(ctx, sandbox, "pid")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(reply, "pid ")
}

// TestHeldTaskRunsOnlyAfterGo: with -hold the task exists (its pid is
// reported, its limits are on it) but its command has not run a single
// instruction until the executor writes GoByte; EOF instead kills it.
func TestHeldTaskRunsOnlyAfterGo(t *testing.T) {
	shimtest.Run(t, func(t *testing.T, bin string) {
		for _, release := range []bool{true, false} {
			sandbox := t.TempDir()
			const nofile = 77
			opts := shim.Options{Hold: true, Rlimits: []shim.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Soft: nofile, Hard: nofile}}}
			task, err := shimtest.Start(t, bin, sandbox, opts.Args([]string{"/bin/sh", "-c", "ulimit -n > ran"})[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			pid := task.Pid
			// Stopped at its exec: traced, and nothing written yet.
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				t.Fatal(err)
			}
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); f[0] != "t" {
				t.Errorf("held task state %q, want t (stopped by its tracer)", f[0])
			}
			// Held after its exec: the process already runs the command's image.
			sh, _ := filepath.EvalSymlinks("/bin/sh")
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != sh {
				t.Errorf("held task runs %q, %v; want %s", exe, err, sh)
			}
			var lim syscall.Rlimit
			if err := prlimitOf(pid, syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur != nofile || lim.Max != nofile {
				t.Errorf("held task's nofile = %+v, %v; want %d", lim, err, nofile)
			}
			if _, err := os.Stat(filepath.Join(sandbox, "ran")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the held command ran before go (stat: %v)", err)
			}
			if release {
				if err := task.Release(); err != nil {
					t.Fatal(err)
				}
			} else {
				task.Abort()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			st, err := shim.Wait(ctx, sandbox)
			cancel()
			<-task.ShimExited
			if err != nil {
				t.Fatal(err)
			}
			out, readErr := os.ReadFile(filepath.Join(sandbox, "ran"))
			switch {
			case release && (st != shim.Status{} || string(out) != fmt.Sprint(nofile, "\n")):
				t.Errorf("released: Wait = %+v, output %q (%v); want success printing %d", st, out, readErr, nofile)
			case !release && (st.Signal != int(syscall.SIGKILL) || readErr == nil):
				t.Errorf("not released: Wait = %+v, output %q; want SIGKILL before the command ran", st, out)
			}
		}
	})
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
	args := shim.Options{
		Rlimits:     []shim.Rlimit{{Resource: 7, Soft: 10, Hard: ^uint64(0)}},
		CgroupProcs: []string{"/a/cgroup.procs"},
		User:        &shim.Credential{UID: 65534, GID: 65534, Groups: []uint32{1, 2}},
		Hold:        true,
	}.Args([]string{"-x", "--"})
	want := []string{shim.Arg, "-rlimit=7:10:-1", "-cgroup=/a/cgroup.procs", "-user=65534:65534:1,2", "-hold", "--", "-x", "--"}
	if strings.Join(args, " ") != strings.Join(want, " ") {
		t.Errorf("Args = %q, want %q", args, want)
	}
}
