package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/corral-project/corral/core/sim"
)

const traceUsage = `usage: corral trace record [-master ADDR] -duration D [-interval I] -out FILE

Records a live master's workload for D (agents, frameworks, every task's
creation, start and end) by polling its operator API, and writes it as a
trace that corral sim replays under any policy:

  corral trace record -duration 1h -out hour.json
  corral sim -trace hour.json -compare drf,quota -out what-if/

`

func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "record" {
		fmt.Fprint(stderr, traceUsage)
		return 2
	}
	fs := flag.NewFlagSet("corral trace record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, traceUsage); fs.PrintDefaults() }
	addr := fs.String("master", envOr("CORRAL_MASTER", "127.0.0.1:5050"), "master address host:port (env CORRAL_MASTER)")
	duration := fs.Duration("duration", 0, "how long to record (e.g. 1h)")
	interval := fs.Duration("interval", time.Second, "how often to read the master's state")
	out := fs.String("out", "", "trace file to write (JSON)")
	name := fs.String("name", "recorded", "the trace's name")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *duration <= 0 || *out == "" || *interval <= 0 || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "corral trace record: -duration (positive) and -out are required\n\n")
		fs.Usage()
		return 2
	}
	rec := sim.NewRecorder(time.Now())
	deadline := time.Now().Add(*duration)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	looks := 0
	look := func(ctx context.Context) error {
		st, _, err := fetchState(ctx, *addr)
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
	tr, err := rec.Trace(*name)
	if err != nil {
		fmt.Fprintf(stderr, "corral trace record: %v\n", err)
		return 1
	}
	b, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "corral trace record: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "corral trace record: %v\n", err)
		return 1
	}
	jobs := 0
	for _, f := range tr.Frameworks {
		jobs += len(f.Jobs)
	}
	fmt.Fprintf(stdout, "recorded %d agents, %d frameworks, %d tasks in %d looks to %s\n", len(tr.Agents), len(tr.Frameworks), jobs, looks, *out)
	return 0
}
