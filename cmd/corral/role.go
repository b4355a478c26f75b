package main

// corral role lists, shows and changes roles through the master's operator
// API (/api/v1/roles). Changes take effect at the next allocation cycle and
// the master keeps them across restarts.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/sdk/resources"
)

const roleUsage = `usage: corral role list [-master ADDR] [-json]
       corral role show NAME [-master ADDR] [-json]
       corral role set NAME [-weight W] [-priority P] [-guarantee R] [-limit R] [-master ADDR] [-json]

Roles are /-separated paths ("eng/ml"); a parent's share counts its subtree.
set changes only the settings given and prints the role as it now is:
  -weight W      share of the cluster relative to other roles (> 0)
  -priority P    tier for the priority allocator (higher is offered first)
  -guarantee R   quota guarantee, e.g. "cpus:8;mem:16384" ("" removes it)
  -limit R       quota limit, e.g. "cpus:32" ("" removes it)
Quota holds scalars only and the guarantee may not exceed the limit. The
master keeps changes across restarts.

  -master ADDR   master address (default 127.0.0.1:5050, env CORRAL_MASTER)
  -json          print the master's JSON answer as is

Exit status: 0 ok, 1 the master refused or could not be reached, 2 bad usage.
`

// roleView is one role as the operator API returns it. Resource fields are
// in the syntax of resources.Parse, "" when none.
type roleView struct {
	Name          string   `json:"name"`
	Weight        float64  `json:"weight"`
	Priority      int64    `json:"priority"`
	Guarantee     string   `json:"guarantee"`
	Limit         string   `json:"limit"`
	Allocated     string   `json:"allocated"`
	DominantShare float64  `json:"dominant_share"`
	Frameworks    []string `json:"frameworks"`
}

// roleUpdate is the body of PUT /api/v1/roles/{name}: only what the user
// gave is sent, since an absent field means unchanged (and an empty
// guarantee or limit means remove it).
type roleUpdate struct {
	Weight    *float64 `json:"weight,omitempty"`
	Priority  *int64   `json:"priority,omitempty"`
	Guarantee *string  `json:"guarantee,omitempty"`
	Limit     *string  `json:"limit,omitempty"`
}

// roleCommand is a parsed `corral role` command line.
type roleCommand struct {
	verb   string // list | show | set
	name   string
	master string
	json   bool
	update roleUpdate
}

// parseRoleArgs parses `corral role ...` (without "role"). Flags may come
// before or after NAME: `corral role set eng/ml -weight 2` reads naturally,
// but the flag package stops at the first argument that is not a flag.
// flag.ErrHelp means usage was asked for.
func parseRoleArgs(args []string, getenv func(string) string) (*roleCommand, error) {
	if len(args) == 0 {
		return nil, usagef("missing subcommand: list, show or set")
	}
	c := &roleCommand{verb: args[0]}
	switch c.verb {
	case "list", "show", "set":
	case "-h", "-help", "--help", "help":
		return nil, flag.ErrHelp
	default:
		return nil, usagef("unknown subcommand %q: use list, show or set", c.verb)
	}
	fs, finish := roleFlagSet(c.verb, getenv)
	fs.SetOutput(io.Discard) // runRole prints errors and usage itself
	positional, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return finish(positional, func(name string) bool { return set[name] })
}

