package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/pluginapi/base"
)

// Found is one plugin binary Discover saw.
type Found struct {
	// Name is the plugin's name as the catalog resolves it: the file name
	// without "corral-<kind>-", or the plugin block's name.
	Name        string
	Path        string
	SHA256      string
	Version     string
	APIVersions []string
	Configured  string // the sha256 the plugin block pins, if any
	Error       string // why it could not be probed, or is not used ("" when fine)
}

// maxParallelProbes bounds how many binaries Discover starts at once: each
// is a process doing a handshake, and the host may be a busy master.
const maxParallelProbes = 4

// Discover lists the plugins of kind an operator can select: every
// executable named corral-<kind>-* in dir, plus the plugin blocks that
// resolve elsewhere (a block's binary is probed as kind even if it serves
// another kind; it then carries an Error). Each binary is hashed and
// started just long enough to ask who it is (handshake and PluginInfo; no
// config), several at a time, and its answer is cached for as long as the
// file does not change. The result is sorted by Name. Discover never fails
// as a whole: what could not be read or probed says why in its Error.
func Discover(ctx context.Context, dir string, kind string, plugins []conf.Plugin, opts Options) []Found {
	opts = opts.withDefaults()
	if _, err := lookupKind(kind); err != nil {
		return []Found{{Path: dir, Error: err.Error()}}
	}
	cat := NewCatalog(dir, plugins)
	blocks := make(map[string]conf.Plugin, len(plugins))
	for _, p := range plugins {
		blocks[p.Name] = p
	}

	var out []Found
	seen := map[[2]string]bool{} // name, path
	add := func(f Found) {
		if seen[[2]string{f.Name, f.Path}] {
			return
		}
		seen[[2]string{f.Name, f.Path}] = true
		if b, ok := blocks[f.Name]; ok && f.Error == "" {
			// The pin applies only where the catalog would run this file.
			if spec, err := cat.Resolve(kind, f.Name); err == nil && spec.Path == f.Path {
				f.Configured = b.SHA256
			}
		}
		out = append(out, f)
	}

	prefix := fmt.Sprintf("corral-%s-", kind)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		out = append(out, Found{Path: dir, Error: fmt.Sprintf("reading plugin_dir: %v", err)})
	}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), prefix)
		path := filepath.Join(dir, e.Name())
		if !ok || name == "" || checkExecutable(path) != nil {
			continue
		}
		add(Found{Name: name, Path: path})
	}
	for _, p := range plugins {
		spec, err := cat.Resolve(kind, p.Name)
		switch {
		case err == nil:
			add(Found{Name: p.Name, Path: spec.Path})
		case p.Path != "":
			// A block that names a binary that is not there.
			add(Found{Name: p.Name, Path: p.Path, Configured: p.SHA256, Error: err.Error()})
		}
		// Else the block is for a plugin of another kind, found by name in
		// plugin_dir: not ours to list.
	}

	// Probe each binary once per set of args, whatever names point to it,
	// with the args its plugin block gives (a binary may need them to
	// serve at all, or serve another kind with others).
	type job struct {
		spec Spec
		res  probeResult
		done chan struct{}
	}
	jobs := map[string]*job{} // by probeSlot
	jobOf := make([]*job, len(out))
	for i, f := range out {
		if f.Error != "" {
			continue
		}
		spec := Spec{Kind: kind, Name: f.Name, Path: f.Path}
		if s, err := cat.Resolve(kind, f.Name); err == nil && s.Path == f.Path {
			spec.Args = s.Args
		}
		slot := probeSlot(spec)
		if jobs[slot] == nil {
			jobs[slot] = &job{spec: spec, done: make(chan struct{})}
		}
		jobOf[i] = jobs[slot]
	}
	sem := make(chan struct{}, maxParallelProbes)
	for _, j := range jobs {
		go func() {
			defer close(j.done)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				j.res = probeResult{err: ctx.Err().Error()}
				return
			}
			defer func() { <-sem }()
			j.res = cachedProbe(ctx, j.spec, opts)
		}()
	}
	// A probe is bounded by StartTimeout (handshake, then PluginInfo) and
	// by Kill; this bound, for every round of probes, is a backstop against
	// a process that escapes its process group while holding our pipe, so
	// that a listing always returns.
	rounds := (len(jobs) + maxParallelProbes - 1) / maxParallelProbes
	bound := time.Duration(rounds)*(2*opts.StartTimeout+killGrace) + killGrace
	backstop := time.NewTimer(bound)
	defer backstop.Stop()
	expired := false
	for i := range out {
		f := &out[i]
		j := jobOf[i]
		if j == nil {
			continue
		}
		if !expired {
			select {
			case <-j.done:
			case <-backstop.C:
				expired = true
			case <-ctx.Done():
			}
		}
		select {
		case <-j.done:
			f.SHA256, f.Version, f.APIVersions, f.Error = j.res.sha256, j.res.info.Version, j.res.info.APIVersions, j.res.err
		default:
			if ctx.Err() != nil {
				f.Error = fmt.Sprintf("probe abandoned: %v", ctx.Err())
			} else {
				f.Error = fmt.Sprintf("probe did not finish within %s", bound)
			}
		}
		if f.Error != "" {
			continue
		}
		// A file in plugin_dir that its name does not select is listed,
		// so the operator sees which of two binaries runs.
		if spec, err := cat.Resolve(kind, f.Name); err == nil && spec.Path != f.Path {
			f.Error = fmt.Sprintf("not used: the name %q selects %s", f.Name, spec.Path)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Name != out[b].Name {
			return out[a].Name < out[b].Name
		}
		return out[a].Path < out[b].Path
	})
	return out
}

