package allocatortest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Names of the property checks, for Properties.Skip.
const (
	// SafetyCheck: over random workloads (hierarchical roles with weights,
	// priorities and guarantees, frameworks that launch, decline with
	// filters, hold offers, finish tasks, suppress, revive and declare
	// demand, agents and frameworks that come, go and change activity,
	// revoke_after on, max_offers now and then, re-Inits from snapshots),
	// every call succeeds and every proposal is valid (live agent, active
	// framework, subscribed and unsuppressed role, resources free, so never
	// more than free and never the same resources twice, within
	// max_offers), no offer goes against an active decline filter, and no
	// revocation is refused (none touches a task within its guarantee).
	SafetyCheck = "safety"
	// LimitsCheck: the safety workloads with quota limits on some roles,
	// changed at run time; additionally no offer takes a role's subtree
	// (offers plus tasks) past its limit on a resource the limit names.
	LimitsCheck = "limits"
	// FairnessOneAgentCheck: frameworks in flat roles of equal weight, each
	// launching one task of its shape per offer on a single agent, as in
	// the DRF paper's example, without declared demand (Mesos behaviour).
	//
	// Both fairness checks fill the cluster, finish a random half of the
	// tasks and fill it again, and assert after each fill that dominant
	// shares converged within one task: a framework whose share is below
	// another's share before that one's last task could not have run its
	// own task where that last task went. It is the DRF guarantee at task
	// granularity, with the one exception fragmentation forces (a framework
	// whose task fits nowhere any more cannot catch up).
	FairnessOneAgentCheck = "fairness/one-agent"
	// FairnessDemandCheck: the same on several agents, with every
	// framework declaring unlimited demand and launching as many tasks as
	// fit in each offer, so only task-granularity offers are fair.
	FairnessDemandCheck = "fairness/demand"
)

var allChecks = []string{SafetyCheck, LimitsCheck, FairnessOneAgentCheck, FairnessDemandCheck}

// Properties configures the property checks.
type Properties struct {
	// Seeds is how many seeded workloads each check runs (seeds 1 to
	// Seeds); 0 means 8.
	Seeds int
	// Cycles is how many allocation cycles a safety workload runs; 0
	// means 150.
	Cycles int
	// FairnessExclude names the resources the policy leaves out of
	// dominant shares (its fairness_exclude setting), so that the fairness
	// checks measure what the policy equalizes. The shares are computed by
	// sdk/allocator.DominantShare, as policies compute them.
	FairnessExclude []string
	// Skip maps a check name (SafetyCheck, ...) to why it is skipped: a
	// known policy bug with its issue, or a policy that does not mean to
	// meet it (a bin-packing policy is not fair).
	Skip map[string]string
}

// CheckProperties runs every property check with the default Properties.
// newPlugin is called once per workload; configJSON configures each plugin.
func CheckProperties(t *testing.T, newPlugin func(t *testing.T) allocator.Allocator, configJSON string) {
	t.Helper()
	Properties{}.Check(t, newPlugin, configJSON)
}

// Check runs every property check as a subtest named after it. A failure
// names the check, the seed and the cycle; workloads are deterministic, so
// the same seed reproduces it.
func (p Properties) Check(t *testing.T, newPlugin func(t *testing.T) allocator.Allocator, configJSON string) {
	t.Helper()
	for name := range p.Skip {
		if !slices.Contains(allChecks, name) {
			t.Fatalf("Properties.Skip names unknown check %q (checks: %s)", name, strings.Join(allChecks, ", "))
		}
	}
	seeds, cycles := p.Seeds, p.Cycles
	if seeds == 0 {
		seeds = 8
	}
	if cycles == 0 {
		cycles = 150
	}
	for _, name := range allChecks {
		t.Run(name, func(t *testing.T) {
			if why, ok := p.Skip[name]; ok {
				t.Skip(why)
			}
			for seed := uint64(1); seed <= uint64(seeds); seed++ {
				s := NewSim(newPlugin(t))
				if err := s.Configure(configJSON); err != nil {
					t.Fatal(err)
				}
				var err error
				switch name {
				case SafetyCheck, LimitsCheck:
					err = RunSafety(s, seed, cycles, name == LimitsCheck)
				case FairnessOneAgentCheck, FairnessDemandCheck:
					err = RunFairness(s, seed, name == FairnessDemandCheck, p.FairnessExclude)
				}
				if err != nil {
					t.Fatalf("%s, seed %d: %v", name, seed, err)
				}
			}
		})
	}
}

