package allocator

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sync"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-hclog"
)

// Policy decides offers. Allocate must be pure and deterministic: the same
// state, time and limit give the same proposals, with no wall clock and no
// unseeded randomness. It must not modify s; it should build its proposals
// through s.Scratch so that they never double-book. maxOffers 0 means no
// limit. The returned slice is handed over: the SDK may send it as the
// response, so a policy must not reuse or modify it later.
type Policy interface {
	Allocate(s *State, now allocator.LogicalTime, maxOffers int) []allocator.Proposal
}

// Revoker is an optional Policy feature: revocations to propose after the
// cycle's offers (for example preemption for a higher priority tier). The
// SDK drops revocations of unknown tasks, of tasks within their guarantee
// and of tasks already being revoked; the core checks them again.
type Revoker interface {
	Revocations(s *State, now allocator.LogicalTime, proposals []allocator.Proposal) []allocator.Revocation
}

// Resetter is an optional Policy feature for policies that remember
// something between cycles: Reset is called whenever the plugin is
// re-initialized from a snapshot.
type Resetter interface {
	Reset()
}

// FairnessExcluder is an optional Policy feature naming resources that do
// not count toward shares, for the SDK's long-task revocation.
type FairnessExcluder interface {
	FairnessExclude() []string
}

// MetricDroppedRevocations counts revocations the SDK dropped as invalid.
const MetricDroppedRevocations = "sdk/dropped_revocations"

// RevocationRetry is how long the SDK waits for a proposed revocation to
// take effect (the task to end) before it may propose it again: the core
// may have refused it. It is well past the core's default grace of 30 s.
const RevocationRetry allocator.LogicalTime = 120_000

// MetricsReporter is an optional Policy feature: metrics to return with each
// cycle's response, computed from the state and the cycle's proposals.
type MetricsReporter interface {
	Metrics(s *State, proposals []allocator.Proposal) map[string]float64
}

// MetricDroppedProposals counts proposals the SDK dropped because they were
// invalid against the state (double-booked, unknown agent, ...). It is only
// reported when non-zero; a policy that triggers it has a bug.
const MetricDroppedProposals = "sdk/dropped_proposals"

// NewPlugin returns an allocator plugin that mirrors the master's state in a
// State and asks the policy built by configure for proposals. configure is
// called by SetConfig with the config JSON object, and with "{}" if the
// plugin is asked to allocate before any SetConfig. Empty info.Kind and
// info.APIVersions default to the allocator kind and allocator.APIVersions.
func NewPlugin(info base.Info, schema base.Schema, configure func(configJSON []byte) (Policy, error)) allocator.Allocator {
	if info.Kind == "" {
		info.Kind = base.KindAllocator
	}
	if len(info.APIVersions) == 0 {
		info.APIVersions = slices.Clone(allocator.APIVersions)
	}
	return &plugin{info: info, schema: schema, configure: configure, state: NewState()}
}

type plugin struct {
	info      base.Info
	schema    base.Schema
	configure func([]byte) (Policy, error)

	mu     sync.Mutex
	policy Policy
	state  *State
	// check re-validates each cycle's proposals; its map is kept and
	// cleared between cycles.
	check proposalCheck
	// valid is false until Init succeeds and after a failed Allocate left
	// the mirror half-updated; every Allocate then reports a version gap so
	// that the host re-Inits.
	valid bool
}

func (p *plugin) PluginInfo(context.Context) (*base.Info, error) {
	info := p.info
	info.APIVersions = slices.Clone(p.info.APIVersions)
	return &info, nil
}

func (p *plugin) ConfigSchema(context.Context) (*base.Schema, error) {
	s := base.Schema{Attributes: slices.Clone(p.schema.Attributes)}
	return &s, nil
}

func (p *plugin) SetConfig(_ context.Context, configJSON []byte, apiVersion string) error {
	if !slices.Contains(p.info.APIVersions, apiVersion) {
		return fmt.Errorf("allocator %s: unsupported API version %q (supported: %v)", p.info.Name, apiVersion, p.info.APIVersions)
	}
	if len(configJSON) == 0 {
		configJSON = []byte("{}")
	}
	pol, err := p.configure(configJSON)
	if err != nil {
		return fmt.Errorf("allocator %s: config: %w", p.info.Name, err)
	}
	p.mu.Lock()
	p.policy = pol
	p.mu.Unlock()
	return nil
}

