package agent

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/executor/shim"
	"github.com/corral-project/corral/sdk/isolation/cgroups"
)

// floorReport is what launching tasks costs with nothing of corral's in
// the way (launchFloor).
type floorReport struct {
	wall                          time.Duration
	launcherCPU, shimCPU, taskCPU time.Duration // totals
}

// launchFloor starts n `sleep 600` tasks the way the agent's path ends,
// but straight from this process: for each, a fresh cgroup in every
// controller with its cpu and memory limits written, then the C task
// shim, which joins the cgroup before the command's exec; par at a time,
// as many as the agent launches at once. No agent, executor, isolator or
// gRPC call is involved, so its wall clock and CPU are what the kernel,
// the shim and the command alone cost on this machine: the floor under
// the agent's figure, measured in the same run. Everything it made is
// gone when it returns.
func launchFloor(t *testing.T, rel string, n, par int, memBytes int64) floorReport {
	t.Helper()
	binDir := os.Getenv("CORRAL_BIN_DIR")
	if binDir == "" {
		t.Fatal("CORRAL_BIN_DIR is unset: the floor needs bin/plugins/corral-shim (make bench-isolation sets it)")
	}
	shimBin := filepath.Join(binDir, "plugins", shim.BinaryName)
	hier, err := cgroups.Detect()
	if err != nil {
		t.Fatal(err)
	}
	sandboxes := t.TempDir()
	type started struct {
		rel    string
		pid    int
		exited chan struct{}
	}
	var (
		mu    sync.Mutex
		tasks []started
		errs  []error
	)
	defer func() {
		// Kill every task; its shim then exits, and the cgroups are empty.
		for _, s := range tasks {
			_ = syscall.Kill(s.pid, syscall.SIGKILL)
		}
		for _, s := range tasks {
			select {
			case <-s.exited:
			case <-time.After(time.Minute):
				t.Errorf("floor: the shim of %s did not exit within a minute of its task's kill", s.rel)
			}
		}
		for i := range n {
			removeCgroup(t, hier, fmt.Sprintf("%s/%d", rel, i))
		}
		removeCgroup(t, hier, rel)
	}()

	launch := func(i int) (started, error) {
		crel := fmt.Sprintf("%s/%d", rel, i)
		if err := hier.Create(crel); err != nil {
			return started{}, err
		}
		paths := hier.Paths(crel)
		mem := strconv.FormatInt(memBytes, 10)
		limits := []struct{ ctrl, file, value string }{{"cpu", "cpu.shares", "2"}, {"memory", "memory.limit_in_bytes", mem}}
		if hier.Unified {
			limits = []struct{ ctrl, file, value string }{{"", "cpu.weight", "1"}, {"", "memory.max", mem}}
		}
		for _, l := range limits {
			if err := os.WriteFile(filepath.Join(paths[l.ctrl], l.file), []byte(l.value), 0); err != nil {
				return started{}, fmt.Errorf("floor: limit: %w", err)
			}
		}
		var procs []string
		for _, d := range hier.Dirs(crel) {
			procs = append(procs, filepath.Join(d, "cgroup.procs"))
		}
		sandbox := filepath.Join(sandboxes, strconv.Itoa(i))
		if err := os.Mkdir(sandbox, 0o755); err != nil {
			return started{}, err
		}
		controlR, controlW, err := os.Pipe()
		if err != nil {
			return started{}, err
		}
		defer controlW.Close()
		statusR, statusW, err := os.Pipe()
		if err != nil {
			controlR.Close()
			return started{}, err
		}
		defer statusR.Close()
		cmd := exec.Command(shimBin, shim.Options{CgroupProcs: procs}.Args([]string{"sleep", "600"})...)
		cmd.Dir = sandbox
		cmd.ExtraFiles = []*os.File{controlR, statusW} // fds 3 and 4, as the executor passes them
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
		controlR.Close()
		statusW.Close()
		if err != nil {
			return started{}, fmt.Errorf("floor: start shim: %w", err)
		}
		s := started{rel: crel, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(s.exited) }()
		line, err := bufio.NewReader(statusR).ReadString('\n')
		if _, serr := fmt.Sscanf(line, "pid %d", &s.pid); err != nil || serr != nil {
			_ = cmd.Process.Kill()
			<-s.exited
			return started{}, fmt.Errorf("floor: shim said %q (%v)", line, err)
		}
		return s, nil
	}

	if hier.Unified {
		// v2 limits need their controllers enabled in every ancestor.
		if err := hier.Create(rel); err != nil {
			t.Fatal(err)
		}
		dir := "/sys/fs/cgroup"
		for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +memory"), 0); err != nil {
				t.Fatalf("floor: enable cpu and memory under %s: %v", dir, err)
			}
			dir = filepath.Join(dir, part)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +memory"), 0); err != nil {
			t.Fatalf("floor: enable cpu and memory under %s: %v", dir, err)
		}
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for i := range work {
				s, err := launch(i)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					tasks = append(tasks, s)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	r := floorReport{wall: time.Since(start)}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r.launcherCPU = time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	if len(errs) > 0 {
		t.Fatalf("floor: %d of %d launches failed; first: %v", len(errs), n, errs[0])
	}
	procs := procTable()
	for pid, p := range procs {
		if !procs.descends(pid, os.Getpid()) {
			continue
		}
		switch p.exe {
		case shim.BinaryName:
			r.shimCPU += time.Duration(p.runNs)
		case "sleep":
			r.taskCPU += time.Duration(p.runNs)
		}
	}
	return r
}

// removeCgroup removes rel in every controller, waiting for the kernel to
// let go of cgroups whose last process has just exited.
func removeCgroup(t *testing.T, hier *cgroups.Hierarchy, rel string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, d := range hier.Dirs(rel) {
		for {
			err := os.Remove(d)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("floor: remove cgroup %s: %v", d, err)
				break
			}
			time.Sleep(10 * time.Millisecond) // polling the kernel's release of an emptied cgroup
		}
	}
}
