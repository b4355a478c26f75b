package main

// The command tree, on github.com/spf13/cobra: dispatch, help, "did you
// mean" suggestions and shell completion come from cobra; each command's
// flags are still declared on a standard flag.FlagSet by the command's own
// file (so parse functions stay testable on their own) and handed to cobra
// with pflag's AddGoFlagSet.
//
// Single-dash long flags. corral has always taken Go-style flags
// (`-master 127.0.0.1:5050`, `-work-dir D`), and scripts, tests and the
// README use them; pflag reads `-master` as the shorthands -m -a -s ...
// normalizeArgs therefore rewrites `-name` and `-name=value` to `--name`
// when, and only when, `name` is a long flag of the command being run
// (walking the subcommand path first). Shorthands (`-f`, `-q`, `-h`) and
// everything after `--` or after a command's first argument when the
// command stops at it (`corral exec ls -la`) are left alone. Both spellings
// are documented; `--name` is the canonical one in help texts.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const (
	// annUsage holds a command's usage text, printed by -h and after a
	// usage error.
	annUsage = "corral/usage"
	// annUsageExit is the exit code of a usage error (2; 125 for exec).
	annUsageExit = "corral/usage-exit"
	// annStopAtArg marks commands whose flags end at the first argument
	// (exec: what follows is the task's command line).
	annStopAtArg = "corral/stop-at-arg"
)

// exitCode carries a command's exit status out of cobra's RunE.
type exitCode int

func (e exitCode) Error() string { return "exit " + strconv.Itoa(int(e)) }

// usageError is a command line the user must fix (exit 2, or the command's
// usage exit code).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// leaf is the shape of every runnable command: it returns an exit status.
type leaf func(cmd *cobra.Command, args []string) int

// command makes a cobra command whose flags are fs (may be nil), whose help
// is usage, and which runs fn.
func command(use, short, usage string, fs *flag.FlagSet, fn leaf) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		// "did you mean" for subcommands within two edits
		SuggestionsMinimumDistance: 2,
		Annotations: map[string]string{
			annUsage: usage,
		},
	}
	if fs != nil {
		c.Flags().AddGoFlagSet(fs)
	}
	if fn != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if code := fn(cmd, args); code != 0 {
				return exitCode(code)
			}
			return nil
		}
	}
	return c
}

// group makes a command that only holds subcommands; run without one (or
// with an unknown one) it says so and suggests the nearest.
func group(use, short, usage string, subs ...*cobra.Command) *cobra.Command {
	c := command(use, short, usage, nil, func(cmd *cobra.Command, args []string) int {
		if len(args) == 0 {
			return failUsage(cmd, usagef("missing subcommand: %s", subNames(cmd)))
		}
		return failUsage(cmd, unknownSub(cmd, args[0]))
	})
	for _, s := range subs {
		if s.Annotations[annUsage] == "" {
			s.Annotations[annUsage] = usage
		}
		c.AddCommand(s)
	}
	return c
}

func subNames(cmd *cobra.Command) string {
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return strings.Join(names, ", ")
}

// unknownSub is the error for `corral GROUP TYPO`, with cobra's suggestions.
func unknownSub(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown subcommand %q: use %s", name, subNames(cmd))
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return usagef("%s", msg)
}

// usageOf is the usage text of cmd (or the nearest parent that has one).
func usageOf(cmd *cobra.Command) string {
	for c := cmd; c != nil; c = c.Parent() {
		if u := c.Annotations[annUsage]; u != "" {
			return u
		}
	}
	return ""
}

func usageExit(cmd *cobra.Command) int {
	for c := cmd; c != nil; c = c.Parent() {
		if s := c.Annotations[annUsageExit]; s != "" {
			n, _ := strconv.Atoi(s)
			return n
		}
	}
	return 2
}

// failUsage prints "corral CMD: err" and the usage text on stderr and
// returns the command's usage exit code.
func failUsage(cmd *cobra.Command, err error) int {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n\n%s", groupPath(cmd), err, usageOf(cmd))
	return usageExit(cmd)
}

// groupPath names the command in messages: "corral role" for `corral role
// set`, as the usage text covers the whole group.
func groupPath(cmd *cobra.Command) string {
	if cmd.Parent() != nil && cmd.Parent().Parent() != nil && cmd.Annotations[annUsage] == cmd.Parent().Annotations[annUsage] {
		return groupPath(cmd.Parent())
	}
	return cmd.CommandPath()
}

