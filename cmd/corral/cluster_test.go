package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
)

// These tests run the real binaries that `make build` puts in bin/:
// corral itself and the plugins, each its own process.

func binDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CORRAL_BIN_DIR")
	if dir == "" {
		t.Skip("CORRAL_BIN_DIR is not set: run through `make test`, which builds bin/ first")
	}
	for _, p := range []string{"corral", "plugins/corral-allocator-drf", "plugins/corral-isolator-process", "plugins/corral-executor-command"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("%s is missing from CORRAL_BIN_DIR=%s: run `make build`", p, dir)
		}
	}
	return dir
}

// proc is a corral process started by a test.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	seen  chan struct{} // signalled on every new stderr line
	done  chan struct{}
}

func startCorral(t testing.TB, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir(t), "corral"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, seen: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.seen <- struct{}{}:
			default:
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("corral %s stderr:\n%s", strings.Join(args, " "), strings.Join(p.lines, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// stop sends SIGTERM (the graceful path a user's Ctrl-C takes) and waits.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		p.t.Errorf("corral pid %d did not stop within 30s of SIGTERM", p.cmd.Process.Pid)
	}
}

// waitLine returns the first submatch of re in the process's stderr.
func (p *proc) waitLine(re *regexp.Regexp) string {
	p.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m[1]
			}
		}
		p.mu.Unlock()
		select {
		case <-p.seen:
		case <-p.done:
			p.t.Fatalf("corral exited before printing %v", re)
		case <-deadline:
			p.t.Fatalf("timed out waiting for %v", re)
		}
	}
}

var (
	masterLine = regexp.MustCompile(`operator API at http://(\S+)`)
	agentLine  = regexp.MustCompile(`corral agent: ready at (\S+)`)
)

// startDev runs `corral dev` on run-time ports and returns the master
// address once the agent has registered.
func startDev(t testing.TB, extra ...string) (string, *proc) {
	t.Helper()
	args := append([]string{"dev", "-master", "127.0.0.1:0", "-address", "127.0.0.1:0", "-work-dir", t.TempDir()}, extra...)
	p := startCorral(t, args...)
	addr := p.waitLine(masterLine)
	p.waitLine(agentLine)
	waitState(t, addr, "one connected agent", func(s master.State) bool { return len(s.Agents) == 1 && s.Agents[0].Connected })
	return addr, p
}

func getState(addr string) (master.State, error) {
	var s master.State
	resp, err := http.Get("http://" + addr + "/api/v1/state")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func waitState(t testing.TB, addr, what string, cond func(master.State) bool) master.State {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := getState(addr)
		if err == nil && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error %v, state %+v)", what, err, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCLI runs bin/corral with args and returns its exit code and output.
func runCLI(t testing.TB, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "corral"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("corral %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func fmtShares(s master.State) string {
	var b strings.Builder
	for _, f := range s.Frameworks {
		fmt.Fprintf(&b, "%s=%.3f(%d tasks) ", f.Name, f.DominantShare, len(f.Tasks))
	}
	return b.String()
}
