package drf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/resources"
)

// DefaultMinOffer is Mesos' default --min_allocatable_resources.
const DefaultMinOffer = "cpus:0.01|mem:32"

// Config is the DRF allocator's configuration.
type Config struct {
	// MinOffer lists alternatives: an offer is made only when it contains
	// at least one of them. Empty means any non-empty offer.
	MinOffer []resources.Resources
	// FairnessExclude names resources that do not count toward shares.
	FairnessExclude []string
	// ShuffleSeed 0 visits agents sorted by ID; any other value visits them
	// in an order shuffled deterministically from the seed and the cycle's
	// logical time.
	ShuffleSeed uint64
}

// DefaultConfig is the configuration an empty config body yields.
func DefaultConfig() Config {
	cfg, err := ParseConfig([]byte("{}"))
	if err != nil {
		panic(err) // the defaults are constants
	}
	return cfg
}

// Schema describes the config body the operator writes in HCL.
func Schema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{
		{
			Name: "min_offer", Type: "string", DefaultJSON: `"` + DefaultMinOffer + `"`,
			Description: "Smallest offer worth making: alternatives separated by |, each a resource list such as cpus:0.01;mem:32. An offer must contain at least one alternative.",
		},
		{
			Name: "fairness_exclude", Type: "list(string)", DefaultJSON: `[]`,
			Description: "Resource names (for example gpus) that do not count toward dominant shares.",
		},
		{
			Name: "shuffle_seed", Type: "number", DefaultJSON: `0`,
			Description: "0 visits agents sorted by ID each cycle; any other value shuffles them deterministically from this seed and the cycle's logical time.",
		},
	}}
}

// ParseConfig decodes and validates a config JSON object. Missing
// attributes take their defaults; errors name the offending attribute.
func ParseConfig(configJSON []byte) (Config, error) {
	raw := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(configJSON)) > 0 {
		if err := json.Unmarshal(configJSON, &raw); err != nil {
			return Config{}, fmt.Errorf("config is not a JSON object: %w", err)
		}
	}
	known := map[string]bool{}
	for _, a := range Schema().Attributes {
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
		return Config{}, fmt.Errorf("unknown attribute %q", unknown[0])
	}

	var cfg Config
	minOffer := DefaultMinOffer
	if v, ok := raw["min_offer"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &minOffer); err != nil {
			return Config{}, fmt.Errorf("attribute %q: want a string: %w", "min_offer", err)
		}
	}
	alts, err := ParseMinOffer(minOffer)
	if err != nil {
		return Config{}, fmt.Errorf("attribute %q: %w", "min_offer", err)
	}
	cfg.MinOffer = alts

	if v, ok := raw["fairness_exclude"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &cfg.FairnessExclude); err != nil {
			return Config{}, fmt.Errorf("attribute %q: want a list of strings: %w", "fairness_exclude", err)
		}
		for _, n := range cfg.FairnessExclude {
			if strings.TrimSpace(n) == "" {
				return Config{}, fmt.Errorf("attribute %q: empty resource name", "fairness_exclude")
			}
		}
	}

	if v, ok := raw["shuffle_seed"]; ok && string(v) != "null" {
		var seed float64
		if err := json.Unmarshal(v, &seed); err != nil {
			return Config{}, fmt.Errorf("attribute %q: want a number: %w", "shuffle_seed", err)
		}
		if seed < 0 || seed != math.Trunc(seed) || seed > 1<<53 {
			return Config{}, fmt.Errorf("attribute %q: want a non-negative integer, got %v", "shuffle_seed", seed)
		}
		cfg.ShuffleSeed = uint64(seed)
	}
	return cfg, nil
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

// allocatable reports whether r is worth offering under the config.
func (c Config) allocatable(r resources.Resources) bool {
	if r.IsEmpty() {
		return false
	}
	if len(c.MinOffer) == 0 {
		return true
	}
	for _, alt := range c.MinOffer {
		if r.Contains(alt) {
			return true
		}
	}
	return false
}
