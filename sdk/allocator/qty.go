package allocator

import (
	"math"

	"github.com/corral-project/corral/sdk/resources"
)

// qty is scalar amounts in fixed point (thousandths, as sdk/resources),
// indexed by a scalarIndex. The state keeps its per-role, per-framework and
// per-client totals as qty: tens of thousands of updates per cycle become
// integer additions instead of resource merges that allocate.
type qty []int64

// scalarIndex numbers the scalar resource names the state has seen.
type scalarIndex struct {
	idx   map[string]int
	names []string
}

func (x *scalarIndex) of(name string) int {
	if i, ok := x.idx[name]; ok {
		return i
	}
	if x.idx == nil {
		x.idx = map[string]int{}
	}
	x.idx[name] = len(x.names)
	x.names = append(x.names, name)
	return len(x.names) - 1
}

// add adds sign × the scalars of r to q, growing q as needed.
func (x *scalarIndex) add(q qty, r resources.Resources, sign int64) qty {
	r.EachScalar(func(name string, v float64) {
		i := x.of(name)
		for len(q) <= i {
			q = append(q, 0)
		}
		q[i] += sign * int64(math.Round(v*1000))
		if q[i] < 0 {
			q[i] = 0
		}
	})
	return q
}

// qtyDelta is a signed amount per scalar index, computed once per change.
type qtyDelta struct {
	idx []int
	v   []int64
}

// delta turns sign × the scalars of r into a qtyDelta.
func (x *scalarIndex) delta(r resources.Resources, sign int64) qtyDelta {
	var d qtyDelta
	r.EachScalar(func(name string, v float64) {
		d.idx = append(d.idx, x.of(name))
		d.v = append(d.v, sign*int64(math.Round(v*1000)))
	})
	return d
}

// addTo adds d to q (clamping at zero) and returns q, grown as needed.
func (d qtyDelta) addTo(q qty) qty {
	for j, i := range d.idx {
		for len(q) <= i {
			q = append(q, 0)
		}
		if q[i] += d.v[j]; q[i] < 0 {
			q[i] = 0
		}
	}
	return q
}

// resources turns q back into resources.
func (x *scalarIndex) resources(q qty) resources.Resources {
	var r resources.Resources
	for i, v := range q {
		if v > 0 {
			r = r.Add(resources.NewScalar(x.names[i], float64(v)/1000))
		}
	}
	return r
}

func (q qty) empty() bool {
	for _, v := range q {
		if v != 0 {
			return false
		}
	}
	return true
}
