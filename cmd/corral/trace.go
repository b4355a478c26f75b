package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/core/sim"
)

const traceUsage = `usage: corral trace record [-master ADDR] -duration D [-interval I] -out FILE

Records a live master's workload for D (agents, frameworks, every task's
creation, start and end) by polling its operator API, and writes it as a
trace that corral sim replays under any policy:

  corral trace record -duration 1h -out hour.json
  corral sim -trace hour.json -compare drf,quota -out what-if/

`

// runTrace runs `corral trace ARGS`.
func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"trace"}, args...), stdout, stderr)
}

func traceCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	fs := flag.NewFlagSet("corral trace record", flag.ContinueOnError)
	addr := fs.String("master", envOr("CORRAL_MASTER", "127.0.0.1:5050"), "master address host:port (env CORRAL_MASTER)")
	duration := fs.Duration("duration", 0, "how long to record (e.g. 1h)")
	interval := fs.Duration("interval", time.Second, "how often to read the master's state")
	out := fs.String("out", "", "trace file to write (JSON)")
	name := fs.String("name", "recorded", "the trace's name")
	return group("trace", "record a live master's workload as a trace", traceUsage,
		command("record", "record a live master's workload as a trace", "", fs, func(cmd *cobra.Command, args []string) int {
			if *duration <= 0 || *out == "" || *interval <= 0 || len(args) > 0 {
				return failUsage(cmd, usagef("-duration (positive) and -out are required"))
			}
			return record(ctx, stdout, stderr, *addr, *duration, *interval, *out, *name)
		}))
}

func record(ctx context.Context, stdout, stderr io.Writer, addr string, duration, interval time.Duration, out, name string) int {
	rec := sim.NewRecorder(time.Now())
	deadline := time.Now().Add(duration)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	looks := 0
	look := func(ctx context.Context) error {
		st, _, err := fetchState(ctx, addr)
		if err != nil {
			fmt.Fprintf(stderr, "corral trace record: %v\n", err)
			return err
		}
		rec.Observe(st, time.Now())
		looks++
		return nil
	}
	if err := look(ctx); err != nil {
		return 1
	}
	for time.Now().Before(deadline) {
		select {
		case <-tick.C:
			_ = look(ctx) // a missed look is retried at the next tick
			continue
		case <-ctx.Done():
		}
		// Interrupted: one last look, then write what was recorded.
		fmt.Fprintln(stderr, "corral trace record: interrupted; writing what was recorded")
		last, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = look(last)
		cancel()
		break
	}
	tr, err := rec.Trace(name)
	if err != nil {
		fmt.Fprintf(stderr, "corral trace record: %v\n", err)
		return 1
	}
	b, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "corral trace record: %v\n", err)
		return 1
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "corral trace record: %v\n", err)
		return 1
	}
	jobs := 0
	for _, f := range tr.Frameworks {
		jobs += len(f.Jobs)
	}
	fmt.Fprintf(stdout, "recorded %d agents, %d frameworks, %d tasks in %d looks to %s\n", len(tr.Agents), len(tr.Frameworks), jobs, looks, out)
	return 0
}
