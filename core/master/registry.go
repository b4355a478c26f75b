package master

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/sdk/resources"
)

// registryFile is the standalone durable registry: the few facts a master
// cannot rebuild from agents and schedulers (principle 3): the roles
// changed at run time, each stored whole so that on restart it replaces
// the HCL settings of the same role, and the allocator an operator swapped
// in, which wins over the HCL allocator on restart.
type registryFile struct {
	Roles     map[string]registryRole `json:"roles"`
	Allocator *AllocatorChoice        `json:"allocator,omitempty"`
}

// registry is the registry's content in memory.
type registry struct {
	roles     map[string]RoleConfig
	allocator *AllocatorChoice
}

type registryRole struct {
	Weight    float64 `json:"weight,omitempty"`
	Priority  int64   `json:"priority,omitempty"`
	Guarantee string  `json:"guarantee,omitempty"`
	Limit     string  `json:"limit,omitempty"`
}

// loadRegistry reads the registry from its store. Nothing stored is an
// empty registry; anything unreadable is an error naming the store, because
// silently dropping it would quietly undo the operator's changes.
func loadRegistry(ctx context.Context, store coord.Store) (registry, error) {
	raw, err := store.Load(ctx)
	if err != nil {
		return registry{}, err
	}
	if raw == nil {
		return registry{}, nil
	}
	return decodeRegistry(store.String(), raw)
}

func decodeRegistry(name string, raw []byte) (registry, error) {
	var reg registryFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&reg); err != nil {
		return registry{}, fmt.Errorf("master registry %s is corrupt: %w", name, err)
	}
	if dec.More() {
		return registry{}, fmt.Errorf("master registry %s is corrupt: data after the JSON object", name)
	}
	if a := reg.Allocator; a != nil && a.Name == "" {
		return registry{}, fmt.Errorf("master registry %s is corrupt: the allocator has no name", name)
	}
	out := make(map[string]RoleConfig, len(reg.Roles))
	for _, role := range sortedMapKeys(reg.Roles) {
		rr := reg.Roles[role]
		g, err := resources.Parse(rr.Guarantee)
		if err != nil {
			return registry{}, fmt.Errorf("master registry %s is corrupt: role %q guarantee: %w", name, role, err)
		}
		l, err := resources.Parse(rr.Limit)
		if err != nil {
			return registry{}, fmt.Errorf("master registry %s is corrupt: role %q limit: %w", name, role, err)
		}
		out[role] = RoleConfig{Weight: rr.Weight, Priority: rr.Priority, Guarantee: g, Limit: l}
	}
	return registry{roles: out, allocator: reg.Allocator}, nil
}

// writeRegistry replaces the registry in its store (atomically: see
// coord.FileStore and coord.Consul).
func writeRegistry(ctx context.Context, store coord.Store, r registry) error {
	reg := registryFile{Roles: make(map[string]registryRole, len(r.roles)), Allocator: r.allocator}
	for name, rc := range r.roles {
		reg.Roles[name] = registryRole{Weight: rc.Weight, Priority: rc.Priority,
			Guarantee: rc.Guarantee.String(), Limit: rc.Limit.String()}
	}
	data, err := json.MarshalIndent(reg, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the registry: %w", err)
	}
	return store.Store(ctx, append(data, '\n'))
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
