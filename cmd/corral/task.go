package main

// corral task and corral framework: what an operator does to running work
// through the master's operator API: list, show, kill, read logs, tear a
// framework down.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/core/master"
)

const taskUsage = `usage: corral task list [-framework ID] [-state STATE] [-master ADDR] [-json]
       corral task show TASK [-framework ID] [-master ADDR] [-json]
       corral task kill TASK [-framework ID] [-grace SECONDS] [-master ADDR]
       corral task logs TASK [-framework ID] [-f] [-stderr] [-master ADDR]
       corral task exec TASK [-framework ID] [-i] [-master ADDR] -- COMMAND [ARGS...]

TASK is a task ID; -framework picks the framework when two frameworks use
the same task ID. list shows live and completed tasks. logs prints the
task's stdout (or stderr) from its sandbox; -f follows it until the task
ends. exec runs a command beside the running task (corral task exec -h).
list and show print JSON with -json (or --output json).
`

const frameworkUsage = `usage: corral framework list [-master ADDR] [-json]
       corral framework show ID [-master ADDR] [-json]
       corral framework teardown ID [-master ADDR]

teardown kills the framework's tasks and removes it, as Mesos' teardown does.
`

// opFlags are the flags every operator subcommand takes.
type opFlags struct {
	master, framework, state string
	json, follow, stderr     bool
	grace                    float64
}

// opFlagSet declares the flags of `corral GROUP VERB`: -master and the
// output flags on every one, plus what extra adds.
func opFlagSet(group, verb string, extra func(fs *flag.FlagSet, f *opFlags)) (*flag.FlagSet, *opFlags) {
	f := &opFlags{}
	fs := flag.NewFlagSet("corral "+group+" "+verb, flag.ContinueOnError)
	fs.StringVar(&f.master, "master", envOr("CORRAL_MASTER", "127.0.0.1:5050"), "master address: host:port, a list, or consul://host:port/prefix (env CORRAL_MASTER)")
	if verb == "list" || verb == "show" {
		outputFlags(fs, &f.json)
	}
	if extra != nil {
		extra(fs, f)
	}
	return fs, f
}

// opCmd is one operator subcommand taking nargs positional arguments.
func opCmd(group, verb, short string, nargs int, extra func(fs *flag.FlagSet, f *opFlags),
	do func(cmd *cobra.Command, pos []string, f *opFlags) int) *cobra.Command {
	fs, f := opFlagSet(group, verb, extra)
	use := verb
	if nargs == 1 {
		use += " " + strings.ToUpper(group)
	}
	c := command(use, short, "", fs, func(cmd *cobra.Command, args []string) int {
		if len(args) != nargs {
			if nargs == 0 {
				return failUsage(cmd, usagef("%s takes no arguments, got %q", verb, args))
			}
			return failUsage(cmd, usagef("%s takes %d argument, got %d", verb, nargs, len(args)))
		}
		if f.master == "" {
			return failUsage(cmd, usagef("-master is empty"))
		}
		return do(cmd, args, f)
	})
	if nargs == 1 {
		c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeIDs(group, f.master), cobra.ShellCompDirectiveNoFileComp
		}
	}
	return c
}

// completeIDs lists what a GROUP command takes (agent, task or framework
// IDs, with a description) from the master's state, for shell completion;
// nothing when the master does not answer within a moment.
func completeIDs(group, masterAddr string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, _, err := fetchState(ctx, masterAddr)
	if err != nil {
		return nil
	}
	var out []string
	switch group {
	case "agent":
		for _, a := range st.Agents {
			out = append(out, a.ID+"\t"+a.Hostname)
		}
	case "framework":
		for _, fw := range append(append([]master.FrameworkView{}, st.Frameworks...), st.CompletedFrameworks...) {
			out = append(out, fw.ID+"\t"+fw.Name)
		}
	case "task":
		for _, r := range allTaskRefs(st) {
			out = append(out, r.Task.ID+"\t"+strings.TrimPrefix(r.Task.State, "TASK_")+" ("+r.Framework.Name+")")
		}
	}
	return out
}

