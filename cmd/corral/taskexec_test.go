package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/corral-project/corral/core/master"
)

// TestTaskExec: `corral task exec` runs a command beside a running task, in
// its sandbox, with its environment and in its cgroups (the cgroups
// isolator's), forwards stdin with -i, returns the command's exit status
// and says clearly when the task or the program does not exist.
func TestTaskExec(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of real binaries")
	}
	var extra []string
	container := "process"
	if os.Geteuid() == 0 {
		root := fmt.Sprintf("/corral-test/taskexec-%d", os.Getpid())
		cfg := filepath.Join(t.TempDir(), "corral.hcl")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("agent { isolators = [\"cgroups\"] }\nplugin \"cgroups\" {\n  config { parent = %q }\n}\n", root+"/{agent_id}")), 0o644); err != nil {
			t.Fatal(err)
		}
		extra = []string{"-config", cfg, "-plugin-dir", filepath.Join(binDir(t), "plugins")}
		container = "cgroups"
		t.Cleanup(func() { removeCgroupTree(root) })
	}
	addr, _ := startDev(t, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	execDone := make(chan struct{})
	go func() {
		defer close(execDone)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "corral"), "exec", "-master", addr, "-name", "host",
			"-container", container, "-env", "MARK=from-the-task",
			"--", "sh", "-c", "pwd; cat /proc/self/cgroup; echo ready; exec sleep 600")
		_ = cmd.Run()
	}()
	var taskID string
	waitState(t, addr, "the task running", func(s master.State) bool {
		for _, f := range s.Frameworks {
			for _, tk := range f.Tasks {
				if tk.State == "TASK_RUNNING" {
					taskID = tk.ID
					return true
				}
			}
		}
		return false
	})
	var where string
	waitState(t, addr, "the task's first lines", func(master.State) bool {
		_, out, _ := runCLI(t, ctx, "task", "logs", taskID, "-master", addr)
		where, _, _ = strings.Cut(out, "ready\n")
		return strings.Contains(out, "ready\n")
	})
	wantDir, wantCgroups, _ := strings.Cut(where, "\n")

	code, out, errOut := runCLI(t, ctx, "task", "exec", taskID, "-master", addr, "--",
		"sh", "-c", "pwd; cat /proc/self/cgroup; echo \"mark=$MARK\"; echo oops >&2; exit 7")
	if code != 7 {
		t.Fatalf("task exec: exit %d, want the command's 7; stdout %q stderr %q", code, out, errOut)
	}
	if want := wantDir + "\n" + wantCgroups + "mark=from-the-task\n"; out != want {
		t.Errorf("task exec stdout:\n%s\nwant (the task's sandbox, cgroups and environment):\n%s", out, want)
	}
	if errOut != "oops\n" {
		t.Errorf("task exec stderr = %q, want the command's", errOut)
	}

	// -i forwards stdin until EOF; --master with two dashes works as well.
	cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "corral"), "task", "exec", "-i", "--master", addr, taskID, "--", "tr", "a-z", "A-Z")
	cmd.Stdin = strings.NewReader("piped in\n")
	got, err := cmd.Output()
	if err != nil || string(got) != "PIPED IN\n" {
		t.Errorf("task exec -i: %v, stdout %q; want PIPED IN", err, got)
	}

	// -t: an interactive shell on a terminal, driven here through a pty of
	// our own as a user's terminal would.
	tcmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "corral"), "task", "exec", "-t", "-master", addr, taskID, "--", "sh")
	ptmx, err := pty.StartWithSize(tcmd, &pty.Winsize{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&screen, ptmx); close(copied) }()
	_, _ = ptmx.Write([]byte("echo $((6*7)); tty; stty size; exit 3\n"))
	err = tcmd.Wait()
	<-copied
	ptmx.Close()
	if tcmd.ProcessState.ExitCode() != 3 || !strings.Contains(screen.String(), "42") ||
		!strings.Contains(screen.String(), "/dev/pts/") || !strings.Contains(screen.String(), "30 100") {
		t.Errorf("task exec -t: %v, exit %d, screen %q; want 42, a /dev/pts terminal of 30x100 and exit 3",
			err, tcmd.ProcessState.ExitCode(), screen.String())
	}
	if code, _, errOut := runCLI(t, ctx, "task", "exec", "-t", "-master", addr, taskID, "--", "true"); code != exitNotPlaced ||
		!strings.Contains(errOut, "-t needs a terminal") {
		t.Errorf("task exec -t without a terminal: exit %d, %q", code, errOut)
	}

	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{taskID, "--", "no-such-program"}, 127, "not found in the task's PATH"},
		{[]string{"no-such-task", "--", "true"}, exitNotPlaced, "task no-such-task is not known to the master"},
		{[]string{taskID}, exitNotPlaced, "no command given"},
	} {
		// Flags go before --: what follows is the command's.
		code, _, errOut := runCLI(t, ctx, append([]string{"task", "exec", "-master", addr}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.inStderr) {
			t.Errorf("corral %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.inStderr)
		}
	}
	// corral exec -i forwards its stdin to the task, argv and shell forms.
	for _, argv := range [][]string{{"tr", "a-z", "A-Z"}, {"tr a-z A-Z; echo done"}} {
		ecmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "corral"), append([]string{"exec", "-q", "-i", "-master", addr, "--"}, argv...)...)
		ecmd.Stdin = strings.NewReader("from stdin\n")
		var eout, eerr strings.Builder
		ecmd.Stdout, ecmd.Stderr = &eout, &eerr
		if err := ecmd.Run(); err != nil || !strings.HasPrefix(eout.String(), "FROM STDIN\n") {
			t.Errorf("exec -i %q: %v, stdout %q, stderr %q; want FROM STDIN", argv, err, eout.String(), eerr.String())
		}
	}

	// corral exec gives up at once, saying why, when no agent could ever
	// hold the task (the dev agent has a few CPUs, not 1000).
	began := time.Now()
	if code, _, errOut := runCLI(t, ctx, "exec", "-master", addr, "-cpus", "1000", "--", "true"); code != exitNotPlaced ||
		!strings.Contains(errOut, "no agent can ever fit cpus=1000") {
		t.Errorf("exec of a task no agent fits: exit %d, stderr %q; want %d and why", code, errOut, exitNotPlaced)
	} else if took := time.Since(began); took > 45*time.Second {
		t.Errorf("exec took %v to give up on a task no agent fits", took)
	}
	if code, _, errOut := runCLI(t, ctx, "task", "kill", taskID, "-master", addr); code != 0 {
		t.Fatalf("task kill: %d %s", code, errOut)
	}
	<-execDone
}

// removeCgroupTree removes the (empty, once the tasks ended) cgroups under
// root in every hierarchy.
func removeCgroupTree(root string) {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	hierarchies = append(hierarchies, "/sys/fs/cgroup/cgroup.procs")
	for _, procs := range hierarchies {
		h := filepath.Join(filepath.Dir(procs), root)
		var dirs []string
		_ = filepath.Walk(h, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
		_ = os.Remove(filepath.Dir(h))
	}
}
