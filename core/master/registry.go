package master

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

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

// loadRegistry reads the registry at path. A missing file is an empty
// registry; anything unreadable is an error naming the file, because
// silently dropping it would quietly undo the operator's changes.
func loadRegistry(path string) (registry, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return registry{}, nil
	}
	if err != nil {
		return registry{}, fmt.Errorf("master registry %s: %w", path, err)
	}
	var reg registryFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&reg); err != nil {
		return registry{}, fmt.Errorf("master registry %s is corrupt: %w", path, err)
	}
	if dec.More() {
		return registry{}, fmt.Errorf("master registry %s is corrupt: data after the JSON object", path)
	}
	if a := reg.Allocator; a != nil && a.Name == "" {
		return registry{}, fmt.Errorf("master registry %s is corrupt: the allocator has no name", path)
	}
	out := make(map[string]RoleConfig, len(reg.Roles))
	for _, name := range sortedMapKeys(reg.Roles) {
		rr := reg.Roles[name]
		g, err := resources.Parse(rr.Guarantee)
		if err != nil {
			return registry{}, fmt.Errorf("master registry %s is corrupt: role %q guarantee: %w", path, name, err)
		}
		l, err := resources.Parse(rr.Limit)
		if err != nil {
			return registry{}, fmt.Errorf("master registry %s is corrupt: role %q limit: %w", path, name, err)
		}
		out[name] = RoleConfig{Weight: rr.Weight, Priority: rr.Priority, Guarantee: g, Limit: l}
	}
	return registry{roles: out, allocator: reg.Allocator}, nil
}

// writeRegistry replaces the registry at path atomically: a crash leaves
// either the old file or the new one, never a torn one.
func writeRegistry(path string, r registry) error {
	reg := registryFile{Roles: make(map[string]registryRole, len(r.roles)), Allocator: r.allocator}
	for name, rc := range r.roles {
		reg.Roles[name] = registryRole{Weight: rc.Weight, Priority: rc.Priority,
			Guarantee: rc.Guarantee.String(), Limit: rc.Limit.String()}
	}
	data, err := json.MarshalIndent(reg, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the registry: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the registry directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".registry-*.tmp")
	if err != nil {
		return fmt.Errorf("creating a temporary registry file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
