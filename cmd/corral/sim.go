package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/core/sim"
)

const simUsage = `usage: corral sim -trace FILE [-allocator NAME[,CONFIG]] [-static] [-compare P1,P2,...] -out DIR

Replays the workload of a trace (testdata/traces/*.json; format in
core/sim/README.md) on a simulated cluster in virtual time, through the
master's allocation loop and a real allocator plugin, and writes reports
and plots to DIR. A summary table goes to stdout.

  -allocator drf                 the plugin to run (plugin_dir name or a path)
  -allocator quota,quota.hcl     with a config body (an HCL file, or inline HCL)
  -static                        static partitioning: each framework on its own agents
  -compare drf,quota,static,./my-allocator
                                 run every policy on the same plots; "static" is
                                 static partitioning under -allocator
  -compare drf,drf=strict.hcl,quota=q.hcl
                                 NAME=FILE gives that policy its own config body
                                 (an HCL file); its label is NAME=FILE's base name,
                                 so one plugin can be compared under several configs

`

// runSim runs `corral sim ARGS`.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"sim"}, args...), stdout, stderr)
}

func simCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	fs := flag.NewFlagSet("corral sim", flag.ContinueOnError)
	tracePath := fs.String("trace", "", "workload and cluster (JSON)")
	alloc := fs.String("allocator", "drf", "allocator plugin NAME[,CONFIG]: a name in -plugin-dir or a path to a binary; CONFIG an HCL file or inline HCL")
	static := fs.Bool("static", false, "static partitioning instead of sharing")
	compare := fs.String("compare", "", "comma-separated policies to compare: plugin names or paths, and static")
	out := fs.String("out", "", "directory for the reports and plots")
	format := fs.String("plot", "png", "plot format: png or svg")
	pluginDir := fs.String("plugin-dir", "", "directory of plugin binaries (default ./bin/plugins, else plugins/ beside this binary)")
	logLevel := fs.String("log-level", "warn", "log level of the simulated master and plugin host (stderr)")
	return command("sim", "simulate a trace under allocation policies", simUsage, fs, func(cmd *cobra.Command, args []string) int {
		if len(args) > 0 || *tracePath == "" || *out == "" {
			return failUsage(cmd, usagef("-trace and -out are required (and nothing else)"))
		}
		if *format != "png" && *format != "svg" {
			return failUsage(cmd, usagef("-plot %q: want png or svg", *format))
		}
		return simulate(ctx, stdout, stderr, *tracePath, *alloc, *static, *compare, *out, *format, *pluginDir, *logLevel)
	})
}

