// Package shimrun is the server side of the per-task shim (package shim
// documents the files and the socket protocol). It is its own package so
// that the dedicated corral-shim binary links nothing else: it imports only
// runtime, strconv and syscall (no os, fmt, net, os/exec, time: each costs
// resident pages in every shim), runs one goroutine, and serves its socket
// from a poll loop over raw file descriptors. One shim lives as long as its
// task, and there is one per task, so every page it keeps counts.
package shimrun

import (
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// Arg, as os.Args[1], makes a binary calling MaybeRun the shim.
const Arg = "__corral-shim"

// Files under the sandbox (see package shim).
const (
	Dir        = ".corral"     // owner-only directory in the sandbox
	SocketName = "shim.sock"   // the shim's socket, in Dir
	ExitName   = "exit_status" // "CODE SIGNAL\n", written once the task ended
)

// drainTimeout bounds how long a shim whose task has ended keeps serving
// connections accepted before it ended.
const drainTimeout = 5000 // ms

// maxLine bounds a request line; a client sending more is cut off.
const maxLine = 512

// MaybeRun runs the shim and never returns if os.Args[1] is Arg; otherwise
// it returns at once. Call it first thing in main.
func MaybeRun() {
	args := cmdline()
	if len(args) < 3 || args[1] != Arg {
		return
	}
	syscall.Exit(Run(args[2:]))
}

// cmdline is os.Args, read from /proc/self/cmdline: package os costs more
// resident memory than the rest of the shim.
func cmdline() []string {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		b = append(b, buf[:n]...)
	}
	var args []string
	for len(b) > 0 {
		i := indexByte(b, 0)
		if i < 0 {
			i = len(b)
		}
		args = append(args, string(b[:i]))
		b = b[min(i+1, len(b)):]
	}
	return args
}

// Run is the shim of the task argv: it returns the shim's exit code once
// the task has ended and its status is recorded (127 if the task could not
// be started). The working directory is the sandbox; fds 3 and 4 are the
// executor's control and status pipes.
func Run(argv []string) int {
	// A long-lived process per task: keep the heap tight and the runtime
	// small (one P: the shim never has two things to do at once).
	// (It allocates a few KiB after start: the collector never runs, so
	// runtime/debug's knobs, which link fmt, would buy nothing.)
	runtime.GOMAXPROCS(1)
	const control, status = 3, 4
	fail := func(what string, err error) int {
		writeAll(status, "error "+strconv.Quote(what+": "+err.Error())+"\n")
		return 127
	}
	if len(argv) == 0 {
		return fail("shim", syscall.EINVAL)
	}
	if err := syscall.Mkdir(Dir, 0o700); err != nil && err != syscall.EEXIST {
		return fail("shim dir", err)
	}
	sock := Dir + "/" + SocketName
	_ = syscall.Unlink(sock)
	_ = syscall.Unlink(Dir + "/" + ExitName)
	// A relative path: sun_path holds 108 bytes, a sandbox path may not fit.
	ln, err := listen(sock)
	if err != nil {
		return fail("shim socket", err)
	}
	path, err := lookPath(argv[0])
	if err != nil {
		return fail("start task", err)
	}
	// The task's first stage gets our stdio and the executor's pipes as
	// fds 3 and 4; it gets a session of its own, so that its process group
	// can be signalled as one (-pid).
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   syscall.Environ(),
		Files: []uintptr{0, 1, 2, control, status},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return fail("start task", err)
	}
	_ = syscall.Close(control)
	writeAll(status, "pid "+strconv.Itoa(pid)+"\n")
	_ = syscall.Close(status)
	// The task holds stdout and stderr; the shim keeps its copies open
	// (a reader of the files sees them as the task's), but writes nothing.

	s := &server{pid: pid, ln: ln, exitFd: -1}
	s.exitFd, s.exitCh = watchExit(pid)
	s.loop()
	return 0
}

// listen makes the shim's socket, close-on-exec so the task does not hold it.
func listen(path string) (int, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Listen(fd, 64); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// lookPath resolves a command without a slash through PATH, as exec does.
func lookPath(name string) (string, error) {
	if indexByte([]byte(name), '/') >= 0 {
		return name, nil
	}
	path, _ := syscall.Getenv("PATH")
	for _, dir := range split(path, ':') {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Mode&0o111 != 0 {
			return p, nil
		}
	}
	return "", syscall.ENOENT
}

// watchExit returns a descriptor that polls readable once pid has exited:
// a pidfd, or (kernels before 5.3) the read end of a pipe written by a
// goroutine blocked in wait4. For the pipe, exitCh carries the status.
func watchExit(pid int) (int, chan syscall.WaitStatus) {
	if fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0); errno == 0 {
		syscall.CloseOnExec(int(fd))
		return int(fd), nil
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		// Nothing to poll: the loop waits for the task instead.
		return -1, nil
	}
	ch := make(chan syscall.WaitStatus, 1)
	go func() {
		ch <- reap(pid)
		_ = syscall.Close(p[1])
	}()
	return p[0], ch
}