// roleFlagSet declares the flags of `corral role VERB`; finish checks the
// command line once parsed (changed says whether a flag was given).
func roleFlagSet(verb string, getenv func(string) string) (*flag.FlagSet, func(positional []string, changed func(string) bool) (*roleCommand, error)) {
	c := &roleCommand{verb: verb}
	master := getenv("CORRAL_MASTER")
	if master == "" {
		master = "127.0.0.1:5050"
	}
	fs := flag.NewFlagSet("corral role "+c.verb, flag.ContinueOnError)
	fs.StringVar(&c.master, "master", master, "master address (env CORRAL_MASTER)")
	outputFlags(fs, &c.json)
	var (
		weight           float64
		priority         int64
		guarantee, limit string
	)
	if c.verb == "set" {
		fs.Float64Var(&weight, "weight", 0, "share of the cluster relative to other roles (> 0)")
		fs.Int64Var(&priority, "priority", 0, "tier for the priority allocator (higher is offered first)")
		fs.StringVar(&guarantee, "guarantee", "", `quota guarantee, e.g. "cpus:8;mem:16384" ("" removes it)`)
		fs.StringVar(&limit, "limit", "", `quota limit, e.g. "cpus:32" ("" removes it)`)
	}
	return fs, func(positional []string, changed func(string) bool) (*roleCommand, error) {
		hasWeight, hasPrior, hasGuar, hasLimit := changed("weight"), changed("priority"), changed("guarantee"), changed("limit")
		switch {
		case c.verb == "list" && len(positional) > 0:
			return nil, usagef("list takes no arguments, got %q", positional)
		case c.verb != "list" && len(positional) != 1:
			return nil, usagef("%s takes one role name, got %d arguments", c.verb, len(positional))
		case c.master == "":
			return nil, usagef("-master is empty")
		}
		if c.verb == "list" {
			return c, nil
		}
		c.name = positional[0]
		if err := resources.ValidateRole(c.name); err != nil {
			return nil, usagef("%v", err)
		}
		if c.verb == "show" {
			return c, nil
		}

		if !hasWeight && !hasPrior && !hasGuar && !hasLimit {
			return nil, usagef("set needs at least one of -weight, -priority, -guarantee, -limit")
		}
		var g, l resources.Resources
		if hasWeight {
			if !(weight > 0) || math.IsInf(weight, 0) {
				return nil, usagef("-weight must be a number greater than 0, got %v", weight)
			}
			c.update.Weight = &weight
		}
		if hasPrior {
			c.update.Priority = &priority
		}
		for _, q := range []struct {
			flag string
			has  bool
			val  string
			dst  **string
			res  *resources.Resources
		}{{"guarantee", hasGuar, guarantee, &c.update.Guarantee, &g}, {"limit", hasLimit, limit, &c.update.Limit, &l}} {
			if !q.has {
				continue
			}
			r, err := conf.ParseQuota(q.val)
			if err != nil {
				return nil, usagef("-%s: %v", q.flag, err)
			}
			if c.name == "*" && !r.IsEmpty() {
				return nil, usagef("-%s: %v", q.flag, conf.ErrStarQuota)
			}
			*q.res = r
			v := q.val
			*q.dst = &v
		}
		// Only when both are given: otherwise the other half lives on the
		// master, which checks the combination itself.
		if hasGuar && hasLimit {
			if err := conf.CheckGuaranteeWithinLimit(g, l); err != nil {
				return nil, usagef("%v", err)
			}
		}
		return c, nil
	}
}

func roleCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	verb := func(name, short string) *cobra.Command {
		fs, finish := roleFlagSet(name, os.Getenv)
		return command(name, short, "", fs, func(cmd *cobra.Command, args []string) int {
			c, err := finish(args, cmd.Flags().Changed)
			if err != nil {
				return failUsage(cmd, err)
			}
			return roleOp(ctx, c, stdout, stderr)
		})
	}
	return group("role", "list, show and change roles (weight, priority, quota)", roleUsage,
		verb("list", "list roles"), verb("show", "show a role"), verb("set", "change a role's weight, priority or quota"))
}

// runRole runs `corral role ARGS`.
func runRole(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"role"}, args...), stdout, stderr)
}

