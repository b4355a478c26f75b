package scheduler

import (
	"sort"

	"google.golang.org/protobuf/proto"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// TakeScalars carves the wanted scalar amounts (e.g. {"cpus": 0.5, "mem":
// 64}) out of offered resources. Each taken piece keeps the role it was
// offered under, because the master checks a task's resources against the
// offer role by role. It returns the pieces for a TaskInfo and what is left
// of the offer, or ok=false (and the offer untouched) when it falls short.
// Arithmetic is the resource model's fixed point (sdk/resources), so
// repeated splitting does not drift.
func TakeScalars(offered []*corralpb.Resource, want map[string]float64) (taken, rest []*corralpb.Resource, ok bool) {
	rest = make([]*corralpb.Resource, 0, len(offered))
	for _, r := range offered {
		rest = append(rest, proto.Clone(r).(*corralpb.Resource))
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		need := resources.NewScalar(name, want[name])
		for _, r := range rest {
			if need.IsEmpty() {
				break
			}
			sc, isScalar := r.GetValue().(*corralpb.Resource_Scalar)
			if r.GetName() != name || !isScalar {
				continue
			}
			have := resources.NewScalar(name, sc.Scalar)
			n := need.Intersect(have)
			if n.IsEmpty() {
				continue
			}
			taken = append(taken, &corralpb.Resource{Name: name, Role: r.GetRole(),
				Value: &corralpb.Resource_Scalar{Scalar: n.Scalar(name)}})
			sc.Scalar = have.Subtract(n).Scalar(name)
			need = need.Subtract(n)
		}
		if !need.IsEmpty() {
			return nil, offered, false
		}
	}
	kept := rest[:0]
	for _, r := range rest {
		if sc, isScalar := r.GetValue().(*corralpb.Resource_Scalar); isScalar && resources.NewScalar(r.GetName(), sc.Scalar).IsEmpty() {
			continue
		}
		kept = append(kept, r)
	}
	return taken, kept, true
}
