package resources

import (
	"fmt"
	"sort"
	"strings"
)

// Range is an inclusive interval of unsigned integers, e.g. ports.
type Range struct{ Begin, End uint64 }

// RangeSet is a sorted list of disjoint, non-adjacent ranges.
type RangeSet []Range

// Len returns how many integers the set covers.
func (s RangeSet) Len() uint64 {
	var n uint64
	for _, r := range s {
		n += r.End - r.Begin + 1
	}
	return n
}

// Union returns s ∪ o.
func (s RangeSet) Union(o RangeSet) RangeSet {
	all := make(RangeSet, 0, len(s)+len(o))
	all = append(all, s...)
	all = append(all, o...)
	return all.normalize()
}

// Minus returns s \ o.
func (s RangeSet) Minus(o RangeSet) RangeSet {
	out := RangeSet{}
	for _, r := range s {
		pieces := RangeSet{r}
		for _, cut := range o {
			var next RangeSet
			for _, p := range pieces {
				if cut.End < p.Begin || cut.Begin > p.End {
					next = append(next, p)
					continue
				}
				if cut.Begin > p.Begin {
					next = append(next, Range{p.Begin, cut.Begin - 1})
				}
				if cut.End < p.End {
					next = append(next, Range{cut.End + 1, p.End})
				}
			}
			pieces = next
		}
		out = append(out, pieces...)
	}
	return out.normalize()
}

// Contains reports whether every integer of o is in s.
func (s RangeSet) Contains(o RangeSet) bool { return len(o.Minus(s)) == 0 }

// Take returns the first n integers of s as a set, or false when s is smaller.
func (s RangeSet) Take(n uint64) (RangeSet, bool) {
	var out RangeSet
	for _, r := range s {
		if n == 0 {
			break
		}
		size := r.End - r.Begin + 1
		if size > n {
			out = append(out, Range{r.Begin, r.Begin + n - 1})
			n = 0
			break
		}
		out = append(out, r)
		n -= size
	}
	return out, n == 0
}

func (s RangeSet) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = fmt.Sprintf("%d-%d", r.Begin, r.End)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func (s RangeSet) clone() RangeSet {
	if s == nil {
		return nil
	}
	return append(RangeSet(nil), s...)
}

func (s RangeSet) normalize() RangeSet {
	if len(s) == 0 {
		return nil
	}
	c := s.clone()
	sort.Slice(c, func(i, j int) bool { return c[i].Begin < c[j].Begin })
	out := RangeSet{c[0]}
	for _, r := range c[1:] {
		last := &out[len(out)-1]
		if r.Begin <= last.End+1 && last.End != ^uint64(0) || r.Begin <= last.End {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