// The random cluster: agent sizes (some with ports, disk or gpus, so that
// non-scalar and scarce resources are exercised), roles (with hierarchy)
// and task shapes.
var (
	propAgentSizes = []string{
		"cpus:4;mem:8192;ports:[31000-31009]",
		"cpus:8;mem:16384;disk:100000",
		"cpus:16;mem:32768;ports:[31000-31099]",
		"cpus:2;mem:4096;gpus:1",
	}
	propRoles  = []string{"a", "b", "eng", "eng/ml", "eng/web", "eng/ml/train"}
	propShapes = []string{"cpus:1;mem:1024", "cpus:0.5;mem:4096", "cpus:2;mem:512", "cpus:1;mem:2048;gpus:1", "cpus:3;mem:3072"}
	// Guarantees are small and limits large enough to hold them, so that
	// any pair is a valid role setting.
	propGuarantees = []string{"", "cpus:2;mem:4096", "cpus:4", "mem:8192"}
	propLimits     = []string{"", "cpus:4", "cpus:6;mem:16384", "mem:12288", "cpus:10"}
	propRefuse     = []float64{0, 0, 1, 5, 30, 3600}
)

// world is one safety workload.
type world struct {
	s      *Sim
	rng    *rand.Rand
	limits bool
	shapes map[string][]resources.Resources // per framework
	agents int                              // agents ever added, for IDs
	fws    int                              // frameworks ever added, for IDs
}

// RunSafety runs the SafetyCheck workload (with quota limits: the
// LimitsCheck one) for cycles cycles on s and returns the first violation,
// naming the cycle.
func RunSafety(s *Sim, seed uint64, cycles int, limits bool) error {
	w := &world{s: s, rng: rand.New(rand.NewPCG(seed, 0x5afe)), limits: limits, shapes: map[string][]resources.Resources{}}
	s.RevokeAfter, s.RevokeGrace = 20_000, 3_000
	for range 3 + w.rng.IntN(4) {
		w.addAgent()
	}
	for range 3 + w.rng.IntN(3) {
		w.addFramework()
	}
	for _, r := range propRoles {
		if w.rng.IntN(2) == 0 {
			w.setRole(r)
		}
	}
	if err := w.fail(); err != nil {
		return fmt.Errorf("set-up: %w", err)
	}
	for cycle := 1; cycle <= cycles; cycle++ {
		if err := w.cycle(); err != nil {
			return fmt.Errorf("cycle %d (now %d): %w", cycle, s.Now(), err)
		}
	}
	return nil
}

// fail turns a Sim error in the workload itself into a violation: the
// workload only asks for what the master would accept.
func (w *world) fail(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("workload: %w", err)
		}
	}
	return nil
}

func (w *world) pick(n int) int { return w.rng.IntN(n) }

func (w *world) chance(p float64) bool { return w.rng.Float64() < p }

func (w *world) cycle() error {
	if err := w.events(); err != nil {
		return err
	}
	step := allocator.LogicalTime(1000)
	if w.chance(0.05) {
		step = 10_000 // let short filters expire
	}
	// Now and then the operator caps offers per cycle, and the plugin is
	// rebuilt from a snapshot (failover, hot swap): soft state must do.
	w.s.MaxOffers = []int{0, 0, 0, 0, 1, 3}[w.pick(6)]
	if w.chance(0.02) {
		if err := w.s.Reinit(); err != nil {
			return err
		}
	}
	c, err := w.s.Allocate(w.s.Now() + step)
	if err != nil {
		return err
	}
	for _, h := range c.IgnoredFilters {
		return fmt.Errorf("offer %s made despite the filter on %s until %d", DescribeProposal(h.Proposal), describeResources(h.Filter.Resources), h.Filter.ExpiresAt)
	}
	if w.limits {
		if err := w.s.checkLimits(c.Offers); err != nil {
			return err
		}
	}
	return w.respond()
}

