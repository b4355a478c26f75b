package scheduler

import (
	"math"
	"sort"

	"google.golang.org/protobuf/proto"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TakeScalars carves the wanted scalar amounts (e.g. {"cpus": 0.5, "mem":
// 64}) out of offered resources. Each taken piece keeps the role it was
// offered under, because the master checks a task's resources against the
// offer role by role. It returns the pieces for a TaskInfo and what is left
// of the offer, or ok=false (and the offer untouched) when it falls short.
// Arithmetic is in thousandths, like the core, so repeated splitting does not
// drift.
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
		need := milli(want[name])
		for _, r := range rest {
			if need <= 0 {
				break
			}
			sc, isScalar := r.GetValue().(*corralpb.Resource_Scalar)
			if r.GetName() != name || !isScalar {
				continue
			}
			have := milli(sc.Scalar)
			n := min(need, have)
			if n <= 0 {
				continue
			}
			taken = append(taken, &corralpb.Resource{Name: name, Role: r.GetRole(),
				Value: &corralpb.Resource_Scalar{Scalar: float64(n) / 1000}})
			sc.Scalar = float64(have-n) / 1000
			need -= n
		}
		if need > 0 {
			return nil, offered, false
		}
	}
	kept := rest[:0]
	for _, r := range rest {
		if sc, isScalar := r.GetValue().(*corralpb.Resource_Scalar); isScalar && milli(sc.Scalar) <= 0 {
			continue
		}
		kept = append(kept, r)
	}
	return taken, kept, true
}

func milli(v float64) int64 { return int64(math.Round(v * 1000)) }
