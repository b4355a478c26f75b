package allocator

import (
	"slices"

	"github.com/corral-project/corral/sdk/resources"
)

// Dominant shares are computed here and nowhere else: DominantShare, the
// State's shares, the fairshare engine and the testkit all use a
// ShareBasis, so every policy honours excluded resources the same way.

// ShareBasis is the arithmetic of dominant shares against one cluster
// total with some resources excluded from fairness. Amounts can be kept
// as vectors in Names order, which lets a policy update thousands of
// shares per cycle without building resources.
type ShareBasis struct {
	names   []string
	total   []float64
	counted []bool // the resource counts toward shares
}

// NewShareBasis returns the basis for a cluster total. Resources named in
// exclude, and resources the cluster has none of, do not count. Ranges
// and sets never count, as in Mesos' DRF sorter.
func NewShareBasis(total resources.Resources, exclude ...string) *ShareBasis {
	b := &ShareBasis{names: total.ScalarNames()}
	for _, n := range b.names {
		t := total.Scalar(n)
		b.total = append(b.total, t)
		b.counted = append(b.counted, t > 0 && !slices.Contains(exclude, n))
	}
	return b
}

// Names lists the scalar resources of the basis, in vector order.
func (b *ShareBasis) Names() []string { return b.names }

// Vector returns r's scalars in Names order (others are dropped).
func (b *ShareBasis) Vector(r resources.Resources) []float64 {
	v := make([]float64, len(b.names))
	b.AddTo(v, r)
	return v
}

// AddTo adds r's scalars to v.
func (b *ShareBasis) AddTo(v []float64, r resources.Resources) {
	r.EachScalar(func(name string, q float64) {
		if i, ok := slices.BinarySearch(b.names, name); ok {
			v[i] += q
		}
	})
}

// OfVector is the dominant share of the amounts in v: the largest
// fraction of the cluster total of any counted resource.
func (b *ShareBasis) OfVector(v []float64) float64 {
	var s float64
	for i, q := range v {
		if b.counted[i] {
			s = max(s, q/b.total[i])
		}
	}
	return s
}

// Of is the dominant share of r.
func (b *ShareBasis) Of(r resources.Resources) float64 {
	var s float64
	r.EachScalar(func(name string, q float64) {
		if i, ok := slices.BinarySearch(b.names, name); ok && b.counted[i] {
			s = max(s, q/b.total[i])
		}
	})
	return s
}

// DominantShare returns max over scalar resources r of allocated_r/total_r,
// skipping resources named in exclude and resources the cluster has none
// of. Ranges and sets do not count, as in Mesos' DRF sorter.
func DominantShare(allocated, total resources.Resources, exclude ...string) float64 {
	return NewShareBasis(total, exclude...).Of(allocated)
}

// ofFixed is the dominant share of fixed-point amounts indexed by x.
func (b *ShareBasis) ofFixed(q qty, x *scalarIndex) float64 {
	var s float64
	for j, v := range q {
		if v <= 0 {
			continue
		}
		if i, ok := slices.BinarySearch(b.names, x.names[j]); ok && b.counted[i] {
			s = max(s, float64(v)/1000/b.total[i])
		}
	}
	return s
}

// RoleTreeShare is the dominant share of a role's whole subtree (not
// divided by its weight) against b, without building resources: policies
// report it for every role every cycle.
func (s *State) RoleTreeShare(role string, b *ShareBasis) float64 {
	return b.ofFixed(s.byRoleTree[role], &s.scalars)
}

// FrameworkShareIn is FrameworkShare against b.
func (s *State) FrameworkShareIn(frameworkID string, b *ShareBasis) float64 {
	return b.ofFixed(s.byFramework[frameworkID], &s.scalars)
}
