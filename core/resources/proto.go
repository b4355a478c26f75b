package resources

import (
	"fmt"
	"sort"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// FromProto converts and validates wire resources. Repeated names are summed.
// The error names the offending resource.
func FromProto(in []*corralpb.Resource) (Resources, error) {
	var out Resources
	for i, r := range in {
		if r == nil {
			return Resources{}, fmt.Errorf("resource %d is null", i)
		}
		if r.Name == "" {
			return Resources{}, fmt.Errorf("resource %d has an empty name", i)
		}
		switch v := r.Value.(type) {
		case *corralpb.Resource_Scalar:
			if err := ValidateScalar(r.Name, v.Scalar); err != nil {
				return Resources{}, err
			}
			out = out.Add(NewScalar(r.Name, v.Scalar))
		case *corralpb.Resource_Ranges:
			var rs RangeSet
			for _, x := range v.Ranges.GetRange() {
				if x.Begin > x.End {
					return Resources{}, fmt.Errorf("resource %q: range %d-%d begins after it ends", r.Name, x.Begin, x.End)
				}
				rs = append(rs, Range{x.Begin, x.End})
			}
			out = out.Add(NewRanges(r.Name, rs))
		case *corralpb.Resource_Set:
			out = out.Add(NewSet(r.Name, v.Set.GetItem()...))
		default:
			return Resources{}, fmt.Errorf("resource %q has no value", r.Name)
		}
	}
	return out, nil
}

// ToProto converts r to wire form, sorted by name for deterministic output.
func (r Resources) ToProto() []*corralpb.Resource {
	var out []*corralpb.Resource
	for _, n := range r.ScalarNames() {
		out = append(out, &corralpb.Resource{Name: n, Value: &corralpb.Resource_Scalar{Scalar: r.Scalar(n)}})
	}
	names := make([]string, 0, len(r.ranges))
	for n := range r.ranges {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pr := &corralpb.Ranges{}
		for _, x := range r.ranges[n] {
			pr.Range = append(pr.Range, &corralpb.Range{Begin: x.Begin, End: x.End})
		}
		out = append(out, &corralpb.Resource{Name: n, Value: &corralpb.Resource_Ranges{Ranges: pr}})
	}
	names = names[:0]
	for n := range r.sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, &corralpb.Resource{Name: n, Value: &corralpb.Resource_Set{Set: &corralpb.Set{Item: r.Set(n)}}})
	}
	return out
}

// MustFromProto is FromProto for values the caller already validated.
func MustFromProto(in []*corralpb.Resource) Resources {
	r, err := FromProto(in)
	if err != nil {
		panic(err)
	}
	return r
}