func (p *plugin) Init(ctx context.Context, snap *allocator.Snapshot) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.Init(snap); err != nil {
		p.valid = false
		return 0, fmt.Errorf("allocator %s: %w", p.info.Name, err)
	}
	if r, ok := p.policy.(Resetter); ok {
		r.Reset()
	}
	p.valid = true
	return p.state.Version(), nil
}

func (p *plugin) Allocate(ctx context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.valid || req.BaseVersion != p.state.Version() {
		have := p.state.Version()
		if !p.valid {
			have = 0
		}
		return nil, &allocator.VersionGapError{Have: have, Want: req.BaseVersion}
	}
	if p.policy == nil {
		pol, err := p.configure([]byte("{}"))
		if err != nil {
			return nil, fmt.Errorf("allocator %s: default config: %w", p.info.Name, err)
		}
		p.policy = pol
	}
	if err := p.state.ApplyAll(req.Deltas); err != nil {
		p.valid = false
		return nil, fmt.Errorf("allocator %s: %w", p.info.Name, err)
	}
	if v := p.state.Version(); v != req.TargetVersion {
		p.valid = false
		return nil, fmt.Errorf("allocator %s: deltas end at version %d, request targets %d", p.info.Name, v, req.TargetVersion)
	}
	p.state.Advance(req.Now)

	proposed := p.policy.Allocate(p.state, req.Now, req.MaxOffers)
	// Re-check the policy's output on a fresh scratch view: whatever bug a
	// policy has, the plugin never proposes the same resources twice.
	if p.check.byAgent == nil {
		p.check.byAgent = make(map[*agentEntry]resources.Resources, len(proposed))
	}
	clear(p.check.byAgent)
	p.check.s = p.state
	// The policy's slice is returned as is when every proposal passes
	// (the usual case); it is copied only once one is dropped.
	offers := proposed
	dropped := 0
	for i, o := range proposed {
		ok := req.MaxOffers <= 0 || i-dropped < req.MaxOffers
		if ok && p.check.check(o) != nil {
			ok = false
		}
		switch {
		case !ok && dropped == 0:
			offers = slices.Clone(proposed[:i])
			dropped++
		case !ok:
			dropped++
		case dropped > 0:
			offers = append(offers, o)
		}
	}
	if offers == nil {
		offers = []allocator.Proposal{}
	}
	resp := &allocator.AllocateResponse{AppliedVersion: p.state.Version(), Offers: offers}
	revs, droppedRevs := p.revocations(req, offers)
	resp.Revocations = revs
	if mr, ok := p.policy.(MetricsReporter); ok {
		resp.Metrics = mr.Metrics(p.state, offers)
	}
	for name, n := range map[string]int{MetricDroppedProposals: dropped, MetricDroppedRevocations: droppedRevs} {
		if n > 0 {
			if resp.Metrics == nil {
				resp.Metrics = map[string]float64{}
			}
			resp.Metrics[name] = float64(n)
		}
	}
	p.state.ResetChanges()
	return resp, nil
}

// revocations gathers the policy's revocations and, when the operator set
// revoke_after, the SDK's long-task revocations, keeping only valid ones.
func (p *plugin) revocations(req *allocator.AllocateRequest, offers []allocator.Proposal) (valid []allocator.Revocation, dropped int) {
	s := p.state
	s.expireRevoking(req.Now, RevocationRetry)
	var revs []allocator.Revocation
	if rv, ok := p.policy.(Revoker); ok {
		revs = rv.Revocations(s, req.Now, offers)
	}
	if req.RevokeAfter > 0 {
		onAgent := map[string]resources.Resources{}
		for _, o := range offers {
			onAgent[o.AgentID] = onAgent[o.AgentID].Add(o.Resources)
		}
		free := func(id string) resources.Resources { return s.Available(id).Subtract(onAgent[id]) }
		var exclude []string
		if fe, ok := p.policy.(FairnessExcluder); ok {
			exclude = fe.FairnessExclude()
		}
		revs = append(revs, LongTaskRevocations(s, UnmetDemand(s, offers), free, req.Now, req.RevokeAfter, exclude)...)
	}
	seen := map[taskKey]bool{}
	for _, r := range revs {
		k := taskKey{r.FrameworkID, r.TaskID}
		t, ok := s.tasks[k]
		if !ok || t.AgentID != r.AgentID || t.WithinGuarantee || seen[k] || s.Revoking(r.FrameworkID, r.TaskID) {
			dropped++
			continue
		}
		seen[k] = true
		valid = append(valid, r)
	}
	s.markRevoking(valid, req.Now)
	return valid, dropped
}

