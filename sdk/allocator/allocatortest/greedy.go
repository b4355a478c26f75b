package allocatortest

import (
	"fmt"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// UnlimitedDemand is the task count a Greedy framework declares: more
// tasks than any test cluster holds.
const UnlimitedDemand = 1 << 16

// Greedy is a framework that always wants one more task of one shape, like
// the users of the DRF paper's examples.
type Greedy struct {
	Framework string
	Task      resources.Resources
	// PerOffer caps the tasks launched from one offer; 0 launches as many
	// as fit.
	PerOffer int
	// Demand declares UnlimitedDemand tasks of Task under each of the
	// framework's roles before the first cycle.
	Demand bool
}

// Workload runs greedy frameworks until the cluster has nothing left that
// any of them can use.
type Workload struct {
	Frameworks []Greedy
	// Step is the logical time between cycles; 0 means 1000 ms.
	Step allocator.LogicalTime
	// MaxCycles bounds the run; 0 means 1000.
	MaxCycles int
	// NoFitRefuse is the filter, in seconds, with which a framework
	// declines an offer that fits none of its tasks; 0 means 3600 (it
	// knows the resources are useless to it until they grow). The unused
	// rest of an offer it launched from is declined without a filter, so
	// that it is offered again to whoever is then furthest below its share.
	NoFitRefuse float64
}

// Outcome is what a workload run did.
type Outcome struct {
	Cycles   int
	Launched map[string]int // tasks launched per framework
	// Last is the final cycle: it made no offer, so its metrics describe
	// the final allocation.
	Last *Cycle
}

// RunGreedy runs cycles Step apart, from Now()+Step. After each cycle
// every framework answers all its outstanding offers: a framework of the
// workload launches tasks of its shape out of each (framework, role, agent)
// group of offers and declines the rest; any other framework declines its
// offers with NoFitRefuse. The run stops after the first cycle that makes
// no offer; it fails if the Sim reports an error or the run does not stop
// within MaxCycles.
func (s *Sim) RunGreedy(w Workload) (*Outcome, error) {
	step, maxCycles, noFit := w.Step, w.MaxCycles, w.NoFitRefuse
	if step == 0 {
		step = 1000
	}
	if maxCycles == 0 {
		maxCycles = 1000
	}
	if noFit == 0 {
		noFit = 3600
	}
	byID := map[string]Greedy{}
	for _, g := range w.Frameworks {
		f, ok := s.frameworks[g.Framework]
		if !ok {
			return nil, fmt.Errorf("workload framework %s is not subscribed", g.Framework)
		}
		if g.Task.IsEmpty() {
			return nil, fmt.Errorf("workload framework %s has an empty task shape", g.Framework)
		}
		byID[g.Framework] = g
		if g.Demand {
			for _, r := range f.Roles {
				if err := s.Demand(g.Framework, r, allocator.TaskShape{Resources: g.Task, Count: UnlimitedDemand}); err != nil {
					return nil, err
				}
			}
		}
	}
	out := &Outcome{Launched: map[string]int{}}
	for cycle := 1; cycle <= maxCycles; cycle++ {
		c, err := s.Allocate(s.now + step)
		if err != nil {
			return out, fmt.Errorf("cycle %d (now %d): %w", cycle, s.now, err)
		}
		out.Cycles, out.Last = cycle, c
		if len(c.Offers) == 0 {
			return out, nil
		}
		if err := s.answerGreedy(byID, noFit, out.Launched); err != nil {
			return out, fmt.Errorf("cycle %d (now %d): %w", cycle, s.now, err)
		}
	}
	return out, fmt.Errorf("the workload still gets offers after %d cycles", maxCycles)
}

// answerGreedy answers every outstanding offer, oldest group first.
func (s *Sim) answerGreedy(byID map[string]Greedy, noFit float64, launched map[string]int) error {
	type group struct{ f, r, a string }
	var order []group
	seen := map[group]bool{}
	for _, o := range s.offers {
		g := group{o.FrameworkID, o.Role, o.AgentID}
		if !seen[g] {
			seen[g] = true
			order = append(order, g)
		}
	}
	for _, g := range order {
		_, offered, err := s.offered(g.f, g.a, g.r)
		if err != nil {
			return err
		}
		fw, ok := byID[g.f]
		n := 0
		if ok {
			n = fits(offered, fw.Task, fw.PerOffer)
		}
		if n == 0 {
			s.rescindWith(func(o allocator.Proposal) bool {
				return o.FrameworkID == g.f && o.Role == g.r && o.AgentID == g.a
			}, noFit)
			continue
		}
		specs := make([]TaskSpec, n)
		for i := range specs {
			specs[i].Resources = fw.Task
		}
		if _, err := s.Accept(Accept{Framework: g.f, Agent: g.a, Role: g.r, Tasks: specs}); err != nil {
			return err
		}
		launched[g.f] += n
	}
	return nil
}

// fits counts the tasks of shape task that fit in r, at most limit (0: no
// limit).
func fits(r, task resources.Resources, limit int) int {
	n := 0
	for r.Contains(task) && (limit == 0 || n < limit) {
		r = r.Subtract(task)
		n++
	}
	return n
}
