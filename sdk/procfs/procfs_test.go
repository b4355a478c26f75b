package procfs

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func sleeper(t *testing.T, group bool) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// killed waits for cmd and reports whether SIGKILL ended it.
func killed(t *testing.T, cmd *exec.Cmd) bool {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		return errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	case <-time.After(time.Minute):
		t.Fatalf("pid %d still running a minute after SIGKILL", cmd.Process.Pid)
		return false
	}
}

func TestStat(t *testing.T) {
	state, ticks, err := Stat(os.Getpid())
	if err != nil || state != 'R' && state != 'S' || ticks == 0 {
		t.Errorf("Stat(self) = %c, %d, %v; want running or sleeping with a start time", state, ticks, err)
	}
	if _, _, err := Stat(0); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Stat(0) = %v, want ErrNoProcess", err)
	}
}

// TestSignalOnlyTheSameProcess: a Process whose pid now names a process
// that started at another time is not signalled.
func TestSignalOnlyTheSameProcess(t *testing.T) {
	cmd := sleeper(t, false)
	p, err := Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(p.Pid, p.StartTicks) {
		t.Fatal("a running sleeper is not alive")
	}
	later := Process{Pid: p.Pid, StartTicks: p.StartTicks + 1} // as if the pid had been reused
	if err := later.Signal(syscall.SIGKILL); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Signal with another start time = %v, want ErrNoProcess", err)
	}
	if err := later.SignalGroup(syscall.SIGKILL); !errors.Is(err, ErrNoProcess) {
		t.Errorf("SignalGroup with another leader start time = %v, want ErrNoProcess", err)
	}
	if !Alive(p.Pid, p.StartTicks) {
		t.Fatal("the sleeper was signalled through a stale identity")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	if !killed(t, cmd) {
		t.Error("the sleeper did not die of SIGKILL")
	}
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Signal after the process ended = %v, want ErrNoProcess", err)
	}
}

func TestSignalGroup(t *testing.T) {
	cmd := sleeper(t, true)
	p, err := Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SignalGroup(syscall.SIGKILL); err != nil {
		t.Fatalf("SignalGroup: %v", err)
	}
	if !killed(t, cmd) {
		t.Error("the group leader did not die of SIGKILL")
	}
}

// TestZeroProcessIsNeverSignalled: a Process that was never identified
// (Identify failed) must not turn into kill(0) or kill(-1).
func TestZeroProcessIsNeverSignalled(t *testing.T) {
	for _, p := range []Process{{}, {Pid: 1}, {Pid: -1}} {
		if err := p.SignalGroup(syscall.SIGCONT); !errors.Is(err, ErrNoProcess) {
			t.Errorf("%+v.SignalGroup = %v, want ErrNoProcess", p, err)
		}
	}
	if err := (Process{}).Signal(syscall.SIGCONT); !errors.Is(err, ErrNoProcess) {
		t.Errorf("zero Process.Signal = %v, want ErrNoProcess", err)
	}
}
