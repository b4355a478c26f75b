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
//	corral completion  shell completion scripts (bash, zsh, fish)
//
// The command tree is in cli.go.
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

	"github.com/spf13/cobra"

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
  task     tasks: corral task list|show|kill|logs|exec [TASK] [flags]
  framework frameworks: corral framework list|show|teardown [ID]
  tls      make a CA and certificates: corral tls ca create | corral tls cert create -server|-agent|-client
  sim      simulate a trace under allocation policies: corral sim -trace FILE -out DIR
  trace    record a live master's workload as a trace: corral trace record -duration 1h -out FILE
  version  print the version
  completion  shell completion: corral completion bash|zsh|fish (see corral completion -h)

Run 'corral <command> -h' (or 'corral help <command>') for the flags of a command.
Flags take one dash or two: -master ADDR and --master ADDR are the same.
Read commands print tables, or JSON with -json (--output json).
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// newRootCmd is the whole command tree. Commands write to stdout and
// stderr; ctx ends on Ctrl-C or SIGTERM.
func newRootCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "corral",
		Short:         "a cluster resource manager",
		SilenceErrors: true,
		SilenceUsage:  true,
		// Suggestions for mistyped commands ("did you mean"), after
		// cobra's default of two edits.
		SuggestionsMinimumDistance: 2,
		Annotations:                map[string]string{},
	}
	root.SetContext(ctx)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetHelpFunc(helpFunc)
	root.SetFlagErrorFunc(flagError)
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddCommand(
		daemonCmd(ctx, "dev", "run a master and an agent in one process (embedded defaults)"),
		daemonCmd(ctx, "master", "run a master"),
		agentCmd(ctx, stdout, stderr),
		execCmd(ctx, stdout, stderr),
		statusCmd(ctx, stdout, stderr),
		roleCmd(ctx, stdout, stderr),
		allocatorCmd(ctx, stdout, stderr),
		taskCmd(ctx, stdout, stderr),
		frameworkCmd(ctx, stdout, stderr),
		tlsCmd(stdout, stderr),
		simCmd(ctx, stdout, stderr),
		traceCmd(ctx, stdout, stderr),
		command("version", "print the version, commit, Go version and plugin API versions", "usage: corral version\n", nil,
			func(*cobra.Command, []string) int { printVersion(stdout); return 0 }),
	)
	// -version and --version, as before the command tree.
	root.Flags().Bool("version", false, "print the version")
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if v, _ := cmd.Flags().GetBool("version"); v {
			printVersion(stdout)
			return nil
		}
		fmt.Fprint(stderr, usage)
		return exitCode(2)
	}
	return root
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
