package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/corral-project/corral/sdk/procfs"
)

// procRunner is our go-plugin runner for a plugin process we start. We use
// our own (through ClientConfig.RunnerFunc) rather than go-plugin's Cmd
// runner for three reasons: the fork must happen on a dedicated OS thread
// for Pdeathsig to be safe, executors log to a file instead of our stderr,
// and we keep the tail of stderr for error messages.
type procRunner struct {
	// handshake keeps the plugin's handshake line (its AutoMTLS
	// certificate).
	handshake *handshakeTap
	cmd       *exec.Cmd
	name      string
	// spawnLocked forks on the spawner thread (see onSpawnThread).
	spawnLocked bool

	stdout io.ReadCloser
	stderr io.ReadCloser
	tail   *tailBuffer
	// logFile receives stderr instead of the host (executors).
	logFile *os.File
	// verify runs right before exec (the checksum check, see
	// verifyChecksum); an error stops the start.
	verify func() error
	// killGroup makes Kill signal the whole process group (the child is
	// started as its leader), so a non-plugin that forked a child holding
	// our stdout pipe cannot keep go-plugin waiting for EOF.
	killGroup bool
	// socketDir is go-plugin's per-plugin socket directory; go-plugin
	// removes it in Kill only if a process was started, so a start that
	// fails before exec removes it here.
	socketDir string

	done chan struct{} // closed when the process has exited and been reaped
	pid  int
	mu   sync.Mutex
}

var _ runner.Runner = (*procRunner)(nil)

type runnerConfig struct {
	path    string
	args    []string
	name    string
	sysProc *syscall.SysProcAttr
	// spawnLocked must be set with Pdeathsig.
	spawnLocked bool
	logPath     string // "" pipes stderr into the host logger
	noStdin     bool
	verify      func() error // run right before exec; nil: nothing to check
	// killGroup starts the child as a process group leader and kills the
	// group. Used for probes of arbitrary files (Discover), not for
	// plugins we run: those may start helpers that must outlive them.
	killGroup bool
}

// runnerFunc adapts cfg to ClientConfig.RunnerFunc. go-plugin hands us a
// placeholder cmd that carries the environment (handshake cookie, socket
// dir); the real command is built from cfg.
func (cfg runnerConfig) runnerFunc(created func(*procRunner)) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(_ hclog.Logger, placeholder *exec.Cmd, socketDir string) (runner.Runner, error) {
		cmd := exec.Command(cfg.path, cfg.args...)
		cmd.Env = placeholder.Env
		if !cfg.noStdin {
			cmd.Stdin = placeholder.Stdin
		}
		cmd.SysProcAttr = cfg.sysProc
		if cfg.killGroup {
			attr := syscall.SysProcAttr{}
			if cfg.sysProc != nil {
				attr = *cfg.sysProc
			}
			attr.Setpgid = true
			cmd.SysProcAttr = &attr
		}
		r := &procRunner{cmd: cmd, name: cfg.name, spawnLocked: cfg.spawnLocked, tail: &tailBuffer{max: 1024}, done: make(chan struct{}),
			verify: cfg.verify, killGroup: cfg.killGroup, socketDir: socketDir}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		r.handshake = &handshakeTap{r: stdout}
		r.stdout = r.handshake
		if cfg.logPath != "" {
			f, err := os.OpenFile(cfg.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
			if err != nil {
				return nil, fmt.Errorf("opening plugin log file: %w", err)
			}
			cmd.Stderr = f
			r.logFile = f
			r.stderr = io.NopCloser(strings.NewReader(""))
		} else {
			pipe, err := cmd.StderrPipe()
			if err != nil {
				return nil, err
			}
			r.stderr = struct {
				io.Reader
				io.Closer
			}{io.TeeReader(pipe, r.tail), pipe}
		}
		created(r)
		return r, nil
	}
}

func (r *procRunner) Start(_ context.Context) error {
	var err error
	if r.verify != nil {
		err = r.verify()
	}
	switch {
	case err != nil:
	case r.spawnLocked:
		onSpawnThread(func() { err = r.cmd.Start() })
	default:
		err = r.cmd.Start()
	}
	if r.logFile != nil {
		// The child holds its own descriptor now.
		_ = r.logFile.Close()
	}
	if err != nil {
		close(r.done)
		if r.socketDir != "" {
			_ = os.RemoveAll(r.socketDir)
		}
		return err
	}
	r.mu.Lock()
	r.pid = r.cmd.Process.Pid
	r.mu.Unlock()
	return nil
}

func (r *procRunner) Wait(_ context.Context) error {
	err := r.cmd.Wait()
	close(r.done)
	return err
}

// Kill SIGKILLs the process. os.Process signals through a pidfd, so a
// process already reaped is never confused with a later one given its pid.
func (r *procRunner) Kill(_ context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if r.killGroup {
		select {
		case <-r.done:
			// Reaped: with no leader left to pin it, the group id
			// may name someone else's group by now.
		default:
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.name }

func (r *procRunner) ID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

func (r *procRunner) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

func (r *procRunner) Diagnose(context.Context) string {
	if s := r.tail.String(); s != "" {
		return "plugin stderr: " + s
	}
	return ""
}

func (r *procRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *procRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

// attachedRunner is a plugin process some earlier host started. It is not
// our child, so exit is detected by polling /proc; the start time guards
// against signalling a process that reused the pid.
type attachedRunner struct {
	pid        int
	startTicks uint64
	done       chan struct{}
	once       sync.Once
	// detach ends Wait without the process having exited, so a detached
	// client stops polling.
	detach     chan struct{}
	detachOnce sync.Once
}

var _ runner.AttachedRunner = (*attachedRunner)(nil)

// pollInterval is how often a reattached plugin is checked for exit.
const pollInterval = 200 * time.Millisecond

func (r *attachedRunner) Wait(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for procfs.Alive(r.pid, r.startTicks) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.detach:
			return nil
		case <-t.C:
		}
	}
	r.once.Do(func() { close(r.done) })
	return nil
}

func (r *attachedRunner) Kill(context.Context) error {
	if !procfs.Alive(r.pid, r.startTicks) {
		return nil
	}
	if err := syscall.Kill(r.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func (r *attachedRunner) stopWaiting() { r.detachOnce.Do(func() { close(r.detach) }) }

func (r *attachedRunner) ID() string { return strconv.Itoa(r.pid) }

func (r *attachedRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *attachedRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

// dialCheck confirms something accepts connections at addr.
func dialCheck(network, addr string) error {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// Pdeathsig is delivered when the *thread* that forked the child exits, not
// when the process does (prctl(2); plugins.md §1.5, §5.1). The Go runtime
// ends a thread when a goroutine exits while locked to it, so a fork from an
// arbitrary goroutine could later kill a healthy plugin. Every Pdeathsig
// fork therefore runs on one goroutine locked to its thread for the life of
// the process: that thread ends only when the process does.
var (
	spawnOnce sync.Once
	spawnCh   chan func()
)

func onSpawnThread(f func()) {
	spawnOnce.Do(func() {
		spawnCh = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for fn := range spawnCh {
				fn()
			}
		}()
	})
	done := make(chan struct{})
	spawnCh <- func() { defer close(done); f() }
	<-done
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
