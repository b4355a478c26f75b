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

	"github.com/corral-project/corral/core/master"
)

const taskUsage = `usage: corral task list [-framework ID] [-state STATE] [-master ADDR] [-json]
       corral task show TASK [-framework ID] [-master ADDR] [-json]
       corral task kill TASK [-framework ID] [-grace SECONDS] [-master ADDR]
       corral task logs TASK [-framework ID] [-f] [-stderr] [-master ADDR]

TASK is a task ID; -framework picks the framework when two frameworks use
the same task ID. list shows live and completed tasks. logs prints the
task's stdout (or stderr) from its sandbox; -f follows it until the task
ends.
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

// parseOp parses "VERB [ARG] [flags]" with flags before or after ARG.
func parseOp(name string, args []string, verbs map[string]int, extra func(fs *flag.FlagSet, f *opFlags)) (string, []string, *opFlags, error) {
	if len(args) == 0 {
		return "", nil, nil, usagef("missing subcommand")
	}
	verb := args[0]
	if verb == "-h" || verb == "-help" || verb == "--help" || verb == "help" {
		return "", nil, nil, flag.ErrHelp
	}
	want, ok := verbs[verb]
	if !ok {
		return "", nil, nil, usagef("unknown subcommand %q", verb)
	}
	f := &opFlags{}
	fs := flag.NewFlagSet("corral "+name+" "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.master, "master", envOr("CORRAL_MASTER", "127.0.0.1:5050"), "")
	fs.BoolVar(&f.json, "json", false, "")
	if extra != nil {
		extra(fs, f)
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return "", nil, nil, err
	}
	if len(pos) != want {
		if want == 0 {
			return "", nil, nil, usagef("%s takes no arguments, got %q", verb, pos)
		}
		return "", nil, nil, usagef("%s takes %d argument, got %d", verb, want, len(pos))
	}
	return verb, pos, f, nil
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

func runTask(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	verb, pos, f, err := parseOp("task", args, map[string]int{"list": 0, "show": 1, "kill": 1, "logs": 1},
		func(fs *flag.FlagSet, f *opFlags) {
			fs.StringVar(&f.framework, "framework", "", "")
			fs.StringVar(&f.state, "state", "", "")
			fs.Float64Var(&f.grace, "grace", 0, "")
			fs.BoolVar(&f.follow, "f", false, "")
			fs.BoolVar(&f.stderr, "stderr", false, "")
		})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, taskUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral task: %v\n\n%s", err, taskUsage)
		return 2
	}
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

func runFramework(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	verb, pos, f, err := parseOp("framework", args, map[string]int{"list": 0, "show": 1, "teardown": 1}, nil)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, frameworkUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral framework: %v\n\n%s", err, frameworkUsage)
		return 2
	}
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

// isAgentOp says whether `corral agent ARGS` is an operator command rather
// than running an agent.
func isAgentOp(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "list", "show", "drain", "undrain":
		return true
	}
	return false
}

func runAgentOp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var deadline time.Duration
	verb, pos, f, err := parseOp("agent", args, map[string]int{"list": 0, "show": 1, "drain": 1, "undrain": 1},
		func(fs *flag.FlagSet, f *opFlags) { fs.DurationVar(&deadline, "deadline", 0, "") })
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, agentOpsUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral agent: %v\n\n%s", err, agentOpsUsage)
		return 2
	}
	switch verb {
	case "drain":
		if deadline < 0 {
			fmt.Fprintf(stderr, "corral agent drain: -deadline must not be negative\n")
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
