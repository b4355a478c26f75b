package main

// corral allocator lists the allocator plugins a master can run, shows the
// allocator slot, and hot-swaps the live policy through the master's
// operator API (/api/v1/allocator).

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

const allocatorUsage = `usage: corral allocator list [-master ADDR] [-json]
       corral allocator show [-master ADDR] [-json]
       corral allocator set NAME [-config FILE] [-shadow N] [-promote auto|manual] [-wait] [-master ADDR] [-json]
       corral allocator promote|abort [-master ADDR] [-json]

list     every allocator plugin in the master's plugin_dir and plugin blocks:
         name, version, API versions and the sha256 to pin in a plugin block
show     the active plugin (generation, restarts, faults, last cycle, metrics),
         a candidate in progress with its shadow diff, and the swap history
set      swap the live policy to plugin NAME:
  -config FILE     the plugin's config in HCL (the body of a plugin block's
                   config {}); default: its plugin block's config
  -shadow N        run the candidate N cycles beside the active plugin,
                   comparing its proposals, before the cut-over (default 0)
  -promote MODE    auto (cut over after the shadow cycles) or manual
                   (wait for 'corral allocator promote' or 'abort')
  -wait            return once the swap is decided and print the outcome
promote  cut over to the candidate now; abort drops it

  -master ADDR   master address (default 127.0.0.1:5050, env CORRAL_MASTER)
  -json          print the master's JSON answer as is

A candidate that fails to start or Init, misses its deadline 3 times in a
row, or has most of its proposals refused is rolled back automatically.
Exit status: 0 ok, 1 the master refused, the swap was rolled back or the
master could not be reached, 2 bad usage.
`

type allocatorCommand struct {
	verb, name, master string
	json, wait         bool
	config             string // file contents
	shadow             int
	promote            string
}

func parseAllocatorArgs(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (*allocatorCommand, error) {
	if len(args) == 0 {
		return nil, usagef("missing subcommand: list, show, set, promote or abort")
	}
	c := &allocatorCommand{verb: args[0]}
	switch c.verb {
	case "list", "show", "set", "promote", "abort":
	case "-h", "-help", "--help", "help":
		return nil, flag.ErrHelp
	default:
		return nil, usagef("unknown subcommand %q: use list, show, set, promote or abort", c.verb)
	}
	fs, finish := allocatorFlagSet(c.verb, getenv, readFile)
	fs.SetOutput(io.Discard)
	positional, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return nil, err
	}
	return finish(positional)
}

// allocatorFlagSet declares the flags of `corral allocator VERB`; finish
// checks the command line once parsed.
func allocatorFlagSet(verb string, getenv func(string) string, readFile func(string) ([]byte, error)) (*flag.FlagSet, func(positional []string) (*allocatorCommand, error)) {
	c := &allocatorCommand{verb: verb}
	master := getenv("CORRAL_MASTER")
	if master == "" {
		master = "127.0.0.1:5050"
	}
	fs := flag.NewFlagSet("corral allocator "+c.verb, flag.ContinueOnError)
	fs.StringVar(&c.master, "master", master, "master address (env CORRAL_MASTER)")
	outputFlags(fs, &c.json)
	var configFile string
	if c.verb == "set" {
		fs.StringVar(&configFile, "config", "", "the plugin's config in HCL (default: its plugin block's)")
		fs.IntVar(&c.shadow, "shadow", 0, "cycles to run the candidate beside the active plugin before the cut-over")
		fs.StringVar(&c.promote, "promote", "auto", "auto or manual cut-over")
		fs.BoolVar(&c.wait, "wait", false, "return once the swap is decided and print the outcome")
	}
	return fs, func(positional []string) (*allocatorCommand, error) {
		switch {
		case c.master == "":
			return nil, usagef("-master is empty")
		case c.verb != "set" && len(positional) > 0:
			return nil, usagef("%s takes no arguments, got %q", c.verb, positional)
		case c.verb == "set" && len(positional) != 1:
			return nil, usagef("set takes one allocator plugin name, got %d arguments", len(positional))
		}
		if c.verb != "set" {
			return c, nil
		}
		c.name = positional[0]
		if c.shadow < 0 {
			return nil, usagef("-shadow must be 0 or more cycles, got %d", c.shadow)
		}
		if c.promote != "auto" && c.promote != "manual" {
			return nil, usagef("-promote must be auto or manual, got %q", c.promote)
		}
		if configFile != "" {
			b, err := readFile(configFile)
			if err != nil {
				return nil, usagef("-config: %v", err)
			}
			if strings.TrimSpace(string(b)) == "" {
				return nil, usagef("-config: %s is empty", configFile)
			}
			c.config = string(b)
		}
		return c, nil
	}
}

func allocatorCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	verb := func(name, short string) *cobra.Command {
		fs, finish := allocatorFlagSet(name, os.Getenv, os.ReadFile)
		use := name
		if name == "set" {
			use = "set NAME"
		}
		return command(use, short, "", fs, func(cmd *cobra.Command, args []string) int {
			c, err := finish(args)
			if err != nil {
				return failUsage(cmd, err)
			}
			return allocatorOp(ctx, c, stdout, stderr)
		})
	}
	return group("allocator", "list, show and hot-swap the allocation policy", allocatorUsage,
		verb("list", "list the allocator plugins the master can run"),
		verb("show", "show the allocator slot: active plugin, candidate, swap history"),
		verb("set", "swap the live policy to another plugin"),
		verb("promote", "cut over to the candidate now"),
		verb("abort", "drop the candidate"))
}

// runAllocator runs `corral allocator ARGS`.
func runAllocator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"allocator"}, args...), stdout, stderr)
}

func allocatorOp(ctx context.Context, c *allocatorCommand, stdout, stderr io.Writer) int {
	method, path, timeout := http.MethodGet, "/api/v1/allocator", 30*time.Second
	var body any
	switch c.verb {
	case "list":
		path += "/plugins"
	case "set":
		method = http.MethodPost
		body = map[string]any{"name": c.name, "config": c.config, "shadow": c.shadow, "promote": c.promote, "wait": c.wait}
		if c.wait {
			timeout = 0 // shadow cycles and manual promotion take their time; Ctrl-C stops waiting
		}
	case "promote", "abort":
		method, path = http.MethodPost, path+"/"+c.verb
	}
	raw, err := operatorAPI(ctx, c.master, method, path, body, timeout)
	if err != nil {
		fmt.Fprintf(stderr, "corral allocator %s: %v\n", c.verb, err)
		return 1
	}
	if c.json {
		_, _ = stdout.Write(raw)
		if !bytes.HasSuffix(raw, []byte("\n")) {
			fmt.Fprintln(stdout)
		}
		return c.exitFor(raw)
	}
	switch c.verb {
	case "list":
		var list []allocatorPlugin
		if err := json.Unmarshal(raw, &list); err != nil {
			fmt.Fprintf(stderr, "corral allocator list: decoding the master's answer: %v\n", err)
			return 1
		}
		printAllocatorPlugins(stdout, list)
		return 0
	case "set":
		var res struct {
			Outcome *swapRecord     `json:"outcome"`
			Status  allocatorStatus `json:"status"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			fmt.Fprintf(stderr, "corral allocator set: decoding the master's answer: %v\n", err)
			return 1
		}
		if res.Outcome == nil {
			fmt.Fprintf(stdout, "swap to %s started", c.name)
			if c.shadow > 0 {
				fmt.Fprintf(stdout, " (shadow %d cycles, promote %s)", c.shadow, c.promote)
			}
			fmt.Fprintln(stdout, "; see 'corral allocator show'")
			return 0
		}
		printOutcome(stdout, *res.Outcome)
		return c.exitFor(raw)
	}
	var st allocatorStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		fmt.Fprintf(stderr, "corral allocator %s: decoding the master's answer: %v\n", c.verb, err)
		return 1
	}
	printAllocatorStatus(stdout, st)
	return 0
}

// exitFor is 1 when a waited-for swap did not cut over.
func (c *allocatorCommand) exitFor(raw []byte) int {
	if c.verb != "set" || !c.wait {
		return 0
	}
	var res struct {
		Outcome *swapRecord `json:"outcome"`
	}
	if json.Unmarshal(raw, &res) == nil && res.Outcome != nil && res.Outcome.Event != "swap" {
		return 1
	}
	return 0
}

// The operator API's shapes, as much of them as the CLI prints.
type allocatorPlugin struct {
	Name        string   `json:"name"`
	Path        string   `json:"path"`
	SHA256      string   `json:"sha256"`
	Version     string   `json:"version"`
	APIVersions []string `json:"api_versions"`
	Pinned      string   `json:"pinned_sha256"`
	Active      bool     `json:"active"`
	Error       string   `json:"error"`
}

type swapRecord struct {
	At         time.Time `json:"at"`
	Event      string    `json:"event"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail"`
	Source     string    `json:"source"`
	Shadow     int       `json:"shadow_cycles"`
	Generation uint64    `json:"generation"`
	LatencyMS  float64   `json:"latency_ms"`
}

type pluginStatus struct {
	Name        string             `json:"name"`
	Config      string             `json:"config"`
	Version     string             `json:"version"`
	Path        string             `json:"path"`
	SHA256      string             `json:"sha256"`
	Pid         int                `json:"pid"`
	Restarts    int                `json:"restarts"`
	Faults      int                `json:"faults"`
	Since       time.Time          `json:"since"`
	Cycles      uint64             `json:"cycles"`
	LastCycleMS float64            `json:"last_cycle_ms"`
	Error       string             `json:"error"`
	Metrics     map[string]float64 `json:"metrics"`
}

type allocatorStatus struct {
	Active        *pluginStatus `json:"active"`
	Previous      *pluginStatus `json:"previous"`
	ProbationLeft int           `json:"probation_cycles_left"`
	Candidate     *struct {
		pluginStatus
		State      string `json:"state"`
		ShadowLeft int    `json:"shadow_cycles_left"`
		Manual     bool   `json:"manual"`
		Diff       struct {
			Cycles           int `json:"cycles"`
			ActiveOffers     int `json:"active_offers"`
			CandidateOffers  int `json:"candidate_offers"`
			CandidateInvalid int `json:"candidate_invalid"`
			Other            int `json:"offers_to_other_frameworks"`
			Roles            map[string]struct {
				Active    string `json:"active"`
				Candidate string `json:"candidate"`
			} `json:"roles"`
			Shares map[string]struct {
				Active    float64 `json:"active"`
				Candidate float64 `json:"candidate"`
			} `json:"projected_shares"`
		} `json:"diff"`
	} `json:"candidate"`
	Generation uint64       `json:"generation"`
	History    []swapRecord `json:"history"`
}

func printAllocatorPlugins(w io.Writer, list []allocatorPlugin) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tVERSION\tAPI\tACTIVE\tSHA256\tPATH\n")
	for _, p := range list {
		active := ""
		if p.Active {
			active = "*"
		}
		version := p.Version
		if p.Error != "" {
			version = "error: " + p.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, dash(version), dash(strings.Join(p.APIVersions, ",")),
			active, dash(p.SHA256), p.Path)
	}
	_ = tw.Flush()
}

func printOutcome(w io.Writer, r swapRecord) {
	switch r.Event {
	case "swap":
		fmt.Fprintf(w, "swapped %s -> %s (generation %d) in %.1f ms", dash(r.From), r.To, r.Generation, r.LatencyMS)
		if r.Shadow > 0 {
			fmt.Fprintf(w, " after %d shadow cycles", r.Shadow)
		}
		fmt.Fprintln(w)
	case "rollback":
		fmt.Fprintf(w, "rolled back: %s stays active; %s failed (%s): %s\n", dash(r.From), r.To, r.Reason, r.Detail)
	default:
		fmt.Fprintf(w, "%s: %s %s\n", r.Event, r.To, r.Detail)
	}
}

func printPlugin(tw *tabwriter.Writer, title string, p *pluginStatus) {
	fmt.Fprintf(tw, "%s\t%s %s\n", title, p.Name, p.Version)
	fmt.Fprintf(tw, "  pid\t%d\n", p.Pid)
	fmt.Fprintf(tw, "  path\t%s\n", dash(p.Path))
	fmt.Fprintf(tw, "  sha256\t%s\n", dash(p.SHA256))
	if p.Config != "" {
		fmt.Fprintf(tw, "  config\t%s\n", strings.Join(strings.Fields(p.Config), " "))
	}
	fmt.Fprintf(tw, "  since\t%s\n", p.Since.Format(time.RFC3339))
	fmt.Fprintf(tw, "  restarts / faults\t%d / %d\n", p.Restarts, p.Faults)
	fmt.Fprintf(tw, "  cycles\t%d (last %.2f ms)\n", p.Cycles, p.LastCycleMS)
	if p.Error != "" {
		fmt.Fprintf(tw, "  error\t%s\n", p.Error)
	}
	keys := make([]string, 0, len(p.Metrics))
	for k := range p.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%g\n", k, p.Metrics[k])
	}
}