// checkLimits fails when an offer adds a resource that a limit of its role
// or an ancestor names while that subtree is (after the cycle) past the
// limit. Usage only grows within a cycle, so checking the final usage
// checks every offer's.
func (s *Sim) checkLimits(offers []allocator.Proposal) error {
	for _, o := range offers {
		for _, r := range resources.RoleAncestors(o.Role) {
			limit := s.roles[r].Limit
			used := s.RoleTreeUsage(r)
			for _, n := range limit.ScalarNames() {
				if o.Resources.Scalar(n) > 0 && used.Scalar(n) > limit.Scalar(n) {
					var added resources.Resources
					for _, p := range offers {
						if inSubtree(p.Role, r) {
							added = added.Add(p.Resources)
						}
					}
					return fmt.Errorf("offer %s takes role %s's subtree to %s (offers plus tasks), past its limit %s; the subtree held %s before this cycle's offers to it (%s)",
						DescribeProposal(o), r, used, limit, describeResources(used.Subtract(added)), describeResources(added))
				}
			}
		}
	}
	return nil
}

// events changes the cluster at random, as operators, agents and
// frameworks do between cycles.
func (w *world) events() error {
	s := w.s
	for _, t := range s.Tasks() {
		if w.chance(0.04) {
			if err := s.Finish(t.FrameworkID, t.ID); err != nil {
				return w.fail(err)
			}
		}
	}
	agents, fws := s.Agents(), s.Frameworks()
	var errs []error
	// One roll per kind of change keeps each change rare and independent.
	switch x := w.rng.Float64(); {
	case x < 0.04 && len(agents) < 10:
		w.addAgent()
	case x >= 0.04 && x < 0.05 && len(agents) > 2:
		errs = append(errs, s.RemoveAgent(agents[w.pick(len(agents))].ID))
	case x >= 0.05 && x < 0.08:
		a := agents[w.pick(len(agents))]
		a.Active = !a.Active
		errs = append(errs, s.UpdateAgent(a))
	case x >= 0.08 && x < 0.10:
		a := agents[w.pick(len(agents))]
		a.Total = a.Total.Add(resources.MustParse("cpus:2;mem:2048"))
		errs = append(errs, s.UpdateAgent(a))
	}
	switch x := w.rng.Float64(); {
	case x < 0.02 && len(fws) < 8:
		w.addFramework()
	case x >= 0.02 && x < 0.03 && len(fws) > 2:
		errs = append(errs, s.RemoveFramework(fws[w.pick(len(fws))].ID))
	case x >= 0.03 && x < 0.06:
		f := fws[w.pick(len(fws))]
		errs = append(errs, s.SetFrameworkActive(f.ID, !f.Active))
	}
	fws = s.Frameworks()
	f := fws[w.pick(len(fws))]
	role := f.Roles[w.pick(len(f.Roles))]
	switch x := w.rng.Float64(); {
	case x < 0.05:
		errs = append(errs, s.Suppress(f.ID, role))
	case x < 0.08:
		errs = append(errs, s.Revive(f.ID)) // all roles
	case x < 0.10:
		errs = append(errs, s.Revive(f.ID, role))
	case x < 0.16 && !slices.Contains(f.SuppressedRoles, role):
		var shapes []allocator.TaskShape
		for range w.pick(3) { // none withdraws
			shape := w.shapes[f.ID][w.pick(len(w.shapes[f.ID]))]
			shapes = append(shapes, allocator.TaskShape{Resources: shape, Count: 1 + w.pick(5)})
		}
		errs = append(errs, s.Demand(f.ID, role, shapes...))
	case x >= 0.16 && x < 0.19:
		w.setRole(propRoles[w.pick(len(propRoles))])
	}
	return w.fail(errs...)
}

