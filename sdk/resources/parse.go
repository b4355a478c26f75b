package resources

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads the text form used in configs and on the command line:
// "cpus:4;mem:1024;ports:[31000-32000,33000-33010];zones:{a,b}".
// A name may appear only once.
func Parse(s string) (Resources, error) {
	var out Resources
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, ":")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok || name == "" || val == "" {
			return Resources{}, fmt.Errorf("resource %q: want name:value", part)
		}
		if seen[name] {
			return Resources{}, fmt.Errorf("resource %q given twice", name)
		}
		if err := ValidateName(name); err != nil {
			return Resources{}, err
		}
		seen[name] = true
		var r Resources
		switch {
		case strings.HasPrefix(val, "["):
			rs, err := parseRanges(val)
			if err != nil {
				return Resources{}, fmt.Errorf("resource %q: %w", name, err)
			}
			r = NewRanges(name, rs)
		case strings.HasPrefix(val, "{"):
			if !strings.HasSuffix(val, "}") {
				return Resources{}, fmt.Errorf("resource %q: set %q lacks a closing }", name, val)
			}
			var items []string
			for _, it := range strings.Split(val[1:len(val)-1], ",") {
				if it = strings.TrimSpace(it); it != "" {
					if err := validateToken(it); err != nil {
						return Resources{}, fmt.Errorf("resource %q: set item %q: %w", name, it, err)
					}
					items = append(items, it)
				}
			}
			r = NewSet(name, items...)
		default:
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return Resources{}, fmt.Errorf("resource %q: %q is not a number", name, val)
			}
			if err := ValidateScalar(name, v); err != nil {
				return Resources{}, err
			}
			r = NewScalar(name, v)
		}
		out = out.Add(r)
	}
	return out, nil
}

// MustParse is Parse for literals in tests and defaults; it panics on error.
func MustParse(s string) Resources {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

func parseRanges(val string) (RangeSet, error) {
	if !strings.HasSuffix(val, "]") {
		return nil, fmt.Errorf("range list %q lacks a closing ]", val)
	}
	var rs RangeSet
	for _, item := range strings.Split(val[1:len(val)-1], ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		b, e, ok := strings.Cut(item, "-")
		if !ok {
			e = b
		}
		begin, err1 := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
		end, err2 := strconv.ParseUint(strings.TrimSpace(e), 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("range %q: want begin-end of unsigned integers", item)
		}
		if begin > end {
			return nil, fmt.Errorf("range %q: begin is after end", item)
		}
		rs = append(rs, Range{begin, end})
	}
	return rs.normalize(), nil
}
