// Package shim is the per-task shim: a tiny, long-lived process that is the
// parent of one task (the role containerd-shim and conmon play). It starts
// the task, holds its pid and its stdio files, writes the exit status to a
// file in the sandbox the moment the task ends, and answers its executor
// over a unix socket in the sandbox. The executor, and the agent above it,
// may both die and come back: the task keeps running, and its exit status
// is never lost.
//
// The shim is started with the sandbox as its working directory, the task's
// environment, stdout and stderr (the task inherits them) and two pipes as
// fds 3 and 4, which it passes on to the task's first stage unchanged. On
// fd 4 it first writes "pid N\n" (the task's pid) or "error <quoted>\n" if
// the task could not be started, then closes its copy. Everything after the
// Arg argument is the task's argv.
//
// Socket protocol: the client sends one line, the shim answers one line.
//
//	wait        -> "exit CODE SIGNAL" once the task has ended
//	signal N    -> "ok" after kill(-pid, N) on the task's process group
//	pid         -> "pid N"
//
// It imports nothing beyond the standard library and x/sys, so that one per task
// costs little memory and starting it is cheap.
package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Arg, as os.Args[1], makes a binary calling MaybeRun the shim.
const Arg = "__corral-shim"

// Files under the sandbox.
const (
	Dir        = ".corral"     // owner-only directory in the sandbox
	SocketName = "shim.sock"   // the shim's socket, in Dir
	ExitName   = "exit_status" // "CODE SIGNAL\n", written once the task ended
)

// Status is how a task ended.
type Status struct {
	ExitCode int // 128+signal when killed by a signal, as shells do
	Signal   int // > 0 when the task died of a signal
}

// ErrGone means neither a shim nor a recorded exit status exists: the task
// ended without anyone recording how.
var ErrGone = errors.New("task shim is gone and no exit status was recorded")

// MaybeRun runs the shim and never returns if os.Args[1] is Arg; otherwise
// it returns at once. Call it first thing in main.
func MaybeRun() {
	if len(os.Args) < 3 || os.Args[1] != Arg {
		return
	}
	os.Exit(run(os.Args[2:]))
}

func run(argv []string) int {
	// A long-lived process per task: keep the heap tight.
	debug.SetGCPercent(20)
	debug.SetMemoryLimit(4 << 20)
	control, status := os.NewFile(3, "control"), os.NewFile(4, "status")
	fail := func(err error) int {
		_, _ = fmt.Fprintf(status, "error %s\n", strconv.Quote(err.Error()))
		return 127
	}
	if err := os.MkdirAll(Dir, 0o700); err != nil {
		return fail(fmt.Errorf("shim dir: %w", err))
	}
	sock := filepath.Join(Dir, SocketName)
	_ = os.Remove(sock)
	_ = os.Remove(filepath.Join(Dir, ExitName))
	// A relative path: sun_path holds 108 bytes, a sandbox path may not fit.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("shim socket: %w", err))
	}
	ln.SetUnlinkOnClose(false)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{control, status}
	// Its own session: the task's group can be signalled as one (-pid).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start task: %w", err))
	}
	pid := cmd.Process.Pid
	_ = control.Close()
	_, _ = fmt.Fprintf(status, "pid %d\n", pid)
	_ = status.Close()
	// The task holds stdout and stderr; the shim keeps its copies open
	// (a reader of the files sees them as the task's), but writes nothing.

	s := &server{pid: pid, done: make(chan struct{})}
	go s.serve(ln)
	st := waitStatus(cmd.Wait())
	s.finish(st)
	if err := writeExit(st); err != nil {
		// The socket still answers waiters; the file is the fallback.
		_, _ = fmt.Fprintf(os.Stderr, "corral shim: record exit status: %v\n", err)
	}
	close(s.done)
	_ = ln.Close()
	_ = os.Remove(sock)
	s.drain(5 * time.Second)
	return 0
}

func waitStatus(err error) Status {
	var ee *exec.ExitError
	if err == nil {
		return Status{}
	}
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				return Status{ExitCode: 128 + int(ws.Signal()), Signal: int(ws.Signal())}
			}
			return Status{ExitCode: ws.ExitStatus()}
		}
	}
	return Status{ExitCode: -1}
}