// reap waits for pid and returns its wait status.
func reap(pid int) syscall.WaitStatus {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			if err != nil {
				return syscall.WaitStatus(0xff00) // "exit 255": never seen, kept distinct
			}
			return ws
		}
	}
}

// status is how the task ended, as package shim's Status.
type status struct{ code, signal int }

func statusOf(ws syscall.WaitStatus) status {
	if ws.Signaled() {
		return status{code: 128 + int(ws.Signal()), signal: int(ws.Signal())}
	}
	if ws.Exited() {
		return status{code: ws.ExitStatus()}
	}
	return status{code: -1}
}

type conn struct {
	fd      int
	buf     []byte
	waiting bool // asked "wait" before the task ended
}

type server struct {
	pid    int
	ln     int // -1 once closed
	exitFd int // -1 once the task has been reaped
	exitCh chan syscall.WaitStatus
	conns  []*conn
	done   bool
	st     status
}

// loop serves the socket until the task has ended, then records its exit
// status, answers waiters and serves the connections already accepted for
// at most drainTimeout.
func (s *server) loop() {
	if s.exitFd < 0 {
		// Neither pidfd nor pipe: serve nothing, wait, record.
		s.exited(reap(s.pid))
	}
	var deadline int64 // ms on the monotonic clock, once draining
	fds := make([]pollFd, 0, 8)
	for {
		if s.done {
			if len(s.conns) == 0 {
				return
			}
			if deadline == 0 {
				deadline = monotonicMs() + drainTimeout
			}
		}
		fds = fds[:0]
		if s.ln >= 0 {
			fds = append(fds, pollFd{fd: int32(s.ln), events: pollIn})
		}
		if s.exitFd >= 0 {
			fds = append(fds, pollFd{fd: int32(s.exitFd), events: pollIn})
		}
		for _, c := range s.conns {
			fds = append(fds, pollFd{fd: int32(c.fd), events: pollIn})
		}
		timeout := int64(-1)
		if deadline != 0 {
			if timeout = deadline - monotonicMs(); timeout <= 0 {
				return
			}
		}
		n, err := poll(fds, timeout)
		if err == syscall.EINTR || n == 0 {
			continue
		}
		if err != nil {
			// poll(2) fails only on bad arguments; fall back to waiting.
			if !s.done {
				s.exited(s.waitExit())
			}
			return
		}
		for _, p := range fds {
			if p.revents == 0 {
				continue
			}
			switch int(p.fd) {
			case s.ln:
				s.accept()
			case s.exitFd:
				s.exited(s.waitExit())
			default:
				s.read(int(p.fd))
			}
		}
	}
}

// waitExit reaps the task once its exit descriptor is readable.
func (s *server) waitExit() syscall.WaitStatus {
	fd := s.exitFd
	s.exitFd = -1
	defer syscall.Close(fd)
	if s.exitCh != nil {
		return <-s.exitCh
	}
	return reap(s.pid)
}

// exited records st, answers the waiters and stops accepting.
func (s *server) exited(ws syscall.WaitStatus) {
	s.st, s.done = statusOf(ws), true
	if err := writeExit(s.st); err != nil {
		// The socket still answers waiters; the file is the fallback.
		writeAll(2, "corral shim: record exit status: "+err.Error()+"\n")
	}
	if s.ln >= 0 {
		_ = syscall.Close(s.ln)
		s.ln = -1
		_ = syscall.Unlink(Dir + "/" + SocketName)
	}
	for _, c := range s.conns {
		if c.waiting {
			s.reply(c, s.exitLine())
		}
	}
}

func (s *server) exitLine() string {
	return "exit " + strconv.Itoa(s.st.code) + " " + strconv.Itoa(s.st.signal)
}

func (s *server) accept() {
	for {
		fd, _, err := syscall.Accept4(s.ln, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: no more pending; anything else: the client's loss
		}
		s.conns = append(s.conns, &conn{fd: fd})
	}
}

func (s *server) find(fd int) *conn {
	for _, c := range s.conns {
		if c.fd == fd {
			return c
		}
	}
	return nil
}