func simulate(ctx context.Context, stdout, stderr io.Writer, tracePath, alloc string, static bool, compare, out, format, pluginDir, logLevel string) int {
	tr, err := sim.LoadTrace(tracePath)
	if err != nil {
		fmt.Fprintf(stderr, "corral sim: %v\n", err)
		return 1
	}
	policies, err := simPolicies(alloc, static, compare)
	if err != nil {
		fmt.Fprintf(stderr, "corral sim: %v\n", err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "sim", Level: hclog.LevelFromString(logLevel), Output: stderr})
	dir := pluginDir
	if dir == "" {
		dir = defaultSimPluginDir()
	}
	runs, err := runPolicies(ctx, tr, policies, dir, log)
	if err != nil {
		fmt.Fprintf(stderr, "corral sim: %v\n", err)
		return 1
	}
	if err := sim.WriteReports(out, runs, format); err != nil {
		fmt.Fprintf(stderr, "corral sim: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "trace %s: %d policies, reports in %s\n\n", tr.Name, len(runs), out)
	if err := sim.Summary(stdout, runs); err != nil {
		return 1
	}
	for _, r := range runs {
		if len(r.Errors) > 0 {
			fmt.Fprintf(stderr, "corral sim: %s: the master refused %d calls of the framework models, first: %s\n",
				r.Policy, len(r.Errors), r.Errors[0])
			return 1
		}
	}
	return 0
}

// simPolicy is one run of a comparison.
type simPolicy struct {
	label  string
	choice master.AllocatorChoice
	block  *conf.Plugin // a binary given by path
	static bool
}

// simPolicies turns the flags into the runs to make.
func simPolicies(alloc string, static bool, compare string) ([]simPolicy, error) {
	base, err := parsePolicy(alloc)
	if err != nil {
		return nil, err
	}
	if compare == "" {
		if static {
			base.label, base.static = "static", true
		}
		return []simPolicy{base}, nil
	}
	var out []simPolicy
	seen := map[string]bool{}
	for _, name := range strings.Split(compare, ",") {
		name = strings.TrimSpace(name)
		var p simPolicy
		switch name {
		case "":
			return nil, fmt.Errorf("-compare %q: empty policy name", compare)
		case "static":
			p = base
			p.label, p.static = "static", true
		default:
			plugin, cfgFile, withConfig := strings.Cut(name, "=")
			if !withConfig {
				if p, err = parsePolicy(name); err != nil {
					return nil, err
				}
				break
			}
			if strings.TrimSpace(cfgFile) == "" {
				return nil, fmt.Errorf("-compare %q: no config file after =", name)
			}
			if _, err := os.Stat(cfgFile); err != nil {
				return nil, fmt.Errorf("-compare %q: the config must be a readable HCL file: %w", name, err)
			}
			if p, err = parsePolicy(plugin + "," + cfgFile); err != nil {
				return nil, err
			}
			p.label += "=" + filepath.Base(cfgFile)
		}
		if seen[p.label] {
			return nil, fmt.Errorf("-compare: policy %q given twice", p.label)
		}
		seen[p.label] = true
		out = append(out, p)
	}
	return out, nil
}

// parsePolicy reads NAME[,CONFIG]: NAME a plugin in plugin_dir or a path
// to a binary, CONFIG an HCL file or inline HCL.
func parsePolicy(s string) (simPolicy, error) {
	name, cfg, _ := strings.Cut(s, ",")
	name = strings.TrimSpace(name)
	if name == "" {
		return simPolicy{}, fmt.Errorf("allocator %q: empty name", s)
	}
	p := simPolicy{label: name, choice: master.AllocatorChoice{Name: name}}
	if strings.ContainsRune(name, os.PathSeparator) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return simPolicy{}, err
		}
		p.label = filepath.Base(name)
		p.choice.Name = p.label
		p.block = &conf.Plugin{Name: p.label, Path: abs}
	}
	if cfg = strings.TrimSpace(cfg); cfg != "" {
		if b, err := os.ReadFile(cfg); err == nil {
			cfg = string(b)
		} else if !strings.Contains(cfg, "=") {
			return simPolicy{}, fmt.Errorf("allocator config %q: not a readable file (%v) nor inline HCL", cfg, err)
		}
		p.choice.Config = cfg
	}
	return p, nil
}

func runPolicies(ctx context.Context, tr *sim.Trace, policies []simPolicy, pluginDir string, log hclog.Logger) ([]*sim.Result, error) {
	var runs []*sim.Result
	for _, p := range policies {
		var blocks []conf.Plugin
		if p.block != nil {
			blocks = append(blocks, *p.block)
		}
		launcher := master.NewPluginLauncher(pluginDir, blocks, pluginhost.Options{Logger: log.Named("pluginhost")})
		res, err := sim.Run(ctx, tr, sim.Options{Label: p.label, Allocator: p.choice, Launcher: launcher, Static: p.static,
			Logger: log.Named(p.label)})
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.label, err)
		}
		runs = append(runs, res)
	}
	return runs, nil
}

func defaultSimPluginDir() string {
	if st, err := os.Stat("bin/plugins"); err == nil && st.IsDir() {
		return "bin/plugins"
	}
	if exe, err := os.Executable(); err == nil {
		return filepath.Join(filepath.Dir(exe), "plugins")
	}
	return "bin/plugins"
}
