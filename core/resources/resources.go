// Package resources implements corral's resource model: named scalars (cpus,
// mem, disk, gpus), range lists (ports) and sets, with exact arithmetic.
//
// Scalars are stored in fixed point (thousandths) so that offering, splitting
// and recovering 0.1 CPU a million times never drifts, as Mesos does.
package resources

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// scale is the fixed-point denominator for scalars: three decimal digits.
const scale = 1000

// Well-known resource names.
const (
	CPUs  = "cpus"
	Mem   = "mem"
	Disk  = "disk"
	GPUs  = "gpus"
	Ports = "ports"
)

// Resources is an immutable value: every operation returns a new value.
// The zero value is empty and ready to use.
type Resources struct {
	scalars map[string]int64
	ranges  map[string]RangeSet
	sets    map[string]map[string]struct{}
}

// NewScalar returns resources holding one scalar.
func NewScalar(name string, v float64) Resources {
	var r Resources
	r.scalars = map[string]int64{name: toFixed(v)}
	return r.normalize()
}

// NewRanges returns resources holding one range list.
func NewRanges(name string, rs RangeSet) Resources {
	var r Resources
	r.ranges = map[string]RangeSet{name: rs.normalize()}
	return r.normalize()
}

// NewSet returns resources holding one set.
func NewSet(name string, items ...string) Resources {
	var r Resources
	r.sets = map[string]map[string]struct{}{name: {}}
	for _, it := range items {
		r.sets[name][it] = struct{}{}
	}
	return r.normalize()
}

func toFixed(v float64) int64 { return int64(math.Round(v * scale)) }

// ValidateScalar reports why v is not a usable scalar quantity, or nil.
func ValidateScalar(name string, v float64) error {
	switch {
	case name == "":
		return fmt.Errorf("resource with empty name")
	case math.IsNaN(v):
		return fmt.Errorf("resource %q: quantity is NaN", name)
	case math.IsInf(v, 0):
		return fmt.Errorf("resource %q: quantity is infinite", name)
	case v < 0:
		return fmt.Errorf("resource %q: quantity %v is negative", name, v)
	case v > math.MaxInt64/scale:
		return fmt.Errorf("resource %q: quantity %v is too large", name, v)
	}
	return nil
}

// Scalar returns the named scalar, 0 when absent.
func (r Resources) Scalar(name string) float64 {
	return float64(r.scalars[name]) / scale
}

// Ranges returns the named range list, empty when absent.
func (r Resources) Ranges(name string) RangeSet { return r.ranges[name].clone() }

// Set returns the named set's items, sorted.
func (r Resources) Set(name string) []string {
	out := make([]string, 0, len(r.sets[name]))
	for it := range r.sets[name] {
		out = append(out, it)
	}
	sort.Strings(out)
	return out
}

// ScalarNames returns the names of the non-zero scalars, sorted.
func (r Resources) ScalarNames() []string {
	out := make([]string, 0, len(r.scalars))
	for n := range r.scalars {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// IsEmpty reports whether r holds nothing.
func (r Resources) IsEmpty() bool {
	return len(r.scalars) == 0 && len(r.ranges) == 0 && len(r.sets) == 0
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	out := r.clone()
	for n, v := range o.scalars {
		out.scalars[n] += v
	}
	for n, rs := range o.ranges {
		out.ranges[n] = out.ranges[n].Union(rs)
	}
	for n, s := range o.sets {
		if out.sets[n] == nil {
			out.sets[n] = map[string]struct{}{}
		}
		for it := range s {
			out.sets[n][it] = struct{}{}
		}
	}
	return out.normalize()
}

// Subtract returns r - o. Quantities that would go below zero become zero;
// callers that must not over-subtract check Contains first.
func (r Resources) Subtract(o Resources) Resources {
	out := r.clone()
	for n, v := range o.scalars {
		out.scalars[n] -= v
		if out.scalars[n] < 0 {
			out.scalars[n] = 0
		}
	}
	for n, rs := range o.ranges {
		out.ranges[n] = out.ranges[n].Minus(rs)
	}
	for n, s := range o.sets {
		for it := range s {
			delete(out.sets[n], it)
		}
	}
	return out.normalize()
}

// Contains reports whether o fits inside r.
func (r Resources) Contains(o Resources) bool {
	for n, v := range o.scalars {
		if r.scalars[n] < v {
			return false
		}
	}
	for n, rs := range o.ranges {
		if !r.ranges[n].Contains(rs) {
			return false
		}
	}
	for n, s := range o.sets {
		for it := range s {
			if _, ok := r.sets[n][it]; !ok {
				return false
			}
		}
	}
	return true
}

// Equal reports whether r and o hold exactly the same resources.
func (r Resources) Equal(o Resources) bool { return r.Contains(o) && o.Contains(r) }

// Intersect returns the resources present in both r and o.
func (r Resources) Intersect(o Resources) Resources {
	var out Resources
	out.scalars = map[string]int64{}
	out.ranges = map[string]RangeSet{}
	out.sets = map[string]map[string]struct{}{}
	for n, v := range r.scalars {
		out.scalars[n] = min(v, o.scalars[n])
	}
	for n, rs := range r.ranges {
		out.ranges[n] = rs.Minus(rs.Minus(o.ranges[n]))
	}
	for n, s := range r.sets {
		for it := range s {
			if _, ok := o.sets[n][it]; ok {
				if out.sets[n] == nil {
					out.sets[n] = map[string]struct{}{}
				}
				out.sets[n][it] = struct{}{}
			}
		}
	}
	return out.normalize()
}

// Scalars returns only the scalar part of r.
func (r Resources) Scalars() Resources {
	var out Resources
	out.scalars = make(map[string]int64, len(r.scalars))
	for n, v := range r.scalars {
		out.scalars[n] = v
	}
	return out.normalize()
}

// String renders r in the same syntax Parse accepts, sorted by name:
// "cpus:2;mem:1024;ports:[31000-31010]".
func (r Resources) String() string {
	var parts []string
	for _, n := range r.ScalarNames() {
		parts = append(parts, fmt.Sprintf("%s:%s", n, formatFixed(r.scalars[n])))
	}
	names := make([]string, 0, len(r.ranges))
	for n := range r.ranges {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s:%s", n, r.ranges[n]))
	}
	names = names[:0]
	for n := range r.sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s:{%s}", n, strings.Join(r.Set(n), ",")))
	}
	return strings.Join(parts, ";")
}

func formatFixed(v int64) string {
	s := fmt.Sprintf("%.3f", float64(v)/scale)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func (r Resources) clone() Resources {
	out := Resources{
		scalars: make(map[string]int64, len(r.scalars)),
		ranges:  make(map[string]RangeSet, len(r.ranges)),
		sets:    make(map[string]map[string]struct{}, len(r.sets)),
	}
	for n, v := range r.scalars {
		out.scalars[n] = v
	}
	for n, rs := range r.ranges {
		out.ranges[n] = rs.clone()
	}
	for n, s := range r.sets {
		m := make(map[string]struct{}, len(s))
		for it := range s {
			m[it] = struct{}{}
		}
		out.sets[n] = m
	}
	return out
}

// normalize drops zero scalars, empty range lists and empty sets so that
// IsEmpty and Equal need no special cases.
func (r Resources) normalize() Resources {
	for n, v := range r.scalars {
		if v == 0 {
			delete(r.scalars, n)
		}
	}
	for n, rs := range r.ranges {
		if len(rs) == 0 {
			delete(r.ranges, n)
		}
	}
	for n, s := range r.sets {
		if len(s) == 0 {
			delete(r.sets, n)
		}
	}
	return r
}
