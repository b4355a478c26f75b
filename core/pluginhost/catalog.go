package pluginhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corral-project/corral/conf"
	"github.com/hashicorp/hcl/v2"
)

// Spec is everything needed to start one plugin.
type Spec struct {
	Kind   string // base.KindAllocator, KindIsolator or KindExecutor
	Name   string
	Path   string
	Args   []string
	Config hcl.Body // the plugin block's config {} body; nil means defaults
	// SHA256 is the sum the plugin block pins ("" means none): the binary
	// is hashed right before each exec and not started if it differs.
	SHA256 string
}

// Catalog resolves plugin names to binaries: a plugin block's path if set,
// else <plugin_dir>/<name>, else <plugin_dir>/corral-<kind>-<name>.
type Catalog struct {
	dir     string
	plugins map[string]conf.Plugin
}

// NewCatalog returns a catalog over pluginDir and the config's plugin blocks.
func NewCatalog(pluginDir string, plugins []conf.Plugin) *Catalog {
	c := &Catalog{dir: pluginDir, plugins: make(map[string]conf.Plugin, len(plugins))}
	for _, p := range plugins {
		c.plugins[p.Name] = p
	}
	return c
}

// Resolve finds the binary of the kind plugin called name. A missing binary
// is an error naming every path tried and what the binary must be.
func (c *Catalog) Resolve(kindName, name string) (Spec, error) {
	k, err := lookupKind(kindName)
	if err != nil {
		return Spec{}, err
	}
	spec := Spec{Kind: kindName, Name: name}
	var candidates []string
	block, hasBlock := c.plugins[name]
	if hasBlock {
		spec.Args = block.Args
		spec.Config = block.Config
		spec.SHA256 = block.SHA256
	}
	if hasBlock && block.Path != "" {
		candidates = []string{block.Path}
	} else {
		candidates = []string{
			filepath.Join(c.dir, name),
			filepath.Join(c.dir, fmt.Sprintf("corral-%s-%s", kindName, name)),
		}
	}
	var problems []string
	for _, p := range candidates {
		err := checkExecutable(p)
		if err == nil {
			spec.Path = p
			return spec, nil
		}
		problems = append(problems, err.Error())
	}
	where := fmt.Sprintf("set path in its plugin %q block or put the binary in plugin_dir %s", name, c.dir)
	if hasBlock && block.Path != "" {
		where = fmt.Sprintf("fix path in the plugin %q block at %s", name, block.DeclRange)
	}
	return Spec{}, fmt.Errorf("%s plugin %q not found: tried %s; %s (expected %s)",
		kindName, name, strings.Join(problems, ", "), where, k.expectation())
}

// checkExecutable returns an error naming path unless it is an executable
// regular file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s (does not exist)", path)
	case err != nil:
		return fmt.Errorf("%s (%v)", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s (not a regular file)", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s (not executable)", path)
	}
	return nil
}