// parseInterleaved parses args with fs, letting flags come before or after
// the positional arguments (`corral role set eng/ml -weight 2` reads
// naturally, but the flag package stops at the first non-flag). It returns
// the positional arguments; flag.ErrHelp means usage was asked for, other
// errors are usage errors.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// taskRef is a task with its framework, as the state shows it.
type taskRef struct {
	Framework master.FrameworkView
	Task      master.TaskView
	Live      bool
}

func allTaskRefs(st master.State) []taskRef {
	var out []taskRef
	for _, f := range append(append([]master.FrameworkView{}, st.Frameworks...), st.CompletedFrameworks...) {
		for _, t := range f.Tasks {
			out = append(out, taskRef{f, t, true})
		}
		for _, t := range f.Completed {
			out = append(out, taskRef{f, t, false})
		}
	}
	return out
}

// findTask finds one task by ID (and framework, when given); an ambiguous
// or unknown ID is an error saying so. Live tasks win over completed ones
// of the same ID in the same framework (a relaunch).
func findTask(st master.State, id, framework string) (taskRef, error) {
	var found []taskRef
	for _, r := range allTaskRefs(st) {
		if r.Task.ID == id && (framework == "" || r.Framework.ID == framework) {
			found = append(found, r)
		}
	}
	fws := map[string]bool{}
	for _, r := range found {
		fws[r.Framework.ID] = true
	}
	switch {
	case len(found) == 0 && framework != "":
		return taskRef{}, fmt.Errorf("task %s of framework %s is not known to the master", id, framework)
	case len(found) == 0:
		return taskRef{}, fmt.Errorf("task %s is not known to the master", id)
	case len(fws) > 1:
		var ids []string
		for f := range fws {
			ids = append(ids, f)
		}
		sort.Strings(ids)
		return taskRef{}, fmt.Errorf("task ID %s is used by frameworks %s; pick one with -framework", id, strings.Join(ids, ", "))
	}
	for _, r := range found {
		if r.Live {
			return r, nil
		}
	}
	return found[len(found)-1], nil
}

func taskCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	fw := func(fs *flag.FlagSet, f *opFlags) {
		fs.StringVar(&f.framework, "framework", "", "the task's framework, when two frameworks use the same task ID")
	}
	do := func(cmd *cobra.Command, pos []string, f *opFlags) int {
		return taskOp(ctx, cmd.Name(), pos, f, stdout, stderr)
	}
	return group("task", "list, show, kill tasks, read their logs and run commands in them", taskUsage,
		opCmd("task", "list", "list live and completed tasks", 0, func(fs *flag.FlagSet, f *opFlags) {
			fw(fs, f)
			fs.StringVar(&f.state, "state", "", "only tasks in this state (running, finished, TASK_KILLED, ...)")
		}, do),
		opCmd("task", "show", "show a task and its state history", 1, fw, do),
		opCmd("task", "kill", "kill a task", 1, func(fs *flag.FlagSet, f *opFlags) {
			fw(fs, f)
			fs.Float64Var(&f.grace, "grace", 0, "seconds between SIGTERM and SIGKILL (default: the executor's)")
		}, do),
		opCmd("task", "logs", "print a task's stdout or stderr", 1, func(fs *flag.FlagSet, f *opFlags) {
			fw(fs, f)
			fs.BoolVar(&f.follow, "f", false, "follow the file until the task ends")
			fs.BoolVar(&f.follow, "follow", false, "follow the file until the task ends")
			fs.BoolVar(&f.stderr, "stderr", false, "stderr instead of stdout")
		}, do),
		taskExecCmd(ctx, stdout, stderr),
	)
}

// runTask runs `corral task ARGS`.
func runTask(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"task"}, args...), stdout, stderr)
}

