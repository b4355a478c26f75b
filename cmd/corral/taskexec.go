package main

// corral task exec TASK -- COMMAND: run a command beside a running task
// (its cgroups, namespaces, user, environment and sandbox; see
// core/agent/taskexec.go) through the master, streaming its output and
// exiting with its status, as `nomad alloc exec` and `kubectl exec` do.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/corral-project/corral/core/agent/execstream"
)

const taskExecUsage = `usage: corral task exec TASK [-framework ID] [-i] [-t] [-master ADDR] -- COMMAND [ARGS...]

Runs COMMAND beside the running task TASK on its agent: in the task's
cgroups (so its usage counts against the task's limits), in its namespaces
when it has its own (a runc container), as its user, with its environment,
in its sandbox directory. COMMAND's stdout and stderr stream here; with -i
this command's stdin is forwarded to it (until EOF). With -t it runs on a
pseudo-terminal, for an interactive shell: corral task exec -t TASK -- sh

  -framework ID   the task's framework, when two frameworks use the same task ID
  -i, --stdin     forward stdin to the command
  -t, --tty       run the command on a terminal (stdin must be one; implies -i)
  -master ADDR    master address (default 127.0.0.1:5050, env CORRAL_MASTER)

Exit codes:
  0-255  the command's own exit status (128+N if it died of signal N;
         126 it could not start, 127 it was not found in the task's PATH)
  125    corral could not run it: bad usage, master or agent unreachable,
         task unknown, ended or not started
  130    interrupted: the command was killed
`

func taskExecCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var (
		masterAddr, framework string
		stdin, tty            bool
	)
	fs := flag.NewFlagSet("corral task exec", flag.ContinueOnError)
	fs.StringVar(&masterAddr, "master", envOr("CORRAL_MASTER", "127.0.0.1:5050"), "master address (env CORRAL_MASTER)")
	fs.StringVar(&framework, "framework", "", "the task's framework, when two frameworks use the same task ID")
	fs.BoolVar(&stdin, "i", false, "forward stdin to the command")
	fs.BoolVar(&stdin, "stdin", false, "forward stdin to the command")
	fs.BoolVar(&tty, "t", false, "run the command on a terminal (implies -i)")
	fs.BoolVar(&tty, "tty", false, "run the command on a terminal (implies -i)")
	c := command("exec TASK -- COMMAND [ARGS...]", "run a command beside a running task", taskExecUsage, fs,
		func(cmd *cobra.Command, args []string) int {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0:
				return failUsage(cmd, usagef("no task given"))
			case dash == 0:
				return failUsage(cmd, usagef("give the task before --"))
			case len(args) < 2:
				return failUsage(cmd, usagef("no command given: corral task exec TASK -- COMMAND"))
			case dash > 1:
				return failUsage(cmd, usagef("one task, then -- and the command; got %q before --", args[:dash]))
			case masterAddr == "":
				return failUsage(cmd, usagef("-master is empty"))
			}
			var in io.Reader
			var term *os.File
			if tty {
				if !isTTY(os.Stdin) {
					return failUsage(cmd, usagef("-t needs a terminal on stdin; use -i to forward a pipe or a file"))
				}
				term = os.Stdin
			}
			if stdin || tty {
				in = os.Stdin
			}
			return taskExec(ctx, masterAddr, framework, args[0], args[1:], in, term, stdout, stderr)
		})
	c.Annotations[annUsageExit] = strconv.Itoa(exitNotPlaced)
	c.Annotations["corral/flags-in-usage"] = "true"
	c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault // the command's own words
		}
		return completeIDs("task", masterAddr), cobra.ShellCompDirectiveNoFileComp
	}
	return c
}

