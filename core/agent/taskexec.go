package agent

// Task exec: run an operator's command beside a running task, the way
// `nomad alloc exec` and `kubectl exec` do. The command joins what the
// task is in, read from the kernel rather than from the isolator: the
// task's cgroups (every hierarchy, v1 and v2), its namespaces when they
// differ from the agent's (entered with nsenter, as a runc container's),
// its user and group, its environment and its sandbox as working
// directory. Output and the exit status stream back over an upgraded
// HTTP connection (package execstream); the master proxies it the way it
// proxies sandbox reads.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/corral-project/corral/core/agent/execstream"
)

// TaskExecPattern is the agent's task exec endpoint. Query: cmd (repeated,
// the argv), stdin=1 to forward stdin, tty=1 (with cols and rows) to run
// the command on a pseudo-terminal. Request headers: Connection: Upgrade,
// Upgrade: corral-exec.
const TaskExecPattern = "POST /api/v1/exec/{framework}/{task}"

// execTarget is what a command run beside a task needs to know of it.
type execTarget struct {
	pid     int
	sandbox string
	env     map[string]string // the task's command environment (fallback)
	done    <-chan struct{}
}

func (a *Agent) serveTaskExec(w http.ResponseWriter, r *http.Request) {
	k := taskKey{r.PathValue("framework"), r.PathValue("task")}
	argv := r.URL.Query()["cmd"]
	if len(argv) == 0 || argv[0] == "" {
		execHTTPError(w, http.StatusBadRequest, "no command: give it as cmd=ARG query parameters")
		return
	}
	var tty *pty.Winsize
	if q := r.URL.Query(); q.Get("tty") == "1" {
		cols, rows, err := execstream.ParseResize([]byte(q.Get("cols") + " " + q.Get("rows")))
		if err != nil {
			cols, rows = 80, 24
		}
		tty = &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), execstream.Protocol) {
		execHTTPError(w, http.StatusUpgradeRequired, "task exec needs an upgrade to "+execstream.Protocol+" (use corral task exec)")
		return
	}
	target, status, err := a.execTarget(k)
	if err != nil {
		execHTTPError(w, status, err.Error())
		return
	}
	cmd, err := commandBeside(target, argv)
	var startErr *execStartError
	if errors.As(err, &startErr) {
		// Not found in the task's PATH: answered in the stream below, with
		// the shell's exit status.
		cmd = nil
	} else if err != nil {
		execHTTPError(w, http.StatusInternalServerError, err.Error())
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		execHTTPError(w, http.StatusInternalServerError, "this connection cannot be upgraded (HTTP/2?)")
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{}) // the server's timeouts do not apply to a session
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + execstream.Protocol + "\r\nConnection: Upgrade\r\n\r\n")
	if err := rw.Flush(); err != nil {
		return
	}
	log := a.logger.With("framework_id", k.framework, "task_id", k.task, "command", argv)
	log.Info("task exec started")
	if cmd == nil {
		code := sendStartError(execstream.NewWriter(rw.Writer), startErr)
		log.Info("task exec could not start", "error", startErr, "exit_code", code)
		return
	}
	fw := execstream.NewWriter(rw.Writer)
	var code int
	if tty != nil {
		code = runBesideTTY(r.Context(), cmd, tty, rw.Reader, fw, target.done)
	} else {
		code = runBeside(r.Context(), cmd, r.URL.Query().Get("stdin") == "1", rw.Reader, fw, target.done)
	}
	log.Info("task exec ended", "exit_code", code)
}

// execTarget finds a running task, or says why it cannot take a command.
func (a *Agent) execTarget(k taskKey) (execTarget, int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tasks[k]
	switch {
	case !ok:
		return execTarget{}, http.StatusNotFound, fmt.Errorf("task %s of framework %s is not on this agent", k.task, k.framework)
	case t.terminal:
		return execTarget{}, http.StatusConflict, fmt.Errorf("task %s has ended (%s)", k.task, t.state)
	case !t.launched || t.pid == 0:
		return execTarget{}, http.StatusConflict, fmt.Errorf("task %s has not started yet (%s)", k.task, t.state)
	}
	return execTarget{pid: t.pid, sandbox: t.sandbox, env: t.info.GetCommand().GetEnvironment(), done: t.done}, 0, nil
}

