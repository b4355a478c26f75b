package binpack

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/sdk/allocator/allocatortest"
	"github.com/corral-project/corral/sdk/resources"
)

func direct(*testing.T) allocator.Allocator { return NewPlugin() }

// TestTranscripts runs testdata/*.txt (the language is documented in
// sdk/allocator/allocatortest) directly and over an in-process gRPC
// connection, so that every field the scenarios use also crosses the wire.
// Regenerate with `go test ./sdk/examples/binpack -run Transcripts -rewrite`
// and review the diff.
func TestTranscripts(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		allocatortest.RunTranscripts(t, "testdata/*.txt", direct, "{}")
	})
	if allocatortest.Rewrite() {
		return // one rewrite is enough
	}
	t.Run("grpc", func(t *testing.T) {
		allocatortest.RunTranscripts(t, "testdata/*.txt", func(t *testing.T) allocator.Allocator {
			return contracttest.InProcess(t, NewPlugin())
		}, "{}")
	})
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{}`, "cpus"},
		{`{"pack_by":"mem"}`, "mem"},
	} {
		cfg, err := ParseConfig([]byte(tc.config))
		if err != nil || cfg.PackBy != tc.want {
			t.Errorf("ParseConfig(%s) = %+v, %v; want pack_by %q", tc.config, cfg, err, tc.want)
		}
	}
	// Errors name what is wrong; the master shows them to the operator.
	for _, tc := range []struct{ config, want string }{
		{`{"pack_by":""}`, `attribute "pack_by"`},
		{`{"packby":"mem"}`, `unknown field "packby"`},
		{`{"pack_by":4}`, `pack_by`},
		{`[]`, `cannot unmarshal array`},
	} {
		if _, err := ParseConfig([]byte(tc.config)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s) = %v, want an error containing %q", tc.config, err, tc.want)
		}
	}
	// The schema's defaults are the defaults of an empty config.
	for _, a := range Schema().Attributes {
		var fromSchema, fromEmpty Config
		var err error
		if fromSchema, err = ParseConfig([]byte(fmt.Sprintf("{%q:%s}", a.Name, a.DefaultJSON))); err != nil {
			t.Fatalf("schema default of %s: %v", a.Name, err)
		}
		if fromEmpty, err = ParseConfig([]byte("{}")); err != nil || fromSchema != fromEmpty {
			t.Errorf("schema default of %s gives %+v, an empty config %+v (%v)", a.Name, fromSchema, fromEmpty, err)
		}
	}
}

// TestProperties runs the testkit's property checks. Bin-packing means to
// be neither fair nor quota-aware, so only the safety check applies: every
// proposal valid, nothing offered twice or past a decline filter.
func TestProperties(t *testing.T) {
	allocatortest.Properties{Skip: map[string]string{
		allocatortest.LimitsCheck:           "binpack ignores quota limits; use the quota allocator to enforce them",
		allocatortest.FairnessOneAgentCheck: "bin-packing is not fair by design",
		allocatortest.FairnessDemandCheck:   "bin-packing is not fair by design",
	}}.Check(t, direct, "{}")
}

// TestContract runs the allocator contract suite directly, over an
// in-process gRPC connection, and against the real binary started as the
// master starts it: from $CORRAL_BIN_DIR/plugins (`make test` sets it
// after `make build`), or built from ./cmd into a temp dir.
func TestContract(t *testing.T) {
	t.Run("direct", func(t *testing.T) { contracttest.Run(t, direct) })
	t.Run("grpc", func(t *testing.T) {
		contracttest.Run(t, func(t *testing.T) allocator.Allocator { return contracttest.InProcess(t, NewPlugin()) })
	})
	t.Run("binary", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: not building or starting the plugin binary")
		}
		bin := plugintest.Binary(t, "corral-allocator-"+Name, "./cmd")
		contracttest.Run(t, func(t *testing.T) allocator.Allocator {
			return plugintest.Start(t, base.KindAllocator, bin).Raw.(allocator.Allocator)
		})
	})
}

// TestSmallTasksLeaveWholeAgents drives the plugin with the testkit's
// simulated master from Go, for what a transcript would say at length: a
// stream of small tasks, arriving one per cycle, fills as few agents as
// possible, so that a later large job still fits.
func TestSmallTasksLeaveWholeAgents(t *testing.T) {
	s := allocatortest.NewSim(NewPlugin())
	for _, id := range []string{"a1", "a2", "a3", "a4"} {
		must(t, s.AddAgent(allocator.Agent{ID: id, Total: resources.MustParse("cpus:8;mem:16384"), Active: true}))
	}
	for _, f := range []string{"small", "big"} {
		must(t, s.AddFramework(allocator.Framework{ID: f, Roles: []string{f}, SuppressedRoles: []string{f}, Active: true}))
	}
	small := resources.MustParse("cpus:1;mem:1024")
	must(t, s.Revive("small"))
	for i := 0; i < 12; i++ {
		// One pending task at a time: each is placed knowing where the
		// earlier ones went.
		must(t, s.Demand("small", "small", allocator.TaskShape{Resources: small, Count: 1}))
		c := s.MustAllocate(t, s.Now()+1000)
		if len(c.Offers) != 1 {
			t.Fatalf("cycle %d: offers %v, want one for the pending task", i, c.Offers)
		}
		_, err := s.Launch("small", c.Offers[0].AgentID, small, 0)
		must(t, err)
	}
	must(t, s.Suppress("small"))
	for id, want := range map[string]string{"a1": "mem:8192", "a2": "cpus:4;mem:12288", "a3": "cpus:8;mem:16384", "a4": "cpus:8;mem:16384"} {
		if got := s.Free(id); !got.Equal(resources.MustParse(want)) {
			t.Errorf("%s has %s free, want %q", id, got, want)
		}
	}
	must(t, s.Revive("big"))
	must(t, s.Demand("big", "big", allocator.TaskShape{Resources: resources.MustParse("cpus:8;mem:16384"), Count: 2}))
	c := s.MustAllocate(t, s.Now()+1000)
	if got := describe(c.Offers); !slices.Equal(got, []string{"big/big@a3 cpus:8;mem:16384", "big/big@a4 cpus:8;mem:16384"}) {
		t.Errorf("large tasks: %q, want one on each of the two agents kept whole", got)
	}
	if got := c.Metrics[MetricWholeAgents]; got != 0 {
		t.Errorf("%s = %v after the large tasks took the last whole agents", MetricWholeAgents, got)
	}
}

func describe(offers []allocator.Proposal) []string {
	out := []string{}
	for _, o := range offers {
		out = append(out, allocatortest.DescribeProposal(o))
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