// taskExec finds the task, opens the session through the master and
// relays it; the result is the command's exit status.
func taskExec(ctx context.Context, masterAddr, framework, taskID string, argv []string, stdin io.Reader, tty *os.File, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "corral task exec: "+format+"\n", a...)
		return exitNotPlaced
	}
	st, _, err := fetchState(ctx, masterAddr)
	if err != nil {
		return fail("%v", err)
	}
	ref, err := findTask(st, taskID, framework)
	if err != nil {
		return fail("%v", err)
	}
	if !ref.Live || ref.Task.State != "TASK_RUNNING" {
		return fail("task %s is %s, not running", ref.Task.ID, ref.Task.State)
	}
	q := url.Values{"cmd": argv}
	if stdin != nil {
		q.Set("stdin", "1")
	}
	if tty != nil {
		q.Set("tty", "1")
		if cols, rows, err := term.GetSize(int(tty.Fd())); err == nil {
			q.Set("cols", strconv.Itoa(cols))
			q.Set("rows", strconv.Itoa(rows))
		}
	}
	conn, err := openExecSession(ctx, masterAddr, ref.Task.AgentID, ref.Framework.ID, ref.Task.ID, q)
	if err != nil {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return fail("%v", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fw := execstream.NewWriter(conn)
	if tty != nil {
		// Raw mode: keys (Ctrl-C too) go to the remote terminal as typed.
		if old, err := term.MakeRaw(int(tty.Fd())); err == nil {
			defer func() { _ = term.Restore(int(tty.Fd()), old) }()
		}
		stopResize := forwardResizes(tty, fw)
		defer stopResize()
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(fw.Stream(execstream.Stdin), stdin)
			_ = fw.Frame(execstream.StdinClose, nil)
		}()
	}
	r := bufio.NewReader(conn)
	for {
		t, p, err := execstream.Read(r)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(stderr, "corral task exec: interrupted; the command was killed")
				return exitInterrupted
			}
			return fail("the session ended without an exit status: %v", err)
		}
		switch t {
		case execstream.Stdout:
			_, _ = stdout.Write(p)
		case execstream.Stderr:
			_, _ = stderr.Write(p)
		case execstream.Error:
			fmt.Fprintf(stderr, "corral task exec: %s\n", p)
		case execstream.Exit:
			code, err := execstream.ParseExit(p)
			if err != nil {
				return fail("%v", err)
			}
			return code
		}
	}
}

// openExecSession opens a task exec session with the agent of a task,
// through the master at masterAddr; q is the agent's query (cmd, stdin,
// tty). The connection carries execstream frames.
func openExecSession(ctx context.Context, masterAddr, agentID, frameworkID, taskID string, q url.Values) (io.ReadWriteCloser, error) {
	addr, err := resolveMaster(ctx, masterAddr)
	if err != nil {
		return nil, err
	}
	client, base, err := upgradeClient(addr)
	if err != nil {
		return nil, err
	}
	u := base + "/api/v1/agents/" + url.PathEscape(agentID) + "/exec/" + url.PathEscape(frameworkID) + "/" +
		url.PathEscape(taskID) + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", execstream.Protocol)
	resp, err := client.Do(req)
	if err != nil {
		return nil, unreachable(addr, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		if err := plainToTLS(addr, resp.StatusCode, raw); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(raw)))
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, errors.New("the master's answer cannot carry a session")
	}
	return conn, nil
}

// upgradeClient is an HTTP/1.1 client for the master at addr (an upgrade
// cannot ride HTTP/2) with the CLI's TLS settings.
func upgradeClient(addr string) (*http.Client, string, error) {
	_, base, err := masterHTTP(addr)
	if err != nil {
		return nil, "", err
	}
	tc, err := cliTLS()
	if err != nil {
		return nil, "", err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	if tc != nil {
		tc = tc.Clone()
		tc.NextProtos = []string{"http/1.1"}
		tr.TLSClientConfig = tc
	}
	if base == "" {
		return nil, "", errors.New("no master address")
	}
	return &http.Client{Transport: tr}, base, nil
}

func isTTY(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// forwardResizes sends the terminal's new size on every SIGWINCH.
func forwardResizes(tty *os.File, fw *execstream.Writer) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				if cols, rows, err := term.GetSize(int(tty.Fd())); err == nil {
					_ = fw.Frame(execstream.Resize, execstream.ResizePayload(cols, rows))
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