// flagError explains a flag the parser refused; a duration without a unit
// gets a hint, since `-timeout 5` is the usual slip.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, ` for "--`); ok {
		name, _, _ := strings.Cut(rest, `"`)
		if f := cmd.Flags().Lookup(name); f != nil && f.Value.Type() == "duration" {
			val := ""
			if _, v, ok := strings.Cut(msg, `invalid argument "`); ok {
				val, _, _ = strings.Cut(v, `"`)
			}
			msg = fmt.Sprintf("--%s %q is not a duration: give a number with a unit, e.g. 5s, 10m, 1h30m", name, val)
		}
	}
	return usagef("%s", msg)
}

// run builds the command tree, runs args through it and returns the exit
// status: 0 ok, 1 the operation failed, 2 bad usage (exec: see execUsage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	root := newRootCmd(ctx, stdout, stderr)
	root.SetArgs(normalizeArgs(root, args))
	cmd, err := root.ExecuteC()
	var code exitCode
	var uerr *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &uerr):
		return failUsage(cmd, err)
	case strings.HasPrefix(err.Error(), "unknown command "):
		// cobra's own "unknown command ... Did you mean this?" message
		fmt.Fprintf(stderr, "corral: %v\n%s", err, usage)
		return 2
	}
	return failUsage(cmd, flagError(cmd, err))
}

// normalizeArgs rewrites single-dash long flags to pflag's double dash; see
// the file comment.
func normalizeArgs(root *cobra.Command, args []string) []string {
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		return args // shell completion passes the words as typed
	}
	out := make([]string, 0, len(args))
	cmd := root
	seenArg := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || (seenArg && cmd.Annotations[annStopAtArg] != "") {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if !seenArg {
				if sub := findSub(cmd, a); sub != nil {
					cmd = sub
					out = append(out, a)
					continue
				}
			}
			seenArg = true
			out = append(out, a)
			continue
		}
		if strings.HasPrefix(a, "--") {
			out = append(out, a)
			if f := lookupFlag(cmd, strings.TrimPrefix(a, "--")); f != nil && f.NoOptDefVal == "" && !strings.Contains(a, "=") && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		name := strings.TrimPrefix(a, "-")
		if n, _, _ := strings.Cut(name, "="); len(n) > 1 {
			if f := lookupFlag(cmd, name); f != nil {
				out = append(out, "-"+a)
				if f.NoOptDefVal == "" && !strings.Contains(name, "=") && i+1 < len(args) {
					i++
					out = append(out, args[i])
				}
				continue
			}
		} else if f := lookupFlag(cmd, n); f != nil && f.NoOptDefVal == "" && !strings.Contains(name, "=") && len(name) == 1 && i+1 < len(args) {
			out = append(out, a, args[i+1]) // -x VALUE: keep VALUE verbatim
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, s := range cmd.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

// lookupFlag finds a long flag NAME (or NAME=value) of cmd, its persistent
// flags or its parents'.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	name, _, _ = strings.Cut(name, "=")
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	for c := cmd; c != nil; c = c.Parent() {
		if f := c.PersistentFlags().Lookup(name); f != nil {
			return f
		}
	}
	if name == "help" {
		return &pflag.Flag{Name: "help", NoOptDefVal: "true"}
	}
	return nil
}

// helpFunc prints a command's usage text (the hand-written one where the
// command has it) on stdout; -h, --help and `corral help CMD` all exit 0.
func helpFunc(cmd *cobra.Command, _ []string) {
	w := cmd.OutOrStdout()
	if u := usageOf(cmd); u != "" && cmd.Parent() != nil {
		fmt.Fprint(w, u)
		if cmd.Annotations[annUsage] != "" && !strings.Contains(u, "Flags:") && cmd.HasAvailableLocalFlags() &&
			cmd.Annotations["corral/flags-in-usage"] == "" {
			fmt.Fprintf(w, "\nFlags (-name and --name both work):\n%s", cmd.LocalFlags().FlagUsages())
		}
		return
	}
	if cmd.Parent() == nil {
		fmt.Fprint(w, usage)
		return
	}
	fmt.Fprint(w, cmd.UsageString())
}

// outputFlags declares -json and --output json|table on fs, both setting
// *asJSON: every read command takes them.
func outputFlags(fs *flag.FlagSet, asJSON *bool) {
	fs.BoolVar(asJSON, "json", false, "print JSON (same as --output json)")
	fs.Func("output", "output format: table (default) or json", func(s string) error {
		switch s {
		case "json":
			*asJSON = true
		case "table":
			*asJSON = false
		default:
			return fmt.Errorf("want json or table, got %q", s)
		}
		return nil
	})
}