// taskOp runs one task verb against the master's state.
func taskOp(ctx context.Context, verb string, pos []string, f *opFlags, stdout, stderr io.Writer) int {
	st, _, err := fetchState(ctx, f.master)
	if err != nil {
		fmt.Fprintf(stderr, "corral task %s: %v\n", verb, err)
		return 1
	}
	switch verb {
	case "list":
		var refs []taskRef
		state := strings.ToUpper(f.state)
		if state != "" && !strings.HasPrefix(state, "TASK_") {
			state = "TASK_" + state
		}
		for _, r := range allTaskRefs(st) {
			if (f.framework == "" || r.Framework.ID == f.framework) && (state == "" || r.Task.State == state) {
				refs = append(refs, r)
			}
		}
		if f.json {
			return writeJSONOut(stdout, stderr, nonNil(refs))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TASK\tFRAMEWORK\tAGENT\tSTATE\tRESOURCES")
		for _, r := range refs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Task.ID, r.Framework.Name, r.Task.AgentID, strings.TrimPrefix(r.Task.State, "TASK_"), r.Task.Resources)
		}
		_ = tw.Flush()
		return 0
	}
	ref, err := findTask(st, pos[0], f.framework)
	if err != nil {
		fmt.Fprintf(stderr, "corral task %s: %v\n", verb, err)
		return 1
	}
	switch verb {
	case "show":
		if f.json {
			return writeJSONOut(stdout, stderr, ref)
		}
		printTask(stdout, ref)
		return 0
	case "kill":
		if !ref.Live {
			fmt.Fprintf(stderr, "corral task kill: task %s already ended %s\n", ref.Task.ID, ref.Task.State)
			return 1
		}
		body := map[string]float64{"grace_seconds": f.grace}
		path := "/api/v1/tasks/" + ref.Framework.ID + "/" + ref.Task.ID + "/kill"
		if _, err := operatorAPI(ctx, f.master, http.MethodPost, path, body, 10*time.Second); err != nil {
			fmt.Fprintf(stderr, "corral task kill: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "kill sent to task %s on agent %s\n", ref.Task.ID, ref.Task.AgentID)
		return 0
	}
	return taskLogs(ctx, f, ref, stdout, stderr)
}

// taskLogs prints a sandbox file through the master, and with -f keeps
// polling until the task has ended and everything is read.
func taskLogs(ctx context.Context, f *opFlags, ref taskRef, stdout, stderr io.Writer) int {
	file := "stdout"
	if f.stderr {
		file = "stderr"
	}
	path := "/api/v1/agents/" + ref.Task.AgentID + "/sandbox/" + ref.Framework.ID + "/" +
		ref.Task.ID + "/" + file
	var offset int
	live := ref.Live
	for {
		chunk, err := operatorQuery(ctx, f.master, http.MethodGet, path, "offset="+fmt.Sprint(offset), nil, 30*time.Second)
		if err != nil {
			fmt.Fprintf(stderr, "corral task logs: %v\n", err)
			return 1
		}
		_, _ = stdout.Write(chunk)
		offset += len(chunk)
		if len(chunk) > 0 {
			continue // there may be more right away
		}
		if !f.follow || !live {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(500 * time.Millisecond):
		}
		// Once the task has ended, one more read gets what it wrote last.
		if st, _, err := fetchState(ctx, f.master); err == nil {
			if r, err := findTask(st, ref.Task.ID, ref.Framework.ID); err == nil && !r.Live {
				live = false
			}
		}
	}
}

func printTask(w io.Writer, r taskRef) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	t := r.Task
	rows := [][2]string{{"task", t.ID}, {"name", dash(t.Name)}, {"framework", r.Framework.ID + " (" + r.Framework.Name + ")"},
		{"agent", t.AgentID}, {"role", t.Role}, {"state", t.State}, {"resources", t.Resources}}
	if t.Message != "" {
		rows = append(rows, [2]string{"message", t.Message})
	}
	if t.ExitCode != nil {
		rows = append(rows, [2]string{"exit code", fmt.Sprint(*t.ExitCode)})
	}
	for _, kv := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nhistory:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range t.History {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.At.Format(time.TimeOnly), strings.TrimPrefix(h.State, "TASK_"), dash(h.Reason), h.Message)
	}
	_ = tw.Flush()
}

func frameworkCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	do := func(cmd *cobra.Command, pos []string, f *opFlags) int {
		return frameworkOp(ctx, cmd.Name(), pos, f, stdout, stderr)
	}
	return group("framework", "list, show and tear down frameworks", frameworkUsage,
		opCmd("framework", "list", "list active and completed frameworks", 0, nil, do),
		opCmd("framework", "show", "show a framework", 1, nil, do),
		opCmd("framework", "teardown", "kill a framework's tasks and remove it", 1, nil, do),
	)
}

// runFramework runs `corral framework ARGS`.
func runFramework(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"framework"}, args...), stdout, stderr)
}

func frameworkOp(ctx context.Context, verb string, pos []string, f *opFlags, stdout, stderr io.Writer) int {
	if verb == "teardown" {
		if _, err := operatorAPI(ctx, f.master, http.MethodPost, "/api/v1/frameworks/"+pos[0]+"/teardown", nil, 10*time.Second); err != nil {
			fmt.Fprintf(stderr, "corral framework teardown: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "framework %s torn down\n", pos[0])
		return 0
	}
	st, _, err := fetchState(ctx, f.master)
	if err != nil {
		fmt.Fprintf(stderr, "corral framework %s: %v\n", verb, err)
		return 1
	}
	all := append(append([]master.FrameworkView{}, st.Frameworks...), st.CompletedFrameworks...)
	if verb == "list" {
		if f.json {
			return writeJSONOut(stdout, stderr, nonNil(all))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FRAMEWORK\tNAME\tROLES\tSTATUS\tSHARE\tTASKS\tALLOCATED")
		for _, fw := range all {
			status := "disconnected"
			switch {
			case fw.RemovedAt != nil:
				status = "completed"
			case fw.Connected:
				status = "active"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f\t%d\t%s\n", fw.ID, fw.Name, strings.Join(fw.Roles, ","), status, fw.DominantShare,
				len(fw.Tasks), dash(fw.Allocated))
		}
		_ = tw.Flush()
		return 0
	}
	for _, fw := range all {
		if fw.ID == pos[0] {
			if f.json {
				return writeJSONOut(stdout, stderr, fw)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			for _, kv := range [][2]string{{"framework", fw.ID}, {"name", fw.Name}, {"roles", strings.Join(fw.Roles, ", ")},
				{"connected", fmt.Sprint(fw.Connected)}, {"dominant share", fmt.Sprintf("%.3f", fw.DominantShare)},
				{"allocated", dash(fw.Allocated)}, {"live tasks", fmt.Sprint(len(fw.Tasks))}, {"completed tasks", fmt.Sprint(len(fw.Completed))}} {
				fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
			}
			_ = tw.Flush()
			return 0
		}
	}
	fmt.Fprintf(stderr, "corral framework show: framework %s is not known to the master\n", pos[0])
	return 1
}

func writeJSONOut(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "corral: encoding JSON: %v\n", err)
		return 1
	}
	return 0
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

const agentOpsUsage = `usage: corral agent list [-master ADDR] [-json]
       corral agent show AGENT [-master ADDR] [-json]
       corral agent drain AGENT [-deadline 10m] [-master ADDR]
       corral agent undrain AGENT [-master ADDR]
       corral agent [-config agent.hcl] ...       run an agent (see corral agent -h)

drain stops offering the agent's resources, tells the frameworks of its
tasks when they will be killed, and kills what still runs at the deadline;
undrain makes the agent available again.
`

// agentCmd is corral agent: with flags only it runs an agent; list, show,
// drain and undrain manage agents through the master.
func agentCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var deadline time.Duration
	do := func(cmd *cobra.Command, pos []string, f *opFlags) int {
		return agentOp(ctx, cmd.Name(), pos, f, deadline, stdout, stderr)
	}
	fs, df := daemonFlagSet("agent")
	c := command("agent", "run an agent, or list, show, drain and undrain agents", agentOpsUsage, fs, func(cmd *cobra.Command, args []string) int {
		if len(args) > 0 {
			return failUsage(cmd, unknownSub(cmd, args[0]))
		}
		return startDaemon(ctx, *df, stderr)
	})
	c.Flags().SortFlags = false
	for _, s := range []*cobra.Command{
		opCmd("agent", "list", "list agents", 0, nil, do),
		opCmd("agent", "show", "show an agent and its tasks", 1, nil, do),
		opCmd("agent", "drain", "stop offering an agent and kill its tasks at a deadline", 1, func(fs *flag.FlagSet, f *opFlags) {
			fs.DurationVar(&deadline, "deadline", 0, "how long tasks may run before they are killed (e.g. 10m)")
		}, do),
		opCmd("agent", "undrain", "make a drained agent available again", 1, nil, do),
	} {
		s.Annotations[annUsage] = agentOpsUsage
		c.AddCommand(s)
	}
	return c
}

// runAgentOp runs `corral agent list|show|drain|undrain ARGS`.
func runAgentOp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"agent"}, args...), stdout, stderr)
}