// commandBeside makes the command that runs argv in the task's cgroups,
// namespaces, user, environment and sandbox. cleanup releases what it
// opened.
func commandBeside(t execTarget, argv []string) (*exec.Cmd, error) {
	proc := "/proc/" + strconv.Itoa(t.pid)
	env, err := readEnviron(proc + "/environ")
	if err != nil {
		return nil, fmt.Errorf("reading the task's environment: %w", err)
	}
	if len(env) == 0 { // a process may clear its environment; fall back to the task's own
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.sandbox}
		for k, v := range t.env {
			env = append(env, k+"="+v)
		}
	}
	uid, gid, err := procIDs(proc + "/status")
	if err != nil {
		return nil, fmt.Errorf("reading the task's user: %w", err)
	}
	joins, err := cgroupJoins(t.pid)
	if err != nil {
		return nil, fmt.Errorf("finding the task's cgroups: %w", err)
	}
	nsFlags, err := foreignNamespaces(t.pid)
	if err != nil {
		return nil, err
	}
	// The chain: sh joins the task's cgroups (writing its own pid, so
	// everything it execs stays there), then nsenter (when the task has
	// namespaces of its own, also switching user and root/cwd), then the
	// command.
	var chain []string
	if len(joins) > 0 {
		script := ""
		for i := range joins {
			script += fmt.Sprintf(`echo $$ > "$%d" || exit 126; `, i+1)
		}
		script += `shift ` + strconv.Itoa(len(joins)) + `; exec "$@"`
		chain = append([]string{"/bin/sh", "-c", script, "corral-task-exec"}, joins...)
	}
	cmd := &exec.Cmd{Env: env, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if len(nsFlags) > 0 {
		nsenter, err := exec.LookPath("nsenter")
		if err != nil {
			return nil, errors.New("the task runs in namespaces of its own and entering them needs nsenter (util-linux), which this agent lacks")
		}
		chain = append(chain, nsenter, "--target", strconv.Itoa(t.pid))
		chain = append(chain, nsFlags...)
		chain = append(chain, "--root", "--wd", "--setuid", strconv.Itoa(uid), "--setgid", strconv.Itoa(gid), "--")
	} else {
		cmd.Dir = t.sandbox
		switch {
		case uid == os.Getuid() && gid == os.Getgid():
		case len(joins) == 0:
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		default:
			// Joining cgroups needs the agent's privileges, so the user
			// changes after the join.
			setpriv, err := exec.LookPath("setpriv")
			if err != nil {
				return nil, errors.New("the task runs as another user in its own cgroups and switching to that user after joining them needs setpriv (util-linux), which this agent lacks")
			}
			chain = append(chain, setpriv, "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--clear-groups", "--")
		}
		// Resolve the program with the task's PATH, not the agent's.
		if p, err := lookPathIn(argv[0], env, t.sandbox); err == nil {
			argv = append([]string{p}, argv[1:]...)
		} else {
			return nil, err
		}
	}
	chain = append(chain, argv...)
	cmd.Path, cmd.Args = chain[0], chain
	return cmd, nil
}

// execStartError is the exit status of a command that could not start:
// 127 when the program is missing, 126 otherwise (as a shell says).
type execStartError struct {
	code int
	err  error
}

func (e *execStartError) Error() string { return e.err.Error() }

// lookPathIn finds file in the PATH of env, as the task would.
func lookPathIn(file string, env []string, dir string) (string, error) {
	if strings.Contains(file, "/") {
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		if st, err := os.Stat(file); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", &execStartError{127, fmt.Errorf("%s: no such executable", file)}
		}
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, file)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &execStartError{127, fmt.Errorf("%s: not found in the task's PATH %q", file, path)}
}

// runBeside runs cmd, forwarding stdin frames from r (when stdin is set)
// and sending its output and exit status as frames to fw. The command is
// killed (its whole process group) when the client goes away, ctx ends or
// the task ends.
func runBeside(ctx context.Context, cmd *exec.Cmd, stdin bool, r *bufio.Reader, fw *execstream.Writer, taskDone <-chan struct{}) int {
	cmd.Stdout, cmd.Stderr = fw.Stream(execstream.Stdout), fw.Stream(execstream.Stderr)
	// A background child holding stdout open must not hold the session.
	cmd.WaitDelay = 5 * time.Second
	var in io.WriteCloser
	if stdin {
		var err error
		if in, err = cmd.StdinPipe(); err != nil {
			return sendStartError(fw, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return sendStartError(fw, err)
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			t, p, err := execstream.Read(r)
			if err != nil {
				return
			}
			switch {
			case t == execstream.Stdin && in != nil:
				_, _ = in.Write(p)
			case t == execstream.StdinClose && in != nil:
				_ = in.Close()
			}
		}
	}()
	return waitBeside(ctx, cmd, gone, fw, taskDone, nil)
}

// waitBeside waits for cmd, killing its process group when the client is
// gone, ctx ends or the task ends, and sends the exit status. drained, if
// set, is waited for (briefly) before the status, so output comes first.
func waitBeside(ctx context.Context, cmd *exec.Cmd, gone <-chan struct{}, fw *execstream.Writer, taskDone <-chan struct{}, drained <-chan struct{}) int {
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-gone:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		return -1 // nobody to tell
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-waited
	case <-taskDone:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-waited
		_ = fw.Frame(execstream.Error, []byte("the task ended; the command was killed"))
	}
	if drained != nil {
		select {
		case <-drained:
		case <-time.After(2 * time.Second): // a background child still holds the terminal
		}
	}
	code := exitStatus(cmd, err)
	_ = fw.Frame(execstream.Exit, execstream.ExitPayload(code))
	return code
}

