package contracttest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/base/basetest"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/resources"
)

var containerRes = resources.MustParse("cpus:0.5;mem:64")

// Run checks the rules every isolator must follow. newImpl must return a
// fresh, unconfigured instance on every call; wrap it with InProcess to run
// the checks over gRPC. The checks start real child processes (sleep).
func Run(t *testing.T, newImpl func(t *testing.T) isolator.Isolator) {
	basetest.Run(t, base.KindIsolator, isolator.APIVersions, newImpl)

	t.Run("PrepareIsIdempotent", func(t *testing.T) {
		iso := configured(t, newImpl)
		id := containerID(t, iso)
		req := isolator.PrepareRequest{ContainerID: id, Resources: containerRes, SandboxDir: t.TempDir()}
		if _, err := iso.Prepare(ctx(t), req); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		if _, err := iso.Prepare(ctx(t), req); err != nil {
			t.Fatalf("Prepare again: %v", err)
		}
		if err := iso.Update(ctx(t), id, resources.MustParse("cpus:1;mem:128")); err != nil {
			t.Fatalf("Update: %v", err)
		}
	})

	t.Run("IsolateAndUsage", func(t *testing.T) {
		iso := configured(t, newImpl)
		id := containerID(t, iso)
		p := prepareAndIsolate(t, iso, id)
		// Accounting may trail the move into the container by a moment.
		var last isolator.Usage
		ok := poll(10*time.Second, func() bool {
			last = usageOf(t, iso, id)
			return last.Found && last.Processes >= 1
		})
		if !ok {
			t.Fatalf("Usage(%s) with pid %d running = %+v, want Found with Processes >= 1", id, p.pid, last)
		}
	})

	t.Run("CleanupTwiceEndsContainer", func(t *testing.T) {
		iso := configured(t, newImpl)
		id := containerID(t, iso)
		p := prepareAndIsolate(t, iso, id)
		if err := iso.Cleanup(ctx(t), id); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if err := iso.Cleanup(ctx(t), id); err != nil {
			t.Fatalf("Cleanup again: %v", err)
		}
		if u := usageOf(t, iso, id); u.Found {
			t.Errorf("Usage after Cleanup = %+v, want Found=false", u)
		}
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("pid %d still running 10s after Cleanup", p.pid)
		}
	})

	t.Run("Recover", func(t *testing.T) {
		iso := configured(t, newImpl)
		id := containerID(t, iso)
		p := prepareAndIsolate(t, iso, id)
		orphans, err := iso.Recover(ctx(t), "contract-agent", []isolator.ContainerState{{ContainerID: id, Pid: p.pid, Resources: containerRes}})
		if err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if slices.Contains(orphans, id) {
			t.Errorf("Recover reported known container %s as an orphan: %v", id, orphans)
		}
		if u := usageOf(t, iso, id); !u.Found {
			t.Errorf("Usage after Recover = %+v, want Found", u)
		}
	})

	t.Run("WatchEndsWithContext", func(t *testing.T) {
		iso := configured(t, newImpl)
		c, cancel := context.WithCancel(ctx(t))
		ch, err := iso.Watch(c)
		if err != nil {
			cancel()
			t.Fatalf("Watch: %v", err)
		}
		cancel()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, open := <-ch:
				if !open {
					return
				}
			case <-deadline:
				t.Fatal("Watch channel still open 10s after its context ended")
			}
		}
	})
}

func ctx(t *testing.T) context.Context { return basetest.Ctx(t) }

func configured(t *testing.T, newImpl func(t *testing.T) isolator.Isolator) isolator.Isolator {
	return basetest.Configured(t, newImpl, isolator.APIVersions)
}

var seq atomic.Int64

// containerID returns an ID unique to this run and registers a Cleanup of
// it, so a failed check leaves nothing behind.
func containerID(t *testing.T, iso isolator.Isolator) string {
	id := fmt.Sprintf("contract-%d-%d", time.Now().UnixNano(), seq.Add(1))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = iso.Cleanup(c, id)
	})
	return id
}

type child struct {
	pid    int
	exited chan struct{}
}

// prepareAndIsolate prepares id and isolates a real `sleep 30` that leads
// its own session, as an executor's task would.
func prepareAndIsolate(t *testing.T, iso isolator.Isolator, id string) *child {
	t.Helper()
	if _, err := iso.Prepare(ctx(t), isolator.PrepareRequest{ContainerID: id, Resources: containerRes, SandboxDir: t.TempDir()}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	p := &child{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
	})
	if err := iso.Isolate(ctx(t), id, p.pid); err != nil {
		t.Fatalf("Isolate(%s, %d): %v", id, p.pid, err)
	}
	return p
}

// usageOf returns the usage reported for id; an isolator must answer for
// every container asked about, with Found=false for unknown ones.
func usageOf(t *testing.T, iso isolator.Isolator, id string) isolator.Usage {
	t.Helper()
	usages, err := iso.Usage(ctx(t), []string{id})
	if err != nil {
		t.Fatalf("Usage(%s): %v", id, err)
	}
	for _, u := range usages {
		if u.ContainerID == id {
			return u
		}
	}
	t.Fatalf("Usage(%s) returned no entry for it: %+v", id, usages)
	return isolator.Usage{}
}

func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