// Serve runs p as an allocator plugin binary until the host stops it,
// logging JSON to stderr (stdout carries the go-plugin handshake) under the
// plugin's name.
func Serve(p allocator.Allocator) {
	name := "allocator"
	if info, err := p.PluginInfo(context.Background()); err == nil && info.Name != "" {
		name = "allocator-" + info.Name
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.Info,
	})
	if percent, set := tuneGC(); set {
		logger.Debug("garbage collector tuned for allocation cycles", "gogc", percent)
	}
	if path := os.Getenv(CPUProfileEnv); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			logger.Error("cpu profile not started", "path", path, "error", err)
		} else {
			defer stop()
			logger.Info("writing a cpu profile until the plugin stops", "path", path)
		}
	}
	if path := os.Getenv(MemProfileEnv); path != "" {
		defer func() {
			if err := writeAllocProfile(path); err != nil {
				logger.Error("allocation profile not written", "path", path, "error", err)
			}
		}()
		logger.Info("writing an allocation profile when the plugin stops", "path", path)
	}
	allocator.Serve(p, logger)
}

// MemProfileEnv names the environment variable that makes a plugin built
// with Serve write an allocation profile (go tool pprof -sample_index=
// alloc_space) of its whole run to the path it holds when it stops.
const MemProfileEnv = "CORRAL_ALLOCATOR_MEMPROFILE"

func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// PluginGCPercent is the GOGC a plugin built with Serve runs with unless
// the GOGC environment variable says otherwise. A plugin's heap is mostly
// its long-lived mirror of the cluster, which grows as filters pile up,
// and every cycle allocates a few MB of short-lived requests, responses
// and proposals. A high GOGC (400 was tried) saves mark work but lets the
// heap goal run ahead of the mirror, so nearly every cycle's allocations
// land on fresh pages the kernel must fault in and zero: at 10k agents ×
// 1k frameworks the plugin took ~800 minor faults per cycle at 400 against
// ~500 at 100, and on the loaded 2-core bench machine its CPU per cycle,
// measured side by side in one run (plugins with both settings taking
// turns), was 73 ms at 400, 62 at 200 and 50 at 100 for priority, 66, 52
// and 55 for drf, and 338, 322 and 303 at 50k agents × 100 frameworks.
// Go's default is kept, and set explicitly so that the choice is visible.
//
// The faults that remain are the young heap growing into fresh pages: in
// the first 20 or so cycles after Init the plugin faults in about as much
// as it allocates (traced over 150 cycles at 10k agents × 1k frameworks:
// ~400 faults a cycle at first; after the 25th under 10 in most cycles,
// with bursts of 400 to 1,500 in a few). The scavenger is not the cause:
// GODEBUG=scavtrace=1 shows it releasing nothing during those cycles, and
// the same plugins with madvdontneed=0 took no less CPU, side by side in
// one bench-alloc run. Touching
// the runway to the heap goal once after Init only moves the faults: at
// 20k agents × 2k frameworks 6.3k more in Init and 5.7k fewer in the 15
// cycles after it, at 50k × 100 14k more and 11k fewer. GOMAXPROCS=1
// took a third of the plugin's system calls per cycle away at 1k agents
// but no CPU measurable on the shared bench machine, so it is not set.
const PluginGCPercent = 100

// tuneGC applies PluginGCPercent unless the operator set GOGC.
func tuneGC() (percent int, set bool) {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return 0, false
	}
	debug.SetGCPercent(PluginGCPercent)
	return PluginGCPercent, true
}

// CPUProfileEnv names the environment variable that makes a plugin built
// with Serve write a CPU profile (go tool pprof) of its whole run to the
// path it holds: the way to see where a plugin process spends a cycle.
const CPUProfileEnv = "CORRAL_ALLOCATOR_CPUPROFILE"

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
