// Package shimrun is the Go implementation of the per-task shim (package
// shim documents the files and the socket protocol; the installed
// corral-shim is the C one, sdk/executor/shim/cshim, and this is the
// built-in shim mode of binaries calling shim.MaybeRun). It is its own
// package so that a binary of it alone (corral-shim-go, the baseline of
// make bench-shim) links nothing else: it imports only
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
	if len(args) >= 5 && args[1] == userArg {
		syscall.Exit(runAsUser(args[2], args[3], args[4:]))
	}
	if len(args) < 3 || args[1] != Arg {
		return
	}
	syscall.Exit(Run(args[2:]))
}

// userArg, as os.Args[1], makes the shim's binary the user stage of a task
// that both switches user and has rlimits: the shim can set limits on a
// process of another user only with CAP_SYS_RESOURCE, which a root shim in
// a container may lack, so the stage (the task's pid, still root) gets the
// limits, then switches user and execs the command. Arguments: userArg,
// UID:GID:GROUPS, the command's path, its argv. On fd 3 it writes why it
// could not exec.
const userArg = "__corral-shim-user"

// runAsUser is the user stage: it switches to user and execs path.
func runAsUser(user, path string, argv []string) int {
	// The shim traces this thread: it must be the one that execs.
	runtime.LockOSThread()
	const errFd = 3
	syscall.CloseOnExec(errFd)
	fail := func(err string) int {
		_ = writeAll(errFd, err)
		return 127
	}
	c, err := parseUser(user)
	if err != nil {
		return fail("user " + user + ": " + err.Error())
	}
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fail("setgroups: " + err.Error())
	}
	if err := syscall.Setgid(int(c.Gid)); err != nil {
		return fail("setgid " + strconv.Itoa(int(c.Gid)) + ": " + err.Error())
	}
	if err := syscall.Setuid(int(c.Uid)); err != nil {
		return fail("setuid " + strconv.Itoa(int(c.Uid)) + ": " + err.Error())
	}
	err = syscall.Exec(path, argv, syscall.Environ())
	return fail("exec " + path + ": " + err.Error())
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

// plan is what the shim applies to the task before its command runs (the
// options before "--" on the shim's command line, see package shim).
type plan struct {
	rlimits []rlimit
	cgroups []string // cgroup.procs files the task joins
	cred    *syscall.Credential
	hold    bool // wait for the executor's go byte on the control pipe
}

// rlimit is one resource limit, by resource number (RLIMIT_*).
type rlimit struct {
	resource   int
	soft, hard uint64
}

// stops reports whether the task must stop at its exec, before its first
// instruction, for the shim (or the executor) to finish its container.
func (p *plan) stops() bool { return p.hold || len(p.rlimits) > 0 || len(p.cgroups) > 0 }

// parseArgs splits the shim's arguments into its plan and the task's argv.
// Without options (the first argument does not start with "-"), all of
// args is the argv.
func parseArgs(args []string) (*plan, []string, error) {
	p := &plan{}
	if len(args) == 0 || len(args[0]) == 0 || args[0][0] != '-' {
		return p, args, nil
	}
	for i, a := range args {
		if a == "--" {
			return p, args[i+1:], nil
		}
		name, val := a, ""
		if j := indexByte([]byte(a), '='); j >= 0 {
			name, val = a[:j], a[j+1:]
		}
		var err error
		switch name {
		case "-rlimit":
			err = p.addRlimit(val)
		case "-cgroup":
			if val == "" {
				err = syscall.EINVAL
			}
			p.cgroups = append(p.cgroups, val)
		case "-user":
			p.cred, err = parseUser(val)
		case "-hold":
			p.hold = true
		default:
			err = syscall.EINVAL
		}
		if err != nil {
			return nil, nil, &pathError{"option", a, err}
		}
	}
	return nil, nil, &pathError{"options", "", errNoArgv}
}

type stringError string

func (e stringError) Error() string { return string(e) }

const errNoArgv = stringError(`no "--" before the task's argv`)

// addRlimit parses RESOURCE:SOFT:HARD (numbers; RLIM_INFINITY as -1 or
// its unsigned value).
func (p *plan) addRlimit(v string) error {
	f := split(v, ':')
	if len(f) != 3 {
		return syscall.EINVAL
	}
	res, err := strconv.Atoi(f[0])
	if err != nil || res < 0 {
		return syscall.EINVAL
	}
	lim := [2]uint64{}
	for i, s := range f[1:] {
		if s == "-1" {
			lim[i] = ^uint64(0)
			continue
		}
		if lim[i], err = strconv.ParseUint(s, 10, 64); err != nil {
			return syscall.EINVAL
		}
	}
	p.rlimits = append(p.rlimits, rlimit{resource: res, soft: lim[0], hard: lim[1]})
	return nil
}

