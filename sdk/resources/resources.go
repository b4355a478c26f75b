// Package resources implements corral's resource model: named scalars (cpus,
// mem, disk, gpus), range lists (ports) and sets, with exact arithmetic.
//
// Scalars are stored in fixed point (thousandths) so that offering, splitting
// and recovering 0.1 CPU a million times never drifts, as Mesos does.
//
// A Resources is an immutable value kept as name-sorted slices: the
// allocator adds and subtracts them thousands of times per cycle, and small
// sorted slices merge with one allocation where maps would copy and hash.
// Operations share untouched parts between values, which is safe because no
// slice is ever written after it is built.
package resources

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
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

type scalar struct {
	name string
	v    int64 // fixed point, > 0
}

// Resources is an immutable value: every operation returns a new value.
// The zero value is empty and ready to use.
type Resources struct {
	scalars []scalar
	ranges  []namedRanges // normalized range lists
	sets    []namedSet    // sorted, unique items
}

// NewScalar returns resources holding one scalar.
func NewScalar(name string, v float64) Resources {
	if f := toFixed(v); f > 0 {
		return Resources{scalars: []scalar{{name, f}}}
	}
	return Resources{}
}

// NewRanges returns resources holding one range list.
func NewRanges(name string, rs RangeSet) Resources {
	if rs = rs.normalize(); len(rs) > 0 {
		return Resources{ranges: []namedRanges{{name, rs}}}
	}
	return Resources{}
}

// NewSet returns resources holding one set.
func NewSet(name string, items ...string) Resources {
	if s := sortedUnique(items); len(s) > 0 {
		return Resources{sets: []namedSet{{name, s}}}
	}
	return Resources{}
}

func toFixed(v float64) int64 { return int64(math.Round(v * scale)) }

// ValidateName reports why name cannot name a resource, or nil. Names and
// set items must survive the text form ("name:value;...") unchanged.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("resource with empty name")
	}
	if err := validateToken(name); err != nil {
		return fmt.Errorf("resource name %q: %w", name, err)
	}
	return nil
}