// runBesideTTY runs cmd on a new pseudo-terminal of size sz: stdin frames
// are typed into it, Resize frames resize it, and what it shows comes back
// as Stdout frames (a terminal has one output). StdinClose types ^D.
func runBesideTTY(ctx context.Context, cmd *exec.Cmd, sz *pty.Winsize, r *bufio.Reader, fw *execstream.Writer, taskDone <-chan struct{}) int {
	// A session of its own with the terminal as controlling tty; its
	// process group is the session, so killing -pid still kills it all.
	cmd.SysProcAttr.Setpgid = false
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	ptmx, err := pty.StartWithAttrs(cmd, sz, cmd.SysProcAttr)
	if err != nil {
		return sendStartError(fw, err)
	}
	defer ptmx.Close()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(fw.Stream(execstream.Stdout), ptmx) // ends with EIO once the terminal is closed
	}()
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			t, p, err := execstream.Read(r)
			if err != nil {
				return
			}
			switch t {
			case execstream.Stdin:
				_, _ = ptmx.Write(p)
			case execstream.StdinClose:
				_, _ = ptmx.Write([]byte{4}) // ^D
			case execstream.Resize:
				if cols, rows, err := execstream.ParseResize(p); err == nil {
					_ = pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
				}
			}
		}
	}()
	return waitBeside(ctx, cmd, gone, fw, taskDone, drained)
}

func sendStartError(fw *execstream.Writer, err error) int {
	code := 126
	var se *execStartError
	if errors.As(err, &se) {
		code = se.code
	} else if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		code = 127
	}
	_ = fw.Frame(execstream.Error, []byte(err.Error()))
	_ = fw.Frame(execstream.Exit, execstream.ExitPayload(code))
	return code
}

// exitStatus is the shell's view of how cmd ended: its code, or 128+N
// after signal N.
func exitStatus(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return 126
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if c := cmd.ProcessState.ExitCode(); c >= 0 && c <= 255 {
		return c
	}
	if err != nil {
		return 126
	}
	return 0
}

func readEnviron(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// procIDs reads the real uid and gid from /proc/PID/status.
func procIDs(path string) (uid, gid int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	uid, gid = -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Uid:":
			uid, _ = strconv.Atoi(f[1])
		case "Gid:":
			gid, _ = strconv.Atoi(f[1])
		}
	}
	if uid < 0 || gid < 0 {
		return 0, 0, fmt.Errorf("%s has no Uid or Gid line", path)
	}
	return uid, gid, nil
}

// cgroupJoins lists the cgroup.procs files that put a process where pid
// is: one per hierarchy in which pid's cgroup differs from the agent's.
func cgroupJoins(pid int) ([]string, error) {
	theirs, err := readProcCgroup("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil, err
	}
	ours, err := readProcCgroup("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMounts("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var joins []string
	for hier, path := range theirs {
		if ours[hier] == path {
			continue
		}
		m, ok := mounts[hier]
		if !ok {
			continue // a hierarchy not mounted here cannot be joined (nor limit anything)
		}
		rel, ok := strings.CutPrefix(path, m.root)
		if !ok {
			continue
		}
		joins = append(joins, filepath.Join(m.dir, rel, "cgroup.procs"))
	}
	return joins, nil
}

// readProcCgroup maps a hierarchy's controllers ("" for cgroup v2) to the
// process's cgroup path in it.
func readProcCgroup(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out, nil
}

type cgroupMount struct{ dir, root string }

// cgroupMounts maps hierarchies (as /proc/PID/cgroup names them) to where
// they are mounted.
func cgroupMounts(path string) (map[string]cgroupMount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]cgroupMount{}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		m := cgroupMount{dir: f[4], root: strings.TrimSuffix(f[3], "/")}
		switch g[0] {
		case "cgroup2":
			if _, seen := out[""]; !seen {
				out[""] = m
			}
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(g[2], ",") {
				switch o {
				case "rw", "ro", "nosuid", "nodev", "noexec", "relatime", "clone_children", "xattr":
				default:
					if !strings.HasPrefix(o, "release_agent=") {
						ctrls = append(ctrls, o)
					}
				}
			}
			key := strings.Join(ctrls, ",")
			if _, seen := out[key]; !seen {
				out[key] = m
			}
		}
	}
	return out, nil
}

// foreignNamespaces gives nsenter's flags for every namespace of pid that
// differs from the agent's.
func foreignNamespaces(pid int) ([]string, error) {
	var flags []string
	for _, ns := range []struct{ name, flag string }{
		{"mnt", "--mount"}, {"uts", "--uts"}, {"ipc", "--ipc"}, {"net", "--net"}, {"pid", "--pid"}, {"user", "--user"}, {"cgroup", "--cgroup"},
	} {
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && ns.name != "mnt" {
				continue // a kernel without this namespace type
			}
			return nil, fmt.Errorf("reading the task's namespaces: %w", err)
		}
		ours, err := os.Readlink("/proc/self/ns/" + ns.name)
		if err != nil {
			continue
		}
		if theirs != ours {
			flags = append(flags, ns.flag)
		}
	}
	return flags, nil
}

func execHTTPError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
