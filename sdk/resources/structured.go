package resources

// Structured is the JSON-friendly form of resources for operator APIs:
// scalars as numbers, range lists as [[begin, end], ...], sets as lists of
// strings, keyed by resource name; {"cpus":2,"mem":1024,"ports":[[31000,32000]]}.
// It is never nil, so empty resources encode as {}.
func (r Resources) Structured() map[string]any {
	out := make(map[string]any, len(r.scalars)+len(r.ranges)+len(r.sets))
	for _, s := range r.scalars {
		out[s.name] = float64(s.v) / scale
	}
	for _, nr := range r.ranges {
		pairs := make([][2]uint64, len(nr.val))
		for i, rg := range nr.val {
			pairs[i] = [2]uint64{rg.Begin, rg.End}
		}
		out[nr.name] = pairs
	}
	for _, ns := range r.sets {
		out[ns.name] = append([]string{}, ns.val...)
	}
	return out
}
