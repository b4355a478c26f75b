// Package consultest runs a real Consul agent (`consul agent -dev`) for
// tests, on 127.0.0.1 with ports chosen at run time. The binary is the one
// `make consul` builds (Consul v1.16.1, the last MPL-2.0 release).
package consultest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the Consul release the tests run.
const Version = "1.16.1"

// Binary finds the Consul binary: $CORRAL_CONSUL_BIN, else the cache path
// `make consul` builds into. Missing, the test fails under CI (CI set, as
// .ci/run and most CI systems do) and is skipped with the reason elsewhere.
func Binary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("CORRAL_CONSUL_BIN")
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "corral", "consul-"+Version, "consul")
	}
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	msg := fmt.Sprintf("no Consul binary at %s: run `make consul` (or set CORRAL_CONSUL_BIN)", p)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Agent is a running `consul agent -dev`.
type Agent struct {
	// HTTPAddr is the HTTP API, 127.0.0.1:port.
	HTTPAddr string
	cmd      *exec.Cmd
	out      *syncBuffer
	dataDir  string
	args     []string
	bin      string
	exited   chan struct{} // closed when the process has ended
}

// Start runs a dev agent and waits until it has elected itself and serves
// KV; it is killed when the test ends.
func Start(t testing.TB) *Agent {
	t.Helper()
	return startOnFreePorts(t, func(a *Agent, ports []int) []string {
		return []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-node", "corral-test", "-log-level", "warn",
			"-http-port", strconv.Itoa(ports[0]), "-serf-lan-port", strconv.Itoa(ports[1]),
			"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		}
	})
}

// StartServer runs a single-node Consul server that keeps its state in a
// data dir (not -dev, which keeps it in memory), so that Restart brings it
// back with the KV store, sessions and registered checks it had, as a
// restarted agent of a real cluster finds them.
func StartServer(t testing.TB) *Agent {
	t.Helper()
	return startOnFreePorts(t, func(a *Agent, ports []int) []string {
		return []string{"agent", "-server", "-bootstrap-expect", "1", "-data-dir", a.dataDir,
			"-bind", "127.0.0.1", "-client", "127.0.0.1", "-node", "corral-test", "-log-level", "warn",
			"-http-port", strconv.Itoa(ports[0]), "-serf-lan-port", strconv.Itoa(ports[1]),
			"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		}
	})
}

// startOnFreePorts starts Consul with args on four ports picked at run
// time. A port picked free can be taken by another process before Consul
// binds it (concurrent test runs on one machine do this); Consul then
// exits with "address already in use", and it is started again on new
// ports, a few times.
func startOnFreePorts(t testing.TB, args func(a *Agent, ports []int) []string) *Agent {
	t.Helper()
	a := &Agent{bin: Binary(t), dataDir: t.TempDir()}
	t.Cleanup(func() { a.Kill() })
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 4)
		a.HTTPAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
		a.args = args(a, ports)
		a.launch(t)
		err := a.waitReady()
		if err == nil {
			return a
		}
		clash := strings.Contains(a.out.String(), "address already in use")
		a.Kill()
		if !clash || attempt == 5 {
			t.Fatalf("%v; output:\n%s", err, a.out.String())
		}
		t.Logf("consul could not bind a port picked for it (attempt %d); starting it on new ports", attempt)
	}
}

// Restart stops the agent (SIGTERM, as an operator's restart does) and
// starts it again with the same ports and data dir, waiting until it serves.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	if a.cmd != nil && a.cmd.Process != nil {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
			<-a.exited
		}
		a.cmd = nil
	}
	a.launch(t)
	a.WaitReady(t)
}

// launch starts the process; a.exited is closed when it ends.
func (a *Agent) launch(t testing.TB) {
	t.Helper()
	a.out = &syncBuffer{}
	a.cmd = exec.Command(a.bin, a.args...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting consul: %v", err)
	}
	exited := make(chan struct{})
	a.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(a.cmd)
}

// WaitReady waits (up to a minute, for a loaded machine) until the agent
// has a leader and answers KV reads.
func (a *Agent) WaitReady(t testing.TB) {
	t.Helper()
	if err := a.waitReady(); err != nil {
		t.Fatalf("%v; output:\n%s", err, a.out.String())
	}
}

func (a *Agent) waitReady() error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-a.exited:
			return fmt.Errorf("consul at %s exited before it was ready", a.HTTPAddr)
		default:
		}
		resp, err := http.Get("http://" + a.HTTPAddr + "/v1/status/leader")
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(bytes.Trim(body.Bytes(), "\"\n ")) > 0 {
				if r, err := http.Get("http://" + a.HTTPAddr + "/v1/kv/corral-ready-probe"); err == nil {
					r.Body.Close()
					if r.StatusCode == 404 || r.StatusCode == 200 {
						return nil
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("consul at %s not ready within a minute", a.HTTPAddr)
}

// Stop and Cont pause and resume the agent (SIGSTOP/SIGCONT).
func (a *Agent) Stop() error { return a.cmd.Process.Signal(syscall.SIGSTOP) }
func (a *Agent) Cont() error { return a.cmd.Process.Signal(syscall.SIGCONT) }

// Kill ends the agent (and resumes it first if paused).
func (a *Agent) Kill() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGCONT)
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	<-a.exited
	a.cmd = nil
}

// Output is what the agent logged.
func (a *Agent) Output() string { return a.out.String() }

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("picking a port: %v", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