// read takes what a client sent; a complete line is answered.
func (s *server) read(fd int) {
	c := s.find(fd)
	if c == nil {
		return
	}
	var b [128]byte
	n, err := syscall.Read(fd, b[:])
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if err != nil || n == 0 {
		s.drop(c) // the client went away, or sent no full line
		return
	}
	if c.waiting {
		return // one request per connection; the rest is ignored
	}
	c.buf = append(c.buf, b[:n]...)
	i := indexByte(c.buf, '\n')
	if i < 0 {
		if len(c.buf) > maxLine {
			s.drop(c)
		}
		return
	}
	s.handle(c, trimSpace(string(c.buf[:i])))
}

func (s *server) handle(c *conn, line string) {
	cmd, arg := line, ""
	if i := indexByte([]byte(line), ' '); i >= 0 {
		cmd, arg = line[:i], line[i+1:]
	}
	switch cmd {
	case "wait":
		if !s.done {
			c.waiting, c.buf = true, nil
			return
		}
		s.reply(c, s.exitLine())
	case "signal":
		n, err := strconv.Atoi(arg)
		switch {
		case err != nil || n <= 0:
			s.reply(c, "err bad signal "+strconv.Quote(arg))
		case s.done:
			s.reply(c, "ok") // nothing left to signal; never a reused pid
		default:
			if err := syscall.Kill(-s.pid, syscall.Signal(n)); err != nil && err != syscall.ESRCH {
				s.reply(c, "err "+err.Error())
			} else {
				s.reply(c, "ok")
			}
		}
	case "pid":
		s.reply(c, "pid "+strconv.Itoa(s.pid))
	default:
		s.reply(c, "err unknown request "+strconv.Quote(cmd))
	}
}

// reply sends the answer and closes the connection. Answers are a few
// bytes, far below a socket's buffer, so a non-blocking send takes them.
func (s *server) reply(c *conn, line string) {
	_, _ = syscall.SendmsgN(c.fd, []byte(line+"\n"), nil, nil, syscall.MSG_NOSIGNAL)
	s.drop(c)
}

func (s *server) drop(c *conn) {
	_ = syscall.Close(c.fd)
	for i, x := range s.conns {
		if x == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
}

// writeExit records st durably: the executor or a restarted agent reads it
// after the shim is gone.
func writeExit(st status) error {
	path := Dir + "/" + ExitName
	tmp := path + ".tmp"
	fd, err := syscall.Open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return &pathError{"open", tmp, err}
	}
	line := strconv.Itoa(st.code) + " " + strconv.Itoa(st.signal) + "\n"
	if err := writeAll(fd, line); err != nil {
		_ = syscall.Close(fd)
		return &pathError{"write", tmp, err}
	}
	if err := syscall.Fsync(fd); err != nil {
		_ = syscall.Close(fd)
		return &pathError{"fsync", tmp, err}
	}
	if err := syscall.Close(fd); err != nil {
		return &pathError{"close", tmp, err}
	}
	if err := syscall.Rename(tmp, path); err != nil {
		return &pathError{"rename", tmp, err}
	}
	if d, err := syscall.Open(Dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0); err == nil {
		_ = syscall.Fsync(d)
		_ = syscall.Close(d)
	}
	return nil
}

// writeAll writes s to fd, retrying short writes and EINTR.
func writeAll(fd int, s string) error {
	b := []byte(s)
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// pathError is os.PathError's message without package os.
type pathError struct {
	op, path string
	err      error
}

func (e *pathError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }

// sysPidfdOpen is pidfd_open(2): 434 on every Linux architecture (the
// syscall table is shared since 5.1).
const sysPidfdOpen = 434

const pollIn = 0x1 // POLLIN

// pollFd is struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

// poll is poll(2) through ppoll(2), which every architecture has, with a
// timeout in ms (< 0: none).
func poll(fds []pollFd, timeoutMs int64) (int, error) {
	var ts *syscall.Timespec
	if timeoutMs >= 0 {
		t := syscall.NsecToTimespec(timeoutMs * 1e6)
		ts = &t
	}
	var p unsafe.Pointer
	if len(fds) > 0 {
		p = unsafe.Pointer(&fds[0])
	}
	n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(p), uintptr(len(fds)), uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// monotonicMs reads CLOCK_MONOTONIC in ms.
func monotonicMs() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano() / 1e6
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func split(s string, sep byte) []string {
	var out []string
	for {
		i := indexByte([]byte(s), sep)
		if i < 0 {
			return append(out, s)
		}
		out, s = append(out, s[:i]), s[i+1:]
	}
}

func trimSpace(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f' }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