// probeResult is what probing one binary tells.
type probeResult struct {
	sha256 string
	info   base.Info
	err    string
}

// probeKey identifies a binary's content: the same path, size, mtime and
// sum as last time is the same binary, which answers the same.
type probeKey struct {
	size   int64
	mtime  time.Time
	sha256 string
}

// probeSlot is what a probe's answer depends on besides the file's
// content: the kind asked, the path and the args.
func probeSlot(spec Spec) string {
	return strings.Join(append([]string{spec.Kind, spec.Path}, spec.Args...), "\x00")
}

// probeCache keeps one answer per probeSlot: listing again does not
// restart every binary, and a replaced binary replaces its entry.
var probeCache = struct {
	sync.Mutex
	m map[string]probeEntry
}{m: map[string]probeEntry{}}

type probeEntry struct {
	key probeKey
	res probeResult
}

func cachedProbe(ctx context.Context, spec Spec, opts Options) probeResult {
	fi, err := os.Stat(spec.Path)
	if err != nil {
		return probeResult{err: err.Error()}
	}
	sum, err := FileSHA256(spec.Path)
	if err != nil {
		return probeResult{err: err.Error()}
	}
	key := probeKey{size: fi.Size(), mtime: fi.ModTime(), sha256: sum}
	slot := probeSlot(spec)
	probeCache.Lock()
	e, ok := probeCache.m[slot]
	probeCache.Unlock()
	if ok && e.key == key {
		return e.res
	}
	res, cacheable := probe(ctx, spec, opts)
	res.sha256 = sum
	if cacheable {
		probeCache.Lock()
		probeCache.m[slot] = probeEntry{key: key, res: res}
		probeCache.Unlock()
	}
	return res
}

// probe starts spec's binary, asks PluginInfo, and kills it. The answer is
// cacheable unless it may differ on another try (a timeout, or the caller
// giving up).
func probe(ctx context.Context, spec Spec, opts Options) (res probeResult, cacheable bool) {
	inst, k, rpc, err := spawn(spec, opts, runnerConfig{
		sysProc:     &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		spawnLocked: true,
		// An arbitrary executable may fork children that keep our stdout
		// pipe open after it is killed; go-plugin would wait for them.
		killGroup: true,
	}, "")
	if err != nil {
		var te startTimeoutError
		return probeResult{err: err.Error()}, !errors.As(err, &te) && ctx.Err() == nil
	}
	defer inst.Kill()
	err = inst.setup(ctx, k, rpc, opts.StartTimeout, false)
	// PluginInfo may have answered even if the kind or API versions are
	// wrong: show what the binary says it is.
	res.info = inst.Info()
	if err != nil {
		res.err = err.Error()
		return res, !IsDeadline(err) && ctx.Err() == nil
	}
	return res, true
}