func roleOp(ctx context.Context, c *roleCommand, stdout, stderr io.Writer) int {
	var err error
	var (
		raw    []byte
		method = http.MethodGet
		path   = "/api/v1/roles"
		body   any
	)
	if c.verb != "list" {
		path += "/" + c.name
	}
	if c.verb == "set" {
		method, body = http.MethodPut, c.update
	}
	raw, err = roleAPI(ctx, c.master, method, path, body)
	if err != nil {
		fmt.Fprintf(stderr, "corral role %s: %v\n", c.verb, err)
		return 1
	}
	if c.json {
		_, _ = stdout.Write(raw)
		if !bytes.HasSuffix(raw, []byte("\n")) {
			fmt.Fprintln(stdout)
		}
		return 0
	}
	if c.verb == "list" {
		var roles []roleView
		if err := json.Unmarshal(raw, &roles); err != nil {
			fmt.Fprintf(stderr, "corral role list: decoding the master's answer: %v\n", err)
			return 1
		}
		printRoles(stdout, roles)
		return 0
	}
	var r roleView
	if err := json.Unmarshal(raw, &r); err != nil {
		fmt.Fprintf(stderr, "corral role %s: decoding the master's answer: %v\n", c.verb, err)
		return 1
	}
	printRole(stdout, r)
	return 0
}

// roleAPI sends one request to the operator API and returns the answer's
// body. A non-2xx answer becomes an error with the master's own message
// (the API answers {"error": "..."}), which is what the user needs to see.
func roleAPI(ctx context.Context, addr, method, path string, body any) ([]byte, error) {
	return operatorAPI(ctx, addr, method, path, body, 10*time.Second)
}

// operatorAPI is roleAPI with a chosen timeout (0: none beyond ctx). path
// is taken as it is (a role name may hold '?'); see operatorQuery.
func operatorAPI(ctx context.Context, addr, method, path string, body any, timeout time.Duration) ([]byte, error) {
	return operatorQuery(ctx, addr, method, path, "", body, timeout)
}

// operatorQuery is operatorAPI with a query string.
func operatorQuery(ctx context.Context, addr, method, path, query string, body any, timeout time.Duration) ([]byte, error) {
	cancel := context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	addr, err := resolveMaster(ctx, addr)
	if err != nil {
		return nil, err
	}
	// Path holds the name unescaped; URL.String escapes what needs it and
	// keeps the slashes of hierarchical names.
	client, base, err := masterHTTP(addr)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("master address %q: %w", addr, err)
	}
	u.Path, u.RawQuery = path, query
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, unreachable(addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer to %s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 == 2 {
		return raw, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return nil, errors.New(e.Error)
	}
	if err := plainToTLS(addr, resp.StatusCode, raw); err != nil {
		return nil, err
	}
	// Not the API's error shape: an older master, or something else
	// listening there.
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return nil, fmt.Errorf("%s %s answered %s: %s", method, u, resp.Status, msg)
}

func printRoles(w io.Writer, roles []roleView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ROLE\tWEIGHT\tPRIORITY\tGUARANTEE\tLIMIT\tALLOCATED\tDRF SHARE\tFRAMEWORKS\n")
	for _, r := range roles {
		fmt.Fprintf(tw, "%s\t%g\t%d\t%s\t%s\t%s\t%.3f\t%d\n", r.Name, r.Weight, r.Priority,
			dash(r.Guarantee), dash(r.Limit), dash(r.Allocated), r.DominantShare, len(r.Frameworks))
	}
	_ = tw.Flush()
}

func printRole(w io.Writer, r roleView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fws := strings.Join(r.Frameworks, ", ")
	for _, kv := range [][2]string{
		{"role", r.Name},
		{"weight", fmt.Sprintf("%g", r.Weight)},
		{"priority", fmt.Sprintf("%d", r.Priority)},
		{"guarantee", dash(r.Guarantee)},
		{"limit", dash(r.Limit)},
		{"allocated", dash(r.Allocated)},
		{"drf share", fmt.Sprintf("%.3f", r.DominantShare)},
		{"frameworks", dash(fws)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	_ = tw.Flush()
}
