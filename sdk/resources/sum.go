package resources

import "math"

// Sum adds up many Resources: s.Add(r) for each, then s.Resources(). It
// equals folding Add, but scalars accumulate in place once their names are
// all present, so summing a hundred thousand tasks' resources (the master's
// per-role allocation, read under its lock on every metrics scrape)
// allocates a few slices, not one per term. Ranges and sets merge as Add
// does. The zero value is an empty sum.
type Sum struct {
	r Resources
	// owned: r.scalars was built by this Sum and not handed out yet, so
	// it may be written.
	owned bool
}

// Add adds o to the sum.
func (s *Sum) Add(o Resources) {
	if len(o.scalars) > 0 {
		if !s.owned || !addScalarsInPlace(s.r.scalars, o.scalars) {
			// mergeScalars builds a new slice here (o has scalars, and a
			// sum of positive values is never empty).
			s.r.scalars = mergeScalars(s.r.scalars, o.scalars, 1)
			s.owned = true
		}
	}
	s.r.ranges = mergeNamed(s.r.ranges, o.ranges, RangeSet.Union)
	s.r.sets = mergeNamed(s.r.sets, o.sets, unionSorted)
}

// Resources is the sum so far. Later Adds do not change the value
// returned (Resources values are immutable).
func (s *Sum) Resources() Resources {
	s.owned = false
	return s.r
}

// addScalarsInPlace adds b into a when every name of b is in a (both
// name-sorted), saturating as mergeScalars does; false (a untouched) when
// a name is missing.
func addScalarsInPlace(a, b []scalar) bool {
	i := 0
	for _, y := range b {
		for i < len(a) && a[i].name < y.name {
			i++
		}
		if i == len(a) || a[i].name != y.name {
			return false
		}
	}
	i = 0
	for _, y := range b {
		for a[i].name < y.name {
			i++
		}
		v := a[i].v + y.v
		if v < a[i].v {
			v = math.MaxInt64
		}
		a[i].v = v
	}
	return true
}