func (w *world) addAgent() {
	w.agents++
	a := allocator.Agent{ID: fmt.Sprintf("a%d", w.agents), Total: resources.MustParse(propAgentSizes[w.pick(len(propAgentSizes))]), Active: true}
	_ = w.s.AddAgent(a) // cannot fail: IDs are fresh
}

func (w *world) addFramework() {
	w.fws++
	id := fmt.Sprintf("f%d", w.fws)
	roles := []string{propRoles[w.pick(len(propRoles))]}
	if r := propRoles[w.pick(len(propRoles))]; w.chance(0.4) && r != roles[0] {
		roles = append(roles, r)
	}
	for range 1 + w.pick(2) {
		w.shapes[id] = append(w.shapes[id], resources.MustParse(propShapes[w.pick(len(propShapes))]))
	}
	_ = w.s.AddFramework(allocator.Framework{ID: id, Roles: roles, Active: true})
}

func (w *world) setRole(name string) {
	r := allocator.Role{
		Name:      name,
		Weight:    float64(1 + w.pick(3)),
		Priority:  int64(w.pick(3)),
		Guarantee: resources.MustParse(propGuarantees[w.pick(len(propGuarantees))]),
	}
	if w.limits {
		r.Limit = resources.MustParse(propLimits[w.pick(len(propLimits))])
		if !fitsGuarantee(r.Guarantee, r.Limit) {
			r.Guarantee = resources.Resources{}
		}
	}
	_ = w.s.SetRole(r) // cannot fail: the settings are valid by construction
}

