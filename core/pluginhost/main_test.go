package pluginhost

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/procfs"
	"github.com/hashicorp/go-hclog"
)

// testPlugin is the path of testdata/plugins/testplugin, built by TestMain
// into testBinDir, which lives as long as the test binary.
var testPlugin, testBinDir string

const helperEnv = "CORRAL_PLUGINHOST_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperHost(mode)
		return
	}
	dir, err := os.MkdirTemp("", "pluginhost-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinDir = dir
	testPlugin = filepath.Join(dir, "testplugin")
	out, err := exec.Command("go", "build", "-o", testPlugin, "./testdata/plugins/testplugin").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building test plugin: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helperHost runs when the test binary is re-executed as a plugin host that
// the test then SIGKILLs. It prints one JSON line describing what it
// started and waits to die.
func helperHost(mode string) {
	ctx := context.Background()
	spec := Spec{Kind: mode, Name: "helper", Path: os.Getenv("CORRAL_TEST_PLUGIN"), Args: []string{"-kind=" + mode}}
	var out any
	switch mode {
	case base.KindAllocator:
		inst, err := Start(ctx, spec, Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out = map[string]int{"pid": inst.Pid()}
	case base.KindExecutor:
		dir := os.Getenv("CORRAL_TEST_DIR")
		_, info, err := StartExecutor(ctx, spec, ExecutorOptions{LogPath: filepath.Join(dir, "executor.log"), SocketDir: filepath.Join(dir, "sockets")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out = info
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
	select {}
}

// startHelperHost runs the test binary as a host of a mode plugin, decodes
// its report into v, and returns the host process.
func startHelperHost(t *testing.T, mode string, v any) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// TMPDIR: the killed host cannot remove its socket dir.
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "CORRAL_TEST_PLUGIN="+testPlugin, "CORRAL_TEST_DIR="+t.TempDir(), "TMPDIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading helper host report: %v", err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		t.Fatalf("helper host report %q: %v", line, err)
	}
	return cmd
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killOnCleanup makes sure pid is gone when the test ends.
func killOnCleanup(t *testing.T, pid int) {
	// Identified now: by cleanup the plugin may be long gone and its pid
	// another package's process.
	p, err := procfs.Identify(pid)
	if err != nil {
		return
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGKILL) })
}

// logSink is an hclog output that tests can search.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.buf.Bytes(), []byte(sub))
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func testLogger(t *testing.T) (hclog.Logger, *logSink) {
	sink := &logSink{}
	return hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Trace, Output: sink}), sink
}
