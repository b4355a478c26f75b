// Command faultyalloc is the real DRF allocator with one fault switched on
// by a flag, for the hot-swap tests: each rollback reason needs a plugin
// that starts and handshakes like any other and then misbehaves.
//
//	-fault=none     plain DRF
//	-fault=init     Init fails
//	-fault=hang     Allocate never returns (the process stays responsive)
//	-fault=invalid  every proposal names an agent that does not exist
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/plugins/allocator/drf"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

func main() {
	fault := flag.String("fault", "none", "none|init|hang|invalid")
	flag.Parse()
	switch *fault {
	case "none", "init", "hang", "invalid":
	default:
		fmt.Fprintf(os.Stderr, "faultyalloc: unknown -fault %q\n", *fault)
		os.Exit(2)
	}
	sdk.Serve(&faulty{Allocator: drf.NewPlugin(), fault: *fault})
}

type faulty struct {
	allocator.Allocator
	fault string

	mu         sync.Mutex
	frameworks []string
}

func (f *faulty) Init(ctx context.Context, snap *allocator.Snapshot) (uint64, error) {
	if f.fault == "init" {
		return 0, errors.New("faultyalloc: Init fails on purpose")
	}
	f.mu.Lock()
	f.frameworks = f.frameworks[:0]
	for _, fw := range snap.Frameworks {
		f.frameworks = append(f.frameworks, fw.ID)
	}
	f.mu.Unlock()
	return f.Allocator.Init(ctx, snap)
}

func (f *faulty) Allocate(ctx context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	if f.fault == "hang" {
		select {} // the master's deadline passes; nothing here ever answers
	}
	resp, err := f.Allocator.Allocate(ctx, req)
	if err != nil || f.fault != "invalid" {
		return resp, err
	}
	f.mu.Lock()
	for _, d := range req.Deltas {
		if d.Kind == allocator.FrameworkAdded && d.Framework != nil {
			f.frameworks = append(f.frameworks, d.Framework.ID)
		}
	}
	fws := append([]string(nil), f.frameworks...)
	f.mu.Unlock()
	// Every proposal is invalid, and there is at least one whenever a
	// framework is known, so the master sees the fault every cycle.
	out := make([]allocator.Proposal, 0, len(resp.Offers)+1)
	for _, p := range resp.Offers {
		p.AgentID = "no-such-agent"
		out = append(out, p)
	}
	if len(out) == 0 && len(fws) > 0 {
		out = append(out, allocator.Proposal{FrameworkID: fws[0], Role: "*", AgentID: "no-such-agent",
			Resources: resources.NewScalar("cpus", 1)})
	}
	resp.Offers = out
	return resp, nil
}
