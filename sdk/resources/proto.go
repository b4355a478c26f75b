package resources

import (
	"fmt"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// FromProto converts and validates wire resources. Repeated names are summed.
// The error names the offending resource.
func FromProto(in []*corralpb.Resource) (Resources, error) {
	var out Resources
	kinds := map[string]string{}
	for i, r := range in {
		if r == nil {
			return Resources{}, fmt.Errorf("resource %d is null", i)
		}
		if r.Name == "" {
			return Resources{}, fmt.Errorf("resource %d has an empty name", i)
		}
		if err := ValidateName(r.Name); err != nil {
			return Resources{}, err
		}
		kind := fmt.Sprintf("%T", r.Value)
		if k, ok := kinds[r.Name]; ok && k != kind {
			return Resources{}, fmt.Errorf("resource %q is given as two kinds of value (scalar, ranges or set)", r.Name)
		}
		kinds[r.Name] = kind
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
			for _, it := range v.Set.GetItem() {
				if err := validateToken(it); err != nil {
					return Resources{}, fmt.Errorf("resource %q: set item %q: %w", r.Name, it, err)
				}
			}
			out = out.Add(NewSet(r.Name, v.Set.GetItem()...))
		default:
			return Resources{}, fmt.Errorf("resource %q has no value", r.Name)
		}
	}
	return out, nil
}

// ToProto converts r to wire form, sorted by name for deterministic output.
func (r Resources) ToProto() []*corralpb.Resource {
	out := make([]*corralpb.Resource, 0, len(r.scalars)+len(r.ranges)+len(r.sets))
	for _, s := range r.scalars {
		out = append(out, &corralpb.Resource{Name: s.name, Value: &corralpb.Resource_Scalar{Scalar: float64(s.v) / scale}})
	}
	for _, nr := range r.ranges {
		pr := &corralpb.Ranges{Range: make([]*corralpb.Range, len(nr.val))}
		for i, x := range nr.val {
			pr.Range[i] = &corralpb.Range{Begin: x.Begin, End: x.End}
		}
		out = append(out, &corralpb.Resource{Name: nr.name, Value: &corralpb.Resource_Ranges{Ranges: pr}})
	}
	for _, ns := range r.sets {
		out = append(out, &corralpb.Resource{Name: ns.name, Value: &corralpb.Resource_Set{Set: &corralpb.Set{Item: append([]string(nil), ns.val...)}}})
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
