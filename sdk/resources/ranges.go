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

// Union returns s ∪ o. Both are normalized, so one linear merge does:
// the allocator unions port ranges many thousand times per cycle.
func (s RangeSet) Union(o RangeSet) RangeSet {
	if len(o) == 0 {
		return s.clone()
	}
	if len(s) == 0 {
		return o.clone()
	}
	out := make(RangeSet, 0, len(s)+len(o))
	i, j := 0, 0
	for i < len(s) || j < len(o) {
		var r Range
		if j == len(o) || (i < len(s) && s[i].Begin <= o[j].Begin) {
			r = s[i]
			i++
		} else {
			r = o[j]
			j++
		}
		if n := len(out); n > 0 && (r.Begin <= out[n-1].End || out[n-1].End != ^uint64(0) && r.Begin == out[n-1].End+1) {
			if r.End > out[n-1].End {
				out[n-1].End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// Minus returns s \ o, sweeping both sorted lists once.
func (s RangeSet) Minus(o RangeSet) RangeSet {
	if len(s) == 0 {
		return nil
	}
	if len(o) == 0 {
		return s.clone()
	}
	var out RangeSet
	j := 0
	for _, r := range s {
		begin := r.Begin
		for j < len(o) && o[j].End < begin {
			j++
		}
		covered := false // the rest of r is cut away
		for k := j; k < len(o) && o[k].Begin <= r.End; k++ {
			if o[k].Begin > begin {
				out = append(out, Range{begin, o[k].Begin - 1})
			}
			if o[k].End >= r.End {
				covered = true
				break
			}
			begin = o[k].End + 1
		}
		if !covered {
			out = append(out, Range{begin, r.End})
		}
	}
	return out
}

// Contains reports whether every integer of o is in s, without allocating.
func (s RangeSet) Contains(o RangeSet) bool {
	i := 0
	for _, r := range o {
		for i < len(s) && s[i].End < r.Begin {
			i++
		}
		if i == len(s) || s[i].Begin > r.Begin || s[i].End < r.End {
			return false
		}
	}
	return true
}

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
