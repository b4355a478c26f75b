package main

// corral exec -i: the task's stdin is a FIFO in its sandbox that the task
// opens before it runs the command (stdinWrapper), and corral exec writes
// its own stdin into it through a task exec session (`cat > FIFO` beside
// the task, in its namespaces), so stdin travels the same authenticated
// path through the master as task exec does. EOF here is EOF there.

import (
	"bufio"
	"context"
	"io"
	"net/url"

	"github.com/corral-project/corral/core/agent/execstream"
)

// stdinFIFO is the FIFO's name in the sandbox.
const stdinFIFO = ".corral-stdin"

// stdinWrapper turns argv into a command that makes the FIFO and runs argv
// with it as stdin.
func stdinWrapper(argv []string) (string, []string) {
	script := `f="${CORRAL_SANDBOX:-$PWD}/` + stdinFIFO + `"; mkfifo -m 600 "$f" || exit 126; exec "$@" < "$f"`
	return "/bin/sh", append([]string{"-c", script, "corral-exec-stdin"}, argv...)
}

// feedStdin writes in to the task's FIFO until EOF; warn reports failures.
func feedStdin(ctx context.Context, masterAddr, agentID, frameworkID, taskID string, in io.Reader, warn func(string, ...any)) {
	// The task reports running before its shell has made the FIFO: wait
	// for it (the session ends with the task if it never comes).
	q := url.Values{"cmd": {"/bin/sh", "-c", `f="${CORRAL_SANDBOX:-$PWD}/` + stdinFIFO + `"; while [ ! -p "$f" ]; do sleep 0.05; done; exec cat > "$f"`},
		"stdin": {"1"}}
	conn, err := openExecSession(ctx, masterAddr, agentID, frameworkID, taskID, q)
	if err != nil {
		if ctx.Err() == nil {
			warn("forwarding stdin: %v", err)
		}
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fw := execstream.NewWriter(conn)
	go func() {
		_, _ = io.Copy(fw.Stream(execstream.Stdin), in)
		_ = fw.Frame(execstream.StdinClose, nil)
	}()
	r := bufio.NewReader(conn)
	for {
		t, p, err := execstream.Read(r)
		if err != nil {
			return // the task ended (and the session with it), or we did
		}
		switch t {
		case execstream.Error, execstream.Stderr:
			warn("forwarding stdin: %s", p)
		case execstream.Exit:
			if code, _ := execstream.ParseExit(p); code != 0 {
				warn("forwarding stdin: the writer beside the task exited %d", code)
			}
			return
		}
	}
}

// startStdin starts feeding stdin once, when the task runs.
func (f *execFramework) startStdin(ctx context.Context, in io.Reader) {
	f.mu.Lock()
	start := f.o.stdin && !f.stdinStarted && f.frameworkID != "" && f.agentID != "" &&
		f.status != nil && f.status.GetState().String() == "TASK_RUNNING"
	if start {
		f.stdinStarted = true
	}
	fwID, agentID := f.frameworkID, f.agentID
	f.mu.Unlock()
	if start {
		go feedStdin(ctx, f.o.master, agentID, fwID, f.taskID, in, f.warn)
	}
}