func printAllocatorStatus(w io.Writer, st allocatorStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "generation\t%d\n", st.Generation)
	if st.Active != nil {
		printPlugin(tw, "active", st.Active)
	}
	if st.Previous != nil {
		printPlugin(tw, fmt.Sprintf("previous (probation: %d cycles left)", st.ProbationLeft), st.Previous)
	}
	if c := st.Candidate; c != nil {
		printPlugin(tw, "candidate", &c.pluginStatus)
		fmt.Fprintf(tw, "  state\t%s (shadow cycles left %d, promote %s)\n", c.State, c.ShadowLeft,
			map[bool]string{true: "manual", false: "auto"}[c.Manual])
		d := c.Diff
		fmt.Fprintf(tw, "  shadow cycles\t%d\n", d.Cycles)
		fmt.Fprintf(tw, "  offers active / candidate\t%d / %d (candidate invalid %d)\n", d.ActiveOffers, d.CandidateOffers, d.CandidateInvalid)
		fmt.Fprintf(tw, "  offers to other frameworks\t%d\n", d.Other)
		for _, r := range sortedKeysOf(d.Roles) {
			fmt.Fprintf(tw, "  role %s\tactive %s, candidate %s\n", r, dash(d.Roles[r].Active), dash(d.Roles[r].Candidate))
		}
		for _, f := range sortedKeysOf(d.Shares) {
			fmt.Fprintf(tw, "  projected share %s\tactive %.3f, candidate %.3f\n", f, d.Shares[f].Active, d.Shares[f].Candidate)
		}
	}
	_ = tw.Flush()
	if len(st.History) == 0 {
		return
	}
	fmt.Fprintln(w, "\nhistory:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "AT\tEVENT\tFROM\tTO\tGEN\tLATENCY\tREASON\n")
	for _, r := range st.History {
		lat := "-"
		if r.LatencyMS > 0 {
			lat = fmt.Sprintf("%.1f ms", r.LatencyMS)
		}
		reason := r.Reason
		if r.Detail != "" {
			reason = strings.TrimSpace(reason + " " + r.Detail)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.At.Format(time.TimeOnly), r.Event, dash(r.From), r.To,
			r.Generation, lat, dash(reason))
	}
	_ = tw.Flush()
}

func sortedKeysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
