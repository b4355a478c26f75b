package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/core/master"
)

const statusUsage = `usage: corral status [-master ADDR] [-json | --output json|table]

Shows the master (leader or standby), the allocator, and the agents, roles,
frameworks and live tasks. -json prints the master's /api/v1/state as is.
`

func statusCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	fs := flag.NewFlagSet("corral status", flag.ContinueOnError)
	addr := fs.String("master", envOr("CORRAL_MASTER", "127.0.0.1:5050"),
		"master: host:port, host:port,host:port or consul://host:port/prefix (env CORRAL_MASTER)")
	var asJSON bool
	outputFlags(fs, &asJSON)
	return command("status", "show agents, frameworks, tasks, roles and the allocator", statusUsage, fs,
		func(cmd *cobra.Command, args []string) int {
			if len(args) > 0 {
				return failUsage(cmd, usagef("status takes no arguments, got %q", args))
			}
			st, raw, err := fetchState(ctx, *addr)
			if err != nil {
				fmt.Fprintf(stderr, "corral status: %v\n", err)
				return 1
			}
			if asJSON {
				_, _ = stdout.Write(raw)
				return 0
			}
			printStatus(stdout, st)
			return 0
		})
}

// runStatus runs `corral status ARGS`.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"status"}, args...), stdout, stderr)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func fetchState(ctx context.Context, addr string) (master.State, []byte, error) {
	var st master.State
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addr, err := resolveMaster(ctx, addr)
	if err != nil {
		return st, nil, err
	}
	client, base, err := masterHTTP(addr)
	if err != nil {
		return st, nil, err
	}
	url := base + "/api/v1/state"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, nil, unreachable(addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		if err := plainToTLS(addr, resp.StatusCode, raw); err != nil {
			return st, nil, err
		}
		return st, nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("decoding %s: %w", url, err)
	}
	return st, raw, nil
}

func printStatus(w io.Writer, st master.State) {
	a := st.Allocator
	if st.Leader {
		fmt.Fprintf(w, "leader %s\n", dash(st.LeaderAddress))
	} else {
		fmt.Fprintf(w, "standby (leader %s)\n", dash(st.LeaderAddress))
	}
	fmt.Fprintf(w, "master %s\nallocator %s %s (restarts %d) %s\n", st.MasterID, a.Name, a.Version, a.Restarts, a.Path)
	if a.Error != "" {
		fmt.Fprintf(w, "allocator error: %s\n", a.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nAGENT\tHOSTNAME\tCONNECTED\tRESOURCES\tUSED\n")
	for _, ag := range st.Agents {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", ag.ID, ag.Hostname, ag.Connected, ag.Total, dash(ag.Used))
	}
	// Shares are what the allocator plugin reported, not recomputed here.
	fmt.Fprintf(tw, "\nROLE\tWEIGHT\tPRIORITY\tGUARANTEE\tLIMIT\tDRF SHARE\tALLOCATED\tFRAMEWORKS\n")
	for _, r := range st.Roles {
		fmt.Fprintf(tw, "%s\t%g\t%d\t%s\t%s\t%.3f\t%s\t%d\n", r.Name, r.Weight, r.Priority, dash(r.Guarantee), dash(r.Limit),
			r.DominantShare, dash(r.Allocated), len(r.Frameworks))
	}
	fmt.Fprintf(tw, "\nFRAMEWORK\tNAME\tROLES\tCONNECTED\tDRF SHARE\tTASKS\tDONE\n")
	for _, f := range st.Frameworks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%.3f\t%d\t%d\n", f.ID, f.Name, strings.Join(f.Roles, ","), f.Connected,
			f.DominantShare, len(f.Tasks), len(f.Completed))
	}
	fmt.Fprintf(tw, "\nTASK\tFRAMEWORK\tSTATE\tAGENT\tRESOURCES\tREVOCATION\n")
	for _, f := range st.Frameworks {
		for _, t := range f.Tasks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, f.ID, t.State, t.AgentID, t.Resources, revocationText(t))
		}
	}
	_ = tw.Flush()
}

// revocationText says when a revoked task will be (or was) killed, or
// whether it is protected by its role's guarantee.
func revocationText(t master.TaskView) string {
	switch rv := t.Revocation; {
	case rv != nil && rv.Killed:
		return rv.Reason + ", killed"
	case rv != nil:
		return fmt.Sprintf("%s, kill at %s", rv.Reason, time.UnixMilli(rv.DeadlineUnixMs).Format(time.TimeOnly))
	case t.WithinGuarantee:
		return "guaranteed"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