// respond answers the outstanding offers: hold some for a cycle, decline
// some with a random filter, launch tasks out of the others.
func (w *world) respond() error {
	s := w.s
	type group struct{ f, r, a string }
	var groups []group
	for _, o := range s.Offers() {
		g := group{o.FrameworkID, o.Role, o.AgentID}
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	for _, g := range groups {
		switch x := w.rng.Float64(); {
		case x < 0.15:
			continue // held until a later cycle
		case x < 0.45:
			refuse := propRefuse[w.pick(len(propRefuse))]
			s.rescindWith(func(o allocator.Proposal) bool {
				return o.FrameworkID == g.f && o.Role == g.r && o.AgentID == g.a
			}, refuse)
		default:
			_, offered, err := s.offered(g.f, g.a, g.r)
			if err != nil {
				return w.fail(err)
			}
			shapes := w.shapes[g.f]
			shape := shapes[w.pick(len(shapes))]
			n := fits(offered, shape, 1+w.pick(3))
			specs := make([]TaskSpec, n)
			for i := range specs {
				specs[i].Resources = shape
			}
			refuse := []float64{0, 0, 5}[w.pick(3)]
			if n == 0 {
				refuse = 5
			}
			if _, err := s.Accept(Accept{Framework: g.f, Agent: g.a, Role: g.r, Tasks: specs, RefuseSeconds: refuse}); err != nil {
				return w.fail(err)
			}
		}
	}
	return nil
}

// Fairness workloads: agent sizes and task shapes of different dominant
// resources (the DRF paper's 9 CPUs / 18 GB and its two users among them),
// some with gpus so that a policy's FairnessExclude makes a difference.
// Every framework declares GPU_RESOURCES, so that policies that keep gpu
// agents for such frameworks treat them all alike.
var (
	fairAgentSizes = []string{"cpus:9;mem:18432", "cpus:16;mem:65536", "cpus:8;mem:16384", "cpus:12;mem:24576", "cpus:8;mem:16384;gpus:2"}
	fairShapes     = []string{"cpus:1;mem:4096", "cpus:3;mem:1024", "cpus:2;mem:2048", "cpus:1;mem:1024", "cpus:0.5;mem:3072", "cpus:4;mem:512", "cpus:1;mem:2048;gpus:1"}
)

// RunFairness runs a fairness workload on s (FairnessDemandCheck when
// demand is set, FairnessOneAgentCheck otherwise) and returns the first
// violation. exclude names resources the policy leaves out of shares.
func RunFairness(s *Sim, seed uint64, demand bool, exclude []string) error {
	rng := rand.New(rand.NewPCG(seed, 0xfa1e))
	agents := 1
	if demand {
		agents = 3 + rng.IntN(3)
	}
	for i := 1; i <= agents; i++ {
		total := resources.MustParse(fairAgentSizes[rng.IntN(len(fairAgentSizes))])
		if err := s.AddAgent(allocator.Agent{ID: fmt.Sprintf("a%d", i), Total: total, Active: true}); err != nil {
			return err
		}
	}
	work := Workload{MaxCycles: 2000}
	shapes := map[string]resources.Resources{}
	for i := 1; i <= 2+rng.IntN(3); i++ {
		id := fmt.Sprintf("f%d", i)
		f := allocator.Framework{ID: id, Roles: []string{fmt.Sprintf("r%d", i)}, Active: true,
			Capabilities: []string{allocator.CapabilityGPUResources}}
		if err := s.AddFramework(f); err != nil {
			return err
		}
		shapes[id] = resources.MustParse(fairShapes[rng.IntN(len(fairShapes))])
		g := Greedy{Framework: id, Task: shapes[id], PerOffer: 1}
		if demand {
			g.PerOffer, g.Demand = 0, true
		}
		work.Frameworks = append(work.Frameworks, g)
	}
	if _, err := s.RunGreedy(work); err != nil {
		return fmt.Errorf("filling the cluster: %w", err)
	}
	if err := s.checkEnvy(shapes, 0, exclude); err != nil {
		return fmt.Errorf("after filling the cluster: %w", err)
	}
	// Finish a random half of the tasks and fill again: shares must
	// converge from an unbalanced start too.
	tasks := s.Tasks()
	rng.Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
	for _, t := range tasks[:len(tasks)/2] {
		if err := s.Finish(t.FrameworkID, t.ID); err != nil {
			return err
		}
	}
	since := s.launches
	if _, err := s.RunGreedy(work); err != nil {
		return fmt.Errorf("refilling after finishing half the tasks: %w", err)
	}
	if err := s.checkEnvy(shapes, since, exclude); err != nil {
		return fmt.Errorf("after finishing half the tasks and refilling (now %d): %w", s.Now(), err)
	}
	return nil
}

// checkEnvy checks convergence within one task after a fill in which
// tasks only started (launch sequence > since). For each framework j and
// its last task T, placed on agent X when j's share was before(j): every
// framework i whose share is still below before(j) was below it then too
// (shares only grew), and the room T was placed in (what is free on X now
// plus T) was free then; so i's task must not fit in that room, or a fair
// policy would have given it to i.
func (s *Sim) checkEnvy(shapes map[string]resources.Resources, since uint64, exclude []string) error {
	total := s.ClusterTotal()
	share := func(r resources.Resources) float64 { return sdk.DominantShare(r, total, exclude...) }
	held := map[string]resources.Resources{}
	last := map[string]*taskEntry{}
	for _, t := range s.tasks {
		held[t.FrameworkID] = held[t.FrameworkID].Add(t.Resources)
		if t.seq > since && (last[t.FrameworkID] == nil || t.seq > last[t.FrameworkID].seq) {
			last[t.FrameworkID] = t
		}
	}
	ids := sortedKeys(shapes)
	var summary []string
	for _, id := range ids {
		summary = append(summary, fmt.Sprintf("%s=%.4f", id, share(held[id])))
	}
	for _, j := range ids {
		t := last[j]
		if t == nil {
			continue
		}
		before := share(held[j].Subtract(t.Resources))
		room := s.Free(t.AgentID).Add(t.Resources)
		for _, i := range ids {
			if i == j || share(held[i]) >= before-1e-9 || !room.Contains(shapes[i]) {
				continue
			}
			return fmt.Errorf("dominant shares did not converge within one task (%s): %s (share %.4f) is below %s's share before its last task %s/%s (%.4f), and %s's task %s fits where that task went on %s (%s free with it): a fair policy would have offered it to %s",
				strings.Join(summary, " "), i, share(held[i]), j, j, t.ID, before, i, shapes[i], t.AgentID, room, i)
		}
	}
	return nil
}