// writeExit records st durably: the executor or a restarted agent reads it
// after the shim is gone.
func writeExit(st Status) error {
	path := filepath.Join(Dir, ExitName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%d %d\n", st.ExitCode, st.Signal); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(Dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

type server struct {
	pid  int
	done chan struct{}
	mu   sync.Mutex
	st   Status
	conn sync.WaitGroup
}

func (s *server) finish(st Status) {
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
}

func (s *server) serve(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		s.conn.Add(1)
		go s.handle(c)
	}
}

// drain waits a little for answers in flight before the shim exits.
func (s *server) drain(timeout time.Duration) {
	ch := make(chan struct{})
	go func() { s.conn.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(timeout):
	}
}

func (s *server) handle(c *net.UnixConn) {
	defer s.conn.Done()
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	var reply string
	switch cmd {
	case "wait":
		<-s.done
		s.mu.Lock()
		reply = fmt.Sprintf("exit %d %d", s.st.ExitCode, s.st.Signal)
		s.mu.Unlock()
	case "signal":
		n, err := strconv.Atoi(arg)
		switch {
		case err != nil || n <= 0:
			reply = "err bad signal " + strconv.Quote(arg)
		case s.exited():
			reply = "ok" // nothing left to signal; never a reused pid
		default:
			if err := syscall.Kill(-s.pid, syscall.Signal(n)); err != nil && !errors.Is(err, syscall.ESRCH) {
				reply = "err " + err.Error()
			} else {
				reply = "ok"
			}
		}
	case "pid":
		reply = "pid " + strconv.Itoa(s.pid)
	default:
		reply = "err unknown request " + strconv.Quote(cmd)
	}
	_, _ = c.Write([]byte(reply + "\n"))
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ReadStart reads the shim's first word on the status pipe: the task's pid,
// or the reason it could not be started.
func ReadStart(r *bufio.Reader) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read shim start: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	if v, ok := strings.CutPrefix(line, "pid "); ok {
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("shim start %q: bad pid", line)
		}
		return pid, nil
	}
	if v, ok := strings.CutPrefix(line, "error "); ok {
		if unq, err := strconv.Unquote(v); err == nil {
			v = unq
		}
		return 0, errors.New(v)
	}
	return 0, fmt.Errorf("shim start %q: not understood", line)
}

// request sends one line to the shim of the task in sandbox and returns its
// answer. The socket is reached through /proc/self/fd, so the sandbox path
// may be longer than a unix socket path can be.
func request(ctx context.Context, sandbox, line string) (string, error) {
	dir, err := os.OpenFile(filepath.Join(sandbox, Dir), os.O_RDONLY|unix.O_DIRECTORY|unix.O_PATH, 0)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), SocketName))
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", err
	}
	return strings.TrimSuffix(reply, "\n"), nil
}

// Wait blocks until the task in sandbox has ended and returns how. If the
// shim is gone it reads the recorded exit status; ErrGone if there is none.
func Wait(ctx context.Context, sandbox string) (Status, error) {
	reply, err := request(ctx, sandbox, "wait")
	if err != nil {
		if ctx.Err() != nil {
			return Status{}, ctx.Err()
		}
		return ReadExit(sandbox)
	}
	var st Status
	if _, err := fmt.Sscanf(reply, "exit %d %d", &st.ExitCode, &st.Signal); err != nil {
		return Status{}, fmt.Errorf("shim wait: answer %q: %w", reply, err)
	}
	return st, nil
}

// Signal sends sig to the task's process group through its shim. A task
// that has already ended is not an error.
func Signal(ctx context.Context, sandbox string, sig syscall.Signal) error {
	reply, err := request(ctx, sandbox, "signal "+strconv.Itoa(int(sig)))
	if err != nil {
		if _, ok, _ := readExit(sandbox); ok {
			return nil
		}
		return fmt.Errorf("shim signal: %w", err)
	}
	if reply != "ok" {
		return fmt.Errorf("shim signal: %s", reply)
	}
	return nil
}

// Alive reports whether the task's shim answers.
func Alive(ctx context.Context, sandbox string) bool {
	reply, err := request(ctx, sandbox, "pid")
	return err == nil && strings.HasPrefix(reply, "pid ")
}

// ReadExit returns the exit status the shim recorded in sandbox, ErrGone
// if it recorded none.
func ReadExit(sandbox string) (Status, error) {
	st, ok, err := readExit(sandbox)
	if err != nil {
		return Status{}, err
	}
	if !ok {
		return Status{}, ErrGone
	}
	return st, nil
}

func readExit(sandbox string) (Status, bool, error) {
	path := filepath.Join(sandbox, Dir, ExitName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Status{}, false, nil
	}
	if err != nil {
		return Status{}, false, fmt.Errorf("read exit status: %w", err)
	}
	var st Status
	if _, err := fmt.Sscanf(string(b), "%d %d", &st.ExitCode, &st.Signal); err != nil {
		return Status{}, false, fmt.Errorf("exit status file %s holds %q: %w", path, b, err)
	}
	return st, true, nil
}
