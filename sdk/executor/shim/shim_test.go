package shim

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
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
	controlR, controlW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{Arg}, argv...)...)
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
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL); _ = cmd.Process.Kill() })
	return pid
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
