// Command testplugin is a small but real corral plugin used by the
// pluginhost tests. -kind picks what it serves; other flags make it
// misbehave on purpose.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

func main() {
	kind := flag.String("kind", base.KindAllocator, "kind to serve")
	infoKind := flag.String("info-kind", "", "kind to claim in PluginInfo (default: -kind)")
	protocol := flag.Uint("protocol-version", 0, "override the handshake protocol version")
	exitAfter := flag.Int("exit-after", 0, "allocator: exit with status 3 on this Allocate call")
	require := flag.String("require", "", "add a required string attribute with this name to the schema")
	apiVersion := flag.String("api-version", "", "API version to advertise (default: the newest the kind speaks)")
	flag.Parse()

	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: os.Stderr, JSONFormat: true})
	if *apiVersion == "" {
		*apiVersion = map[string]string{
			base.KindAllocator: allocator.APIVersions[0],
			base.KindIsolator:  isolator.APIVersions[0],
			base.KindExecutor:  executor.APIVersions[0],
		}[*kind]
	}
	b := &basePlugin{kind: *kind, apiVersion: *apiVersion, require: *require}
	if *infoKind != "" {
		b.kind = *infoKind
	}
	logger.Info("testplugin started", "kind", *kind, "pid", os.Getpid())

	var (
		hs      plugin.HandshakeConfig
		plugins plugin.PluginSet
	)
	switch *kind {
	case base.KindAllocator:
		hs, plugins = allocator.Handshake, allocator.PluginSet(&alloc{basePlugin: b, exitAfter: *exitAfter})
	case base.KindIsolator:
		hs, plugins = isolator.Handshake, isolator.PluginSet(&iso{basePlugin: b})
	case base.KindExecutor:
		hs, plugins = executor.Handshake, executor.PluginSet(&exe{basePlugin: b})
	default:
		fmt.Fprintf(os.Stderr, "unknown kind %q\n", *kind)
		os.Exit(2)
	}
	if *protocol != 0 {
		hs.ProtocolVersion = *protocol
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		Plugins:         plugins,
		GRPCServer:      base.NewGRPCServer,
		Logger:          logger,
	})
}

// basePlugin has a schema covering every attribute type and remembers the
// config it was given, so tests can see defaults and values arrive.
type basePlugin struct {
	kind, apiVersion, require string

	mu     sync.Mutex
	config map[string]any
}

func (b *basePlugin) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: b.kind, Name: "testplugin", Version: "0.0.1", APIVersions: []string{b.apiVersion}}, nil
}

func (b *basePlugin) ConfigSchema(context.Context) (*base.Schema, error) {
	s := &base.Schema{Attributes: []base.Attribute{
		{Name: "min_offer", Type: "string", DefaultJSON: `"cpus:0.01"`},
		{Name: "max_offers", Type: "number", DefaultJSON: `10`},
		{Name: "verbose", Type: "bool"},
		{Name: "tags", Type: "list(string)", DefaultJSON: `["a"]`},
		{Name: "weights", Type: "list(number)"},
		{Name: "labels", Type: "map(string)"},
	}}
	if b.require != "" {
		s.Attributes = append(s.Attributes, base.Attribute{Name: b.require, Type: "string", Required: true})
	}
	return s, nil
}

func (b *basePlugin) SetConfig(_ context.Context, js []byte, apiVersion string) error {
	var cfg map[string]any
	if err := json.Unmarshal(js, &cfg); err != nil {
		return fmt.Errorf("config is not a JSON object: %w", err)
	}
	if apiVersion != b.apiVersion {
		return fmt.Errorf("unsupported API version %q", apiVersion)
	}
	if n, ok := cfg["max_offers"].(float64); ok && n < 0 {
		return fmt.Errorf("max_offers must not be negative, got %v", n)
	}
	b.mu.Lock()
	b.config = cfg
	b.mu.Unlock()
	return nil
}

// alloc is a trivial allocator: it tracks versions honestly and proposes
// nothing. Its metrics echo the numeric config so tests can read it.
type alloc struct {
	*basePlugin
	exitAfter int
	calls     int
	version   uint64
}

func (a *alloc) Init(_ context.Context, snap *allocator.Snapshot) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.version = snap.Version
	return a.version, nil
}

func (a *alloc) Allocate(_ context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.exitAfter > 0 && a.calls >= a.exitAfter {
		os.Exit(3)
	}
	if req.BaseVersion != a.version {
		return nil, &allocator.VersionGapError{Have: a.version, Want: req.BaseVersion}
	}
	a.version = req.TargetVersion
	m := map[string]float64{"calls": float64(a.calls)}
	for k, v := range a.config {
		switch v := v.(type) {
		case float64:
			m["config."+k] = v
		case bool:
			if v {
				m["config."+k] = 1
			}
		case string:
			m["config."+k+"="+v] = 1
		case []any:
			m["config."+k+".len"] = float64(len(v))
		}
	}
	return &allocator.AllocateResponse{AppliedVersion: a.version, Metrics: m}, nil
}

// iso isolates nothing: containers are plain processes.
type iso struct{ *basePlugin }

func (iso) Recover(context.Context, string, []isolator.ContainerState) ([]string, error) {
	return nil, nil
}
func (iso) Prepare(context.Context, isolator.PrepareRequest) (*isolator.LaunchSpec, error) {
	return &isolator.LaunchSpec{NewSession: true}, nil
}
func (iso) Isolate(context.Context, string, int) error                { return nil }
func (iso) Update(context.Context, string, resources.Resources) error { return nil }
func (iso) Cleanup(context.Context, string) error                     { return nil }
func (iso) Usage(_ context.Context, ids []string) ([]isolator.Usage, error) {
	out := make([]isolator.Usage, len(ids))
	for i, id := range ids {
		out[i] = isolator.Usage{ContainerID: id, Timestamp: time.Now()}
	}
	return out, nil
}
func (iso) Watch(ctx context.Context) (<-chan isolator.Limitation, error) {
	ch := make(chan isolator.Limitation)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// exe answers identity calls only; the tests exercise process lifecycle,
// not task launching.
type exe struct{ *basePlugin }

var errNoTasks = errors.New("testplugin executor does not launch tasks")

func (exe) Launch(context.Context, *executor.LaunchRequest, executor.ContainerService) (*executor.LaunchResponse, error) {
	return nil, errNoTasks
}
func (exe) Wait(ctx context.Context, _ string) (*executor.ExitResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (exe) Signal(context.Context, string, syscall.Signal) error  { return errNoTasks }
func (exe) Shutdown(context.Context, string, time.Duration) error { return nil }
func (exe) Forget(context.Context, string) error                  { return nil }
func (exe) Stats(context.Context, string) (*executor.Stats, error) {
	return &executor.Stats{Timestamp: time.Now()}, nil
}
func (exe) Version(context.Context) (*executor.VersionInfo, error) {
	return &executor.VersionInfo{Version: "0.0.1", Pid: os.Getpid()}, nil
}