// validateToken checks a resource name or set item.
func validateToken(s string) error {
	if len(s) > maxTokenLen {
		return fmt.Errorf("longer than %d bytes", maxTokenLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	for _, c := range s {
		if unicode.IsSpace(c) || unicode.IsControl(c) || strings.ContainsRune(reserved, c) {
			return fmt.Errorf("contains %q (no spaces, control characters or any of %q)", c, reserved)
		}
	}
	return nil
}

// reserved are the characters of the text syntax.
const reserved = ";:[]{},"

const maxTokenLen = 255

// ValidateScalar reports why v is not a usable scalar quantity, or nil.
func ValidateScalar(name string, v float64) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	switch {
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

func (r Resources) fixed(name string) int64 {
	i := sort.Search(len(r.scalars), func(i int) bool { return r.scalars[i].name >= name })
	if i < len(r.scalars) && r.scalars[i].name == name {
		return r.scalars[i].v
	}
	return 0
}

func (r Resources) rangesOf(name string) RangeSet {
	for _, nr := range r.ranges {
		if nr.name == name {
			return nr.val
		}
	}
	return nil
}

func (r Resources) setOf(name string) []string {
	for _, ns := range r.sets {
		if ns.name == name {
			return ns.val
		}
	}
	return nil
}

// Scalar returns the named scalar, 0 when absent.
func (r Resources) Scalar(name string) float64 { return float64(r.fixed(name)) / scale }

// Ranges returns the named range list, empty when absent.
func (r Resources) Ranges(name string) RangeSet { return r.rangesOf(name).clone() }

// Set returns the named set's items, sorted.
func (r Resources) Set(name string) []string { return append([]string{}, r.setOf(name)...) }

// ScalarNames returns the names of the non-zero scalars, sorted.
func (r Resources) ScalarNames() []string {
	out := make([]string, len(r.scalars))
	for i, s := range r.scalars {
		out[i] = s.name
	}
	return out
}

// EachScalar calls f for every non-zero scalar in name order, without
// allocating: for hot loops such as share computations.
func (r Resources) EachScalar(f func(name string, v float64)) {
	for _, s := range r.scalars {
		f(s.name, float64(s.v)/scale)
	}
}

// IsEmpty reports whether r holds nothing.
func (r Resources) IsEmpty() bool {
	return len(r.scalars) == 0 && len(r.ranges) == 0 && len(r.sets) == 0
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{
		scalars: mergeScalars(r.scalars, o.scalars, 1),
		ranges:  mergeNamed(r.ranges, o.ranges, RangeSet.Union),
		sets:    mergeNamed(r.sets, o.sets, unionSorted),
	}
}

// Subtract returns r - o. Quantities that would go below zero become zero;
// callers that must not over-subtract check Contains first.
func (r Resources) Subtract(o Resources) Resources {
	return Resources{
		scalars: mergeScalars(r.scalars, o.scalars, -1),
		ranges:  mergeNamed(r.ranges, o.ranges, RangeSet.Minus),
		sets:    mergeNamed(r.sets, o.sets, minusSorted),
	}
}

// Contains reports whether o fits inside r.
func (r Resources) Contains(o Resources) bool {
	i := 0
	for _, s := range o.scalars {
		for i < len(r.scalars) && r.scalars[i].name < s.name {
			i++
		}
		if i == len(r.scalars) || r.scalars[i].name != s.name || r.scalars[i].v < s.v {
			return false
		}
	}
	for _, nr := range o.ranges {
		if !r.rangesOf(nr.name).Contains(nr.val) {
			return false
		}
	}
	for _, ns := range o.sets {
		if len(minusSorted(ns.val, r.setOf(ns.name))) > 0 {
			return false
		}
	}
	return true
}

// Equal reports whether r and o hold exactly the same resources.
func (r Resources) Equal(o Resources) bool {
	// Values of the same resources are mostly held alike (lists sorted by
	// name, ranges normalized), and comparing them element by element is
	// several times cheaper than two containment checks: the allocator
	// glue compares tens of thousands of offers per cycle.
	if identical(r, o) {
		return true
	}
	return r.Contains(o) && o.Contains(r)
}

// identical reports whether r and o hold the same lists element by
// element.
func identical(r, o Resources) bool {
	if len(r.scalars) != len(o.scalars) || len(r.ranges) != len(o.ranges) || len(r.sets) != len(o.sets) ||
		!slices.Equal(r.scalars, o.scalars) {
		return false
	}
	for i := range r.ranges {
		if r.ranges[i].name != o.ranges[i].name || !slices.Equal(r.ranges[i].val, o.ranges[i].val) {
			return false
		}
	}
	for i := range r.sets {
		if r.sets[i].name != o.sets[i].name || !slices.Equal(r.sets[i].val, o.sets[i].val) {
			return false
		}
	}
	return true
}

// Intersect returns the resources present in both r and o.
func (r Resources) Intersect(o Resources) Resources {
	var out Resources
	for _, s := range r.scalars {
		if v := min(s.v, o.fixed(s.name)); v > 0 {
			out.scalars = append(out.scalars, scalar{s.name, v})
		}
	}
	for _, nr := range r.ranges {
		if rs := nr.val.Minus(nr.val.Minus(o.rangesOf(nr.name))); len(rs) > 0 {
			out.ranges = append(out.ranges, namedRanges{nr.name, rs})
		}
	}
	for _, ns := range r.sets {
		if both := minusSorted(ns.val, minusSorted(ns.val, o.setOf(ns.name))); len(both) > 0 {
			out.sets = append(out.sets, namedSet{ns.name, both})
		}
	}
	return out
}

// Scalars returns only the scalar part of r.
func (r Resources) Scalars() Resources { return Resources{scalars: r.scalars} }

// String renders r in the same syntax Parse accepts, sorted by name:
// "cpus:2;mem:1024;ports:[31000-31010]".
func (r Resources) String() string {
	var parts []string
	for _, s := range r.scalars {
		parts = append(parts, s.name+":"+formatFixed(s.v))
	}
	for _, nr := range r.ranges {
		parts = append(parts, nr.name+":"+nr.val.String())
	}
	for _, ns := range r.sets {
		parts = append(parts, ns.name+":{"+strings.Join(ns.val, ",")+"}")
	}
	return strings.Join(parts, ";")
}

func formatFixed(v int64) string {
	s := fmt.Sprintf("%.3f", float64(v)/scale)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// mergeScalars returns a + sign*b over name-sorted lists, dropping results
// that are zero or below. It returns a itself when b is empty.
func mergeScalars(a, b []scalar, sign int64) []scalar {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 && sign < 0 {
		return nil
	}
	out := make([]scalar, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].name < b[j].name):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].name < a[i].name:
			if sign > 0 {
				out = append(out, b[j])
			}
			j++
		default:
			v := a[i].v + sign*b[j].v
			if sign > 0 && v < a[i].v {
				// Saturate rather than wrap: a cluster's total sums every
				// agent's (validated, but possibly huge) quantities.
				v = math.MaxInt64
			}
			if v > 0 {
				out = append(out, scalar{a[i].name, v})
			}
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// named is a range list or a set under its resource name.
type named[T any] struct {
	name string
	val  T // never empty
}

type namedRanges = named[RangeSet]

type namedSet = named[[]string]

// mergeNamed combines two name-sorted lists with op, name by name; an
// absent value counts as empty and empty results are dropped. It returns a
// itself when b is empty.
func mergeNamed[T ~[]E, E any](a, b []named[T], op func(x, y T) T) []named[T] {
	if len(b) == 0 {
		return a
	}
	var out []named[T]
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var name string
		var x, y T
		switch {
		case j == len(b) || (i < len(a) && a[i].name < b[j].name):
			out = append(out, a[i])
			i++
			continue
		case i == len(a) || b[j].name < a[i].name:
			name, y = b[j].name, b[j].val
			j++
		default:
			name, x, y = a[i].name, a[i].val, b[j].val
			i++
			j++
		}
		if v := op(x, y); len(v) > 0 {
			out = append(out, named[T]{name, v})
		}
	}
	return out
}

func sortedUnique(items []string) []string {
	s := append([]string(nil), items...)
	sort.Strings(s)
	out := s[:0]
	for i, it := range s {
		if i == 0 || it != s[i-1] {
			out = append(out, it)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// unionSorted and minusSorted work on sorted, unique lists.
func unionSorted(x, y []string) []string {
	out := make([]string, 0, len(x)+len(y))
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case j == len(y) || (i < len(x) && x[i] < y[j]):
			out = append(out, x[i])
			i++
		case i == len(x) || y[j] < x[i]:
			out = append(out, y[j])
			j++
		default:
			out = append(out, x[i])
			i++
			j++
		}
	}
	return out
}

func minusSorted(x, y []string) []string {
	var out []string
	j := 0
	for _, it := range x {
		for j < len(y) && y[j] < it {
			j++
		}
		if j < len(y) && y[j] == it {
			continue
		}
		out = append(out, it)
	}
	return out
}
