package master

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
)

// PluginLauncher starts allocator plugins from a plugin catalog, each as
// a separate process under a pluginhost Supervisor (restart on crash, hang
// watchdog). It is the slot's launcher in `corral master`.
type PluginLauncher struct {
	opts pluginhost.Options

	// sums caches binaries' sha256 by path, size and modification time:
	// hashing a 20 MB plugin on every swap would add tens of ms.
	sums map[string]cachedSum

	mu      sync.Mutex
	dir     string
	blocks  []conf.Plugin
	catalog *pluginhost.Catalog
}

// NewPluginLauncher returns a launcher over the plugins in pluginDir and
// the configuration's plugin blocks.
func NewPluginLauncher(pluginDir string, blocks []conf.Plugin, opts pluginhost.Options) *PluginLauncher {
	l := &PluginLauncher{opts: opts}
	l.SetPlugins(pluginDir, blocks)
	return l
}

// SetPlugins replaces plugin_dir and the plugin blocks (a reloaded
// configuration); plugins already running keep what they were started
// with.
func (l *PluginLauncher) SetPlugins(pluginDir string, blocks []conf.Plugin) {
	l.mu.Lock()
	l.dir, l.blocks = pluginDir, append([]conf.Plugin(nil), blocks...)
	l.catalog = pluginhost.NewCatalog(pluginDir, blocks)
	l.mu.Unlock()
}

// List probes every allocator plugin found in plugin_dir and the plugin
// blocks: name, version, API versions and sha256.
func (l *PluginLauncher) List(ctx context.Context) []pluginhost.Found {
	l.mu.Lock()
	dir, blocks := l.dir, l.blocks
	l.mu.Unlock()
	return pluginhost.Discover(ctx, dir, base.KindAllocator, blocks, l.opts)
}

// spec resolves choice: the catalog's binary, args and checksum, with the
// choice's own config when it has one.
func (l *PluginLauncher) spec(choice AllocatorChoice) (pluginhost.Spec, error) {
	l.mu.Lock()
	catalog := l.catalog
	l.mu.Unlock()
	spec, err := catalog.Resolve(base.KindAllocator, choice.Name)
	if err != nil {
		return pluginhost.Spec{}, err
	}
	if choice.Config != "" {
		body, err := parseConfigBody(choice.Name, choice.Config)
		if err != nil {
			return pluginhost.Spec{}, err
		}
		spec.Config = body
	}
	return spec, nil
}

type cachedSum struct {
	size    int64
	modTime time.Time
	sum     string
}

// sum is the sha256 of the binary at path, cached while the file is
// unchanged. A pinned sum (plugin block) is verified again by pluginhost
// right before the binary runs, uncached.
func (l *PluginLauncher) sum(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	c, ok := l.sums[path]
	l.mu.Unlock()
	if ok && c.size == fi.Size() && c.modTime.Equal(fi.ModTime()) {
		return c.sum, nil
	}
	s, err := pluginhost.FileSHA256(path)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	if l.sums == nil {
		l.sums = map[string]cachedSum{}
	}
	l.sums[path] = cachedSum{size: fi.Size(), modTime: fi.ModTime(), sum: s}
	l.mu.Unlock()
	return s, nil
}

// parseConfigBody parses an allocator config given as HCL text.
func parseConfigBody(name, text string) (hcl.Body, error) {
	f, diags := hclparse.NewParser().ParseHCL([]byte(text), fmt.Sprintf("config of allocator %q", name))
	if diags.HasErrors() {
		return nil, conf.DiagnosticsError(diags)
	}
	return f.Body, nil
}

// Launch starts choice and returns once the plugin is checked and
// configured.
func (l *PluginLauncher) Launch(ctx context.Context, choice AllocatorChoice) (AllocatorHandle, error) {
	spec, err := l.spec(choice)
	if err != nil {
		return nil, err
	}
	sum, err := l.sum(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("allocator plugin %q: %w", choice.Name, err)
	}
	sup := pluginhost.NewSupervisor(spec, l.opts, nil)
	if err := sup.Start(ctx); err != nil {
		return nil, err
	}
	return &supervisedAllocator{spec: spec, sup: sup, sha: sum, print: fingerprint(spec, sum, choice)}, nil
}

// Fingerprint identifies what Launch would start for choice: the binary,
// its arguments and its config. A reloaded configuration that changes it
// makes the master swap.
func (l *PluginLauncher) Fingerprint(choice AllocatorChoice) (string, error) {
	spec, err := l.spec(choice)
	if err != nil {
		return "", err
	}
	sum, err := l.sum(spec.Path)
	if err != nil {
		return "", err
	}
	return fingerprint(spec, sum, choice), nil
}

func fingerprint(spec pluginhost.Spec, sum string, choice AllocatorChoice) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", spec.Path, sum, strings.Join(spec.Args, "\x01"))
	if choice.Config != "" {
		fmt.Fprintf(h, "choice\x00%s", choice.Config)
	} else if src := configSource(spec.Config); src != nil {
		fmt.Fprintf(h, "block\x00%s", src)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// configSource is the text of a plugin block's config {} body, read back
// from its file: a reload compares it to tell whether the config changed.
func configSource(body hcl.Body) []byte {
	if body == nil {
		return nil
	}
	var rng hcl.Range
	if b, ok := body.(*hclsyntax.Body); ok {
		rng = b.SrcRange
	} else {
		rng = body.MissingItemRange()
	}
	src, err := os.ReadFile(rng.Filename)
	if err != nil || rng.End.Byte > len(src) || rng.Start.Byte > rng.End.Byte {
		return []byte(rng.String())
	}
	return src[rng.Start.Byte:rng.End.Byte]
}

// supervisedAllocator adapts a plugin Supervisor to the slot: every new
// plugin process is a new generation, which makes the master re-Init it.
type supervisedAllocator struct {
	spec  pluginhost.Spec
	sup   *pluginhost.Supervisor
	sha   string
	print string

	mu   sync.Mutex
	last *pluginhost.Instance
	gen  uint64
}

func (s *supervisedAllocator) Current() (allocator.Allocator, PluginInfo, error) {
	info := PluginInfo{Name: s.spec.Name, Path: s.spec.Path}
	inst, err := s.sup.Current()
	s.mu.Lock()
	defer s.mu.Unlock()
	info.Generation = s.gen
	if err != nil {
		return nil, info, err
	}
	if inst != s.last {
		s.last = inst
		s.gen++
		info.Generation = s.gen
	}
	info.Version = inst.Info().Version
	info.Pid = inst.Pid()
	a, ok := inst.Raw().(allocator.Allocator)
	if !ok {
		return nil, info, fmt.Errorf("plugin %s does not implement the allocator interface", s.spec.Path)
	}
	return a, info, nil
}

func (s *supervisedAllocator) ReportCall(err error) {
	s.mu.Lock()
	inst := s.last
	s.mu.Unlock()
	if inst != nil {
		s.sup.ReportCall(inst, err)
	}
}

func (s *supervisedAllocator) Restarts() int       { return s.sup.Restarts() }
func (s *supervisedAllocator) Faults() int         { return s.sup.Faults() }
func (s *supervisedAllocator) SHA256() string      { return s.sha }
func (s *supervisedAllocator) Fingerprint() string { return s.print }
func (s *supervisedAllocator) Stop()               { s.sup.Stop() }
