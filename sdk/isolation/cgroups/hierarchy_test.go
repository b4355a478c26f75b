package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
)

// TestHierarchyPaths checks where a container's cgroup lives on both
// layouts, whatever this host runs.
func TestHierarchyPaths(t *testing.T) {
	v1 := &Hierarchy{Mounts: map[string]string{
		"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "freezer": "/sys/fs/cgroup/freezer",
	}}
	v2 := &Hierarchy{Unified: true}
	tests := []struct {
		name     string
		h        *Hierarchy
		wantDirs []string
		wantMain string
	}{
		{"v1 with cpu,cpuacct co-mounted", v1, []string{
			"/sys/fs/cgroup/cpu,cpuacct/corral/a1/c1", "/sys/fs/cgroup/freezer/corral/a1/c1",
			"/sys/fs/cgroup/memory/corral/a1/c1", "/sys/fs/cgroup/pids/corral/a1/c1",
		}, "/sys/fs/cgroup/memory/corral/a1/c1"},
		{"v2", v2, []string{"/sys/fs/cgroup/corral/a1/c1"}, "/sys/fs/cgroup/corral/a1/c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Dirs("/corral/a1/c1"); !reflect.DeepEqual(got, tt.wantDirs) {
				t.Errorf("Dirs = %v, want %v", got, tt.wantDirs)
			}
			if got := tt.h.main("/corral/a1/c1"); got != tt.wantMain {
				t.Errorf("main = %q, want %q", got, tt.wantMain)
			}
		})
	}
}

// TestCgroupKillOnV2: on cgroup v2 Cleanup uses cgroup.kill, which empties
// the cgroup in one write.
func TestCgroupKillOnV2(t *testing.T) {
	iso := testIsolator(t, `{}`)
	h := iso.Hierarchy()
	if !h.Unified {
		t.Skip("this host has cgroup v1 (controllers under /sys/fs/cgroup/<controller>); cgroup.kill exists on cgroup v2 only")
	}
	prepare(t, iso, "k", "cpus:0.1;mem:16")
	rel := filepath.Join(iso.Parent(), "k")
	if _, err := os.Stat(filepath.Join(h.main(rel), "cgroup.kill")); err != nil {
		t.Skipf("this kernel's cgroup v2 has no cgroup.kill (Linux 5.14+): %v", err)
	}
	w := start(t, iso, "k", shell("sleep 600 & exec sleep 600"))
	if err := iso.Cleanup(testCtx(t), "k"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("task still running a minute after Cleanup")
	}
}

// stuckFreezer is the library's manager with a freezer that never reaches
// FROZEN, as the v1 freezer does on a starved machine.
type stuckFreezer struct{ cgroups.Manager }

func (stuckFreezer) Freeze(state cgroups.FreezerState) error {
	if state == cgroups.Frozen {
		return errors.New("unable to freeze")
	}
	return nil
}

// TestKillWhenFreezeFails: a freezer stuck in FREEZING must not leave the
// container's processes running (make test-stress found Cleanup giving up).
func TestKillWhenFreezeFails(t *testing.T) {
	iso := testIsolator(t, `{}`)
	h := iso.Hierarchy()
	prepare(t, iso, "stuck", "cpus:0.1;mem:16")
	rel := filepath.Join(iso.Parent(), "stuck")
	w := start(t, iso, "stuck", shell("sleep 600 & echo started; exec sleep 600"))
	if line, err := w.stdout.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("workload said %q, %v", line, err)
	}
	m, err := h.Manager(rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Kill(testCtx(t), stuckFreezer{m}, rel); err != nil {
		t.Fatalf("Kill with a stuck freezer: %v", err)
	}
	if pids, err := h.Pids(rel); err != nil || len(pids) != 0 {
		t.Errorf("cgroup %s still holds %v (%v) after Kill", rel, pids, err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("task still running a minute after Kill")
	}
}

// TestContains: Contains sees a process in a container's cgroup in every
// controller only once Isolate (or whoever started it) put it there, and
// Isolate of a process already there leaves it there.
func TestContains(t *testing.T) {
	iso := testIsolator(t, `{}`)
	h := iso.Hierarchy()
	prepare(t, iso, "in", "cpus:0.1;mem:16")
	rel := filepath.Join(iso.Parent(), "in")
	if in, err := h.Contains(rel, os.Getpid()); err != nil || in {
		t.Fatalf("Contains(test process) = %v, %v; want false", in, err)
	}
	w := start(t, iso, "in", shell("exec sleep 600"))
	pid := w.cmd.Process.Pid
	if in, err := h.Contains(rel, pid); err != nil || !in {
		t.Fatalf("Contains(isolated pid %d) = %v, %v; want true", pid, in, err)
	}
	if err := iso.Isolate(testCtx(t), "in", pid); err != nil {
		t.Fatalf("Isolate again: %v", err)
	}
	if in, err := h.Contains(rel, pid); err != nil || !in {
		t.Errorf("Contains after a second Isolate = %v, %v; want true", in, err)
	}
	if _, err := h.Contains(rel, 0x7ffffff0); err == nil {
		t.Error("Contains(no such pid) = nil error, want one")
	}
}
