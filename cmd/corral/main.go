// Command corral runs corral's master and agent, and talks to a cluster.
//
//	corral dev      one master and one agent in one process (embedded defaults)
//	corral master   a master
//	corral agent    an agent
//	corral exec     run one command as a task and stream its output
//	corral status   show agents, frameworks, tasks, roles and the allocator
//	corral role     list, show and change roles (weight, priority, quota)
//	corral allocator list, show and hot-swap the allocation policy
//	corral task     list, show, kill tasks and read their logs
//	corral framework list, show and tear down frameworks
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
)

const usage = `usage: corral <command> [flags]

commands:
  dev      run a master and an agent in one process (embedded defaults)
  master   run a master            (-config master.hcl)
  agent    run an agent            (-config agent.hcl); agent list|show|drain|undrain manage agents
  exec     run a command as a task: corral exec [flags] -- cmd [args...]
  status   show the cluster        (-master 127.0.0.1:5050)
  role     list, show or change roles: corral role list|show|set [NAME] [flags]
  allocator list, show or swap the allocator: corral allocator list|show|set|promote|abort
  task     tasks: corral task list|show|kill|logs [TASK] [flags]
  framework frameworks: corral framework list|show|teardown [ID]
  tls      make a CA and certificates: corral tls ca create | corral tls cert create -server|-agent|-client
  sim      simulate a trace under allocation policies: corral sim -trace FILE -out DIR
  trace    record a live master's workload as a trace: corral trace record -duration 1h -out FILE
  version  print the version

Run 'corral <command> -h' for the flags of a command.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDaemon(ctx, "dev", rest, stderr)
	case "master":
		return runDaemon(ctx, "master", rest, stderr)
	case "agent":
		if isAgentOp(rest) {
			return runAgentOp(ctx, rest, stdout, stderr)
		}
		return runDaemon(ctx, "agent", rest, stderr)
	case "exec":
		return runExec(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "role":
		return runRole(ctx, rest, stdout, stderr)
	case "allocator":
		return runAllocator(ctx, rest, stdout, stderr)
	case "task":
		return runTask(ctx, rest, stdout, stderr)
	case "framework":
		return runFramework(ctx, rest, stdout, stderr)
	case "tls":
		return runTLS(rest, stdout, stderr)
	case "sim":
		return runSim(ctx, rest, stdout, stderr)
	case "trace":
		return runTrace(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		printVersion(stdout)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "corral: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// printVersion says what this binary is: the release, the commit it was
// built from (when the build recorded it), the Go version, and the plugin
// API versions it speaks, which decide which plugin binaries it accepts.
func printVersion(w io.Writer) {
	fmt.Fprintln(w, "corral", version)
	commit, modified := "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "commit   %s\n", commit)
	fmt.Fprintf(w, "go       %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "plugins  allocator %s, isolator %s, executor %s\n", strings.Join(allocator.APIVersions, ","),
		strings.Join(isolator.APIVersions, ","), strings.Join(executor.APIVersions, ","))
}