func agentOp(ctx context.Context, verb string, pos []string, f *opFlags, deadline time.Duration, stdout, stderr io.Writer) int {
	switch verb {
	case "drain":
		if deadline < 0 {
			fmt.Fprintf(stderr, "corral agent drain: -deadline must not be negative\n\n%s", agentOpsUsage)
			return 2
		}
		body := map[string]string{"deadline": deadline.String()}
		if _, err := operatorAPI(ctx, f.master, http.MethodPost, "/api/v1/agents/"+pos[0]+"/drain", body, 10*time.Second); err != nil {
			fmt.Fprintf(stderr, "corral agent drain: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "agent %s draining; tasks still running in %s are killed\n", pos[0], deadline)
		return 0
	case "undrain":
		if _, err := operatorAPI(ctx, f.master, http.MethodPost, "/api/v1/agents/"+pos[0]+"/undrain", nil, 10*time.Second); err != nil {
			fmt.Fprintf(stderr, "corral agent undrain: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "agent %s available again\n", pos[0])
		return 0
	}
	st, _, err := fetchState(ctx, f.master)
	if err != nil {
		fmt.Fprintf(stderr, "corral agent %s: %v\n", verb, err)
		return 1
	}
	if verb == "list" {
		if f.json {
			return writeJSONOut(stdout, stderr, nonNil(st.Agents))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AGENT\tHOSTNAME\tSTATUS\tRESOURCES\tALLOCATED")
		for _, a := range st.Agents {
			status := "disconnected"
			switch {
			case a.Drain != "":
				status = a.Drain
			case a.Connected:
				status = "ready"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Hostname, status, a.Total, dash(a.Used))
		}
		_ = tw.Flush()
		return 0
	}
	for _, a := range st.Agents {
		if a.ID != pos[0] {
			continue
		}
		if f.json {
			return writeJSONOut(stdout, stderr, a)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		rows := [][2]string{{"agent", a.ID}, {"hostname", a.Hostname}, {"url", a.URL}, {"connected", fmt.Sprint(a.Connected)},
			{"resources", a.Total}, {"allocated", dash(a.Used)}}
		if a.Drain != "" {
			rows = append(rows, [2]string{"drain", a.Drain + " (deadline " + a.DrainDeadline.Format(time.TimeOnly) + ")"})
		}
		for _, kv := range rows {
			fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
		}
		_ = tw.Flush()
		n := 0
		for _, r := range allTaskRefs(st) {
			if r.Live && r.Task.AgentID == a.ID {
				if n == 0 {
					fmt.Fprintln(stdout, "\ntasks:")
				}
				n++
				fmt.Fprintf(stdout, "  %s  %s  %s\n", r.Task.ID, r.Framework.Name, strings.TrimPrefix(r.Task.State, "TASK_"))
			}
		}
		return 0
	}
	fmt.Fprintf(stderr, "corral agent show: agent %s is not registered\n", pos[0])
	return 1
}
