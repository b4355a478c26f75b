package fairshare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
)

// DefaultMinOffer is Mesos' default --min_allocatable_resources.
const DefaultMinOffer = "cpus:0.01|mem:32"

// Policy kinds: which engine features a plugin's config switches on.
const (
	PolicyDRF      = "drf"      // hierarchical DRF with demand and hold-back
	PolicyQuota    = "quota"    // + guarantees, headroom and limits
	PolicyPriority = "priority" // + strict tiers and optional preemption
)

// Schema describes the config body of a policy kind, as the operator
// writes it in HCL.
func Schema(kind string) base.Schema {
	attrs := []base.Attribute{
		{
			Name: "min_offer", Type: "string", DefaultJSON: `"` + DefaultMinOffer + `"`,
			Description: "Smallest offer worth making: alternatives separated by |, each a resource list such as cpus:0.01;mem:32. An offer must contain at least one alternative.",
		},
		{
			Name: "fairness_exclude", Type: "list(string)", DefaultJSON: `[]`,
			Description: "Resource names (for example gpus) that do not count toward dominant shares.",
		},
		{
			Name: "scarce_resources", Type: "list(string)", DefaultJSON: `["gpus"]`,
			Description: "Agents with any of these resources are offered only to frameworks with the GPU_RESOURCES capability.",
		},
		{
			Name: "shuffle_seed", Type: "number", DefaultJSON: `0`,
			Description: "0 visits agents sorted by ID each cycle; any other value shuffles them deterministically from this seed and the cycle's logical time.",
		},
		{
			Name: "starvation_timeout", Type: "string", DefaultJSON: `"0s"`,
			Description: "A declared task shape that has fit no agent for this long makes the policy hold back the agent closest to fitting it (0s: never).",
		},
		{
			Name: "max_hold", Type: "string", DefaultJSON: `"5m"`,
			Description: "The longest an agent is held back for one starving task shape.",
		},
	}
	if kind == PolicyPriority {
		attrs = append(attrs, base.Attribute{
			Name: "preemption", Type: "bool", DefaultJSON: `false`,
			Description: "Revoke lower-tier tasks when a higher tier has declared demand that fits nowhere (never tasks within a guarantee).",
		})
	}
	return base.Schema{Attributes: attrs}
}

// DefaultOptions is what an empty config body yields for a policy kind.
func DefaultOptions(kind string) Options {
	o, err := ParseOptions(kind, []byte("{}"))
	if err != nil {
		panic(err) // the defaults are constants
	}
	return o
}

// ParseOptions decodes and validates a config JSON object for a policy
// kind. Missing attributes take their defaults; errors name the attribute.
func ParseOptions(kind string, configJSON []byte) (Options, error) {
	raw := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(configJSON)) > 0 {
		if err := json.Unmarshal(configJSON, &raw); err != nil {
			return Options{}, fmt.Errorf("config is not a JSON object: %w", err)
		}
	}
	known := map[string]bool{}
	for _, a := range Schema(kind).Attributes {
		known[a.Name] = true
	}
	var unknown []string
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Options{}, fmt.Errorf("unknown attribute %q", unknown[0])
	}
	get := func(name string, into any, want string) error {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return nil
		}
		if err := json.Unmarshal(v, into); err != nil {
			return fmt.Errorf("attribute %q: want %s: %w", name, want, err)
		}
		return nil
	}

	o := Options{Quota: kind == PolicyQuota, Tiers: kind == PolicyPriority, ScarceResources: []string{resources.GPUs}}
	minOffer := DefaultMinOffer
	if err := get("min_offer", &minOffer, "a string"); err != nil {
		return Options{}, err
	}
	alts, err := ParseMinOffer(minOffer)
	if err != nil {
		return Options{}, fmt.Errorf("attribute %q: %w", "min_offer", err)
	}
	o.MinOffer = alts

	for _, l := range []struct {
		name string
		into *[]string
	}{{"fairness_exclude", &o.FairnessExclude}, {"scarce_resources", &o.ScarceResources}} {
		if err := get(l.name, l.into, "a list of strings"); err != nil {
			return Options{}, err
		}
		for _, n := range *l.into {
			if strings.TrimSpace(n) == "" {
				return Options{}, fmt.Errorf("attribute %q: empty resource name", l.name)
			}
		}
	}

	var seed float64
	if err := get("shuffle_seed", &seed, "a number"); err != nil {
		return Options{}, err
	}
	if seed < 0 || seed != math.Trunc(seed) || seed > 1<<53 {
		return Options{}, fmt.Errorf("attribute %q: want a non-negative integer, got %v", "shuffle_seed", seed)
	}
	o.ShuffleSeed = uint64(seed)

	for _, d := range []struct {
		name, def string
		into      *allocator.LogicalTime
	}{{"starvation_timeout", "0s", &o.StarvationTimeout}, {"max_hold", "5m", &o.MaxHold}} {
		s := d.def
		if err := get(d.name, &s, "a duration string such as \"30s\""); err != nil {
			return Options{}, err
		}
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 0 {
			return Options{}, fmt.Errorf("attribute %q: want a non-negative duration such as \"30s\", got %q", d.name, s)
		}
		*d.into = allocator.LogicalTime(dur / time.Millisecond)
	}
	if o.StarvationTimeout > 0 && o.MaxHold <= 0 {
		return Options{}, fmt.Errorf("attribute %q: must be positive when starvation_timeout is set", "max_hold")
	}
	if kind == PolicyPriority {
		if err := get("preemption", &o.Preemption, "true or false"); err != nil {
			return Options{}, err
		}
	}
	return o, nil
}

// ParseMinOffer parses Mesos' min_allocatable_resources syntax:
// "cpus:0.01|mem:32" means at least 0.01 cpus or at least 32 MiB of memory.
// The empty string means no minimum.
func ParseMinOffer(s string) ([]resources.Resources, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []resources.Resources
	for _, alt := range strings.Split(s, "|") {
		r, err := resources.Parse(alt)
		if err != nil {
			return nil, fmt.Errorf("alternative %q: %w", alt, err)
		}
		if r.IsEmpty() {
			return nil, fmt.Errorf("alternative %q is empty", alt)
		}
		out = append(out, r)
	}
	return out, nil
}