// parseUser parses UID:GID[:GROUP,GROUP...].
func parseUser(v string) (*syscall.Credential, error) {
	f := split(v, ':')
	if len(f) < 2 || len(f) > 3 {
		return nil, syscall.EINVAL
	}
	uid, err1 := strconv.ParseUint(f[0], 10, 32)
	gid, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return nil, syscall.EINVAL
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if len(f) == 3 && f[2] != "" {
		for _, g := range split(f[2], ',') {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return nil, syscall.EINVAL
			}
			c.Groups = append(c.Groups, uint32(n))
		}
	}
	return c, nil
}

// Run is the shim of the task: args are its options, "--" and the task's
// argv (or the argv alone). It returns the shim's exit code once the task
// has ended and its status is recorded (127 if the task could not be
// started). The working directory is the sandbox; fds 3 and 4 are the
// executor's control and status pipes.
func Run(args []string) int {
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
	// Started without the pipes, the shim's own socket or pidfd would get
	// their numbers and be closed as "the pipes" once the task runs:
	// /dev/null stands in (no one hears the status; a held task, never
	// told to go, is killed).
	for fd := control; fd <= status; fd++ {
		if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e == syscall.EBADF {
			if nul, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0); err == nil && nul != fd {
				_ = syscall.Dup3(nul, fd, syscall.O_CLOEXEC)
				_ = syscall.Close(nul)
			}
		}
	}
	// Nothing but stdin, stdout and stderr may leak into the task: not the
	// executor's pipes, nor what it inherited without close-on-exec.
	closeOnExecFrom(control)
	p, argv, err := parseArgs(args)
	if err != nil {
		return fail("shim", err)
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

	pid, msg := start(p, argv)
	if pid <= 0 {
		// The command never ran: that is the task's end (exit code 127,
		// as shells report it), not the shim's failure.
		if err := writeExit(status127); err != nil {
			return fail("shim", err)
		}
		writeAll(status, "nostart "+strconv.Quote(msg)+"\n")
		return 127
	}
	// A relative path: sun_path holds 108 bytes, a sandbox path may not fit.
	ln, err := listen(sock)
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if p.stops() {
			_ = syscall.PtraceDetach(pid)
		}
		reap(pid)
		return fail("shim socket", err)
	}
	writeAll(status, "pid "+strconv.Itoa(pid)+"\n")
	if p.hold {
		// The executor isolates the task now; its command runs once the
		// executor says go. Anything else (EOF: the executor aborted or
		// died) ends the task before it ran.
		var b [1]byte
		n, err := syscall.Read(control, b[:])
		for err == syscall.EINTR {
			n, err = syscall.Read(control, b[:])
		}
		if n != 1 || b[0] != GoByte {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if p.stops() {
		// Let the command run (a killed one dies now).
		_ = syscall.PtraceDetach(pid)
		runtime.UnlockOSThread()
	}
	_ = syscall.Close(control)
	_ = syscall.Close(status)
	// The task holds stdout and stderr; the shim keeps its copies open
	// (a reader of the files sees them as the task's), but writes nothing.

	s := &server{pid: pid, ln: ln, exitFd: -1}
	s.exitFd, s.exitCh = watchExit(pid)
	s.loop()
	return 0
}

// GoByte, on the control pipe of a shim started with -hold, lets the task's
// command run.
const GoByte = 'g'

var status127 = status{code: 127}

// start starts the task's command in a session of its own, with stdin,
// stdout and stderr (the shim's) and nothing else, as p's user. When p
// needs it, the task stops right after its exec, before running anything
// (ptrace), gets its limits and cgroups, and (with -hold) stays stopped
// for the caller to release (PtraceDetach, from this locked thread). It
// returns the pid, or 0 and why the command could not be started.
func start(p *plan, argv []string) (int, string) {
	path, err := lookPath(argv[0])
	if err != nil {
		return 0, "exec: " + strconv.Quote(argv[0]) + ": executable file not found in $PATH"
	}
	attr := &syscall.ProcAttr{
		Env:   syscall.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true, Credential: p.cred, Ptrace: p.stops()},
	}
	if !p.stops() {
		pid, err := syscall.ForkExec(path, argv, attr)
		if err != nil {
			return 0, "exec " + path + ": " + err.Error()
		}
		return pid, ""
	}
	// The tracer is this thread: it must stay the one that detaches.
	runtime.LockOSThread()
	if p.cred != nil && len(p.rlimits) > 0 {
		// See userArg: the task starts as this binary, as root.
		var fds [2]int
		if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
			runtime.UnlockOSThread()
			return 0, "user stage: " + err.Error()
		}
		defer syscall.Close(fds[0])
		attr.Files = append(attr.Files, uintptr(fds[1]))
		attr.Sys.Credential = nil
		stageArgv := append([]string{argv[0], userArg, userText(p.cred), path}, argv...)
		pid, err := syscall.ForkExec("/proc/self/exe", stageArgv, attr)
		_ = syscall.Close(fds[1])
		if err != nil {
			runtime.UnlockOSThread()
			return 0, "user stage: " + err.Error()
		}
		return startStopped(p, pid, path, fds[0])
	}
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		runtime.UnlockOSThread()
		return 0, "exec " + path + ": " + err.Error()
	}
	return startStopped(p, pid, path, -1)
}

// startStopped finishes start for a task stopped at its exec (pid): it
// sets the task's limits and cgroups. With errR >= 0 that exec was the
// user stage's, which then runs on to the command's exec, or reports on
// errR why it could not.
func startStopped(p *plan, pid int, path string, errR int) (int, string) {
	abort := func(msg string) (int, string) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = syscall.PtraceDetach(pid)
		reap(pid)
		runtime.UnlockOSThread()
		return 0, msg
	}
	// The exec stops the task with SIGTRAP before its first instruction.
	if !waitExecStop(pid) {
		return abort("exec " + path + ": the task did not stop at its exec")
	}
	// Limits first, on the stopped task (raising a hard limit needs
	// CAP_SYS_RESOURCE, as it did in the task itself).
	for _, rl := range p.rlimits {
		lim := [2]uint64{rl.soft, rl.hard}
		if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(rl.resource),
			uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
			return abort("setrlimit " + strconv.Itoa(rl.resource) + " to " + strconv.FormatUint(rl.soft, 10) + ":" +
				strconv.FormatUint(rl.hard, 10) + ": " + e.Error())
		}
	}
	pidText := strconv.Itoa(pid)
	for _, f := range p.cgroups {
		if err := writeExisting(f, pidText); err != nil {
			return abort("join cgroup: " + err.Error())
		}
	}
	if errR >= 0 {
		// On to the command's exec, as the task's user.
		if err := syscall.PtraceCont(pid, 0); err != nil {
			return abort("user stage: " + err.Error())
		}
		if !waitExecStop(pid) {
			var b [512]byte
			n, _ := syscall.Read(errR, b[:])
			msg := "user stage ended before the command's exec"
			if n > 0 {
				msg = string(b[:n])
			}
			return abort(msg)
		}
	}
	return pid, ""
}

// waitExecStop waits for traced pid to stop at its exec (SIGTRAP), passing
// on any other signal it stops for. False if it ended instead.
func waitExecStop(pid int) bool {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || !ws.Stopped() {
			return false
		}
		if ws.StopSignal() == syscall.SIGTRAP {
			return true
		}
		if err := syscall.PtraceCont(pid, int(ws.StopSignal())); err != nil {
			return false
		}
	}
}

// userText is parseUser's input for c.
func userText(c *syscall.Credential) string {
	s := strconv.FormatUint(uint64(c.Uid), 10) + ":" + strconv.FormatUint(uint64(c.Gid), 10) + ":"
	for i, g := range c.Groups {
		if i > 0 {
			s += ","
		}
		s += strconv.FormatUint(uint64(g), 10)
	}
	return s
}

// writeExisting writes s to a file that must already exist (a cgroup's
// cgroup.procs), in one write as the kernel expects.
func writeExisting(path, s string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &pathError{"open", path, err}
	}
	if err := writeAll(fd, s); err != nil {
		_ = syscall.Close(fd)
		return &pathError{"write", path, err}
	}
	if err := syscall.Close(fd); err != nil {
		return &pathError{"close", path, err}
	}
	return nil
}

// closeOnExecFrom marks every descriptor >= first close-on-exec
// (close_range(2), Linux 5.11; before, the two pipes, which are all the
// executor passes on).
func closeOnExecFrom(first int) {
	const sysCloseRange, closeRangeCloexec = 436, 1 << 2
	if _, _, e := syscall.RawSyscall(sysCloseRange, uintptr(first), ^uintptr(0), closeRangeCloexec); e == 0 {
		return
	}
	syscall.CloseOnExec(first)
	syscall.CloseOnExec(first + 1)
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
	// Over a copy: reply drops c from s.conns, shifting the elements a
	// range over s.conns itself would still visit (a waiter was skipped,
	// left unanswered until the drain timeout).
	for _, c := range append([]*conn(nil), s.conns...) {
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
