// Package plugintest starts a plugin binary the way a corral host does
// (go-plugin over gRPC with the kind's handshake, kind and API version
// checks, default config) so that plugin authors, in this repository or
// outside it, can run their contract suites against the real binary.
//
// It is a test helper: it fails the test on any error and kills the
// plugin at cleanup. The supervised, production launcher is the core's
// plugin host, which plugins must not import.
package plugintest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
)

// Binary returns the plugin binary `make build` put in
// $CORRAL_BIN_DIR/plugins/name; with CORRAL_BIN_DIR unset it builds pkg (a
// package path relative to the test's package, such as "./cmd") into a
// temp dir.
func Binary(tb testing.TB, name, pkg string) string {
	tb.Helper()
	if dir := os.Getenv("CORRAL_BIN_DIR"); dir != "" {
		bin := filepath.Join(dir, "plugins", name)
		if _, err := os.Stat(bin); err != nil {
			tb.Fatalf("CORRAL_BIN_DIR is set but %s is missing (run `make build`): %v", name, err)
		}
		return bin
	}
	bin := filepath.Join(tb.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Plugin is a started plugin binary.
type Plugin struct {
	client *plugin.Client
	// Raw is the dispensed client: an allocator.Allocator,
	// isolator.Isolator or executor.Executor according to the kind.
	Raw any
	// Info is what the plugin said about itself.
	Info base.Info
	// APIVersion is the version negotiated with the plugin.
	APIVersion string
}

// Kill stops the plugin process and waits for it to exit.
func (p *Plugin) Kill() { p.client.Kill() }

// Pid is the plugin process's ID (0 if unknown).
func (p *Plugin) Pid() int {
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Exited reports whether the plugin process has exited.
func (p *Plugin) Exited() bool { return p.client.Exited() }

type kindSpec struct {
	handshake   plugin.HandshakeConfig
	plugins     plugin.PluginSet
	dispense    string
	apiVersions []string
}

func kindOf(kind string) (kindSpec, error) {
	switch kind {
	case base.KindAllocator:
		return kindSpec{allocator.Handshake, allocator.PluginSet(nil), allocator.PluginName, allocator.APIVersions}, nil
	case base.KindIsolator:
		return kindSpec{isolator.Handshake, isolator.PluginSet(nil), isolator.PluginName, isolator.APIVersions}, nil
	case base.KindExecutor:
		return kindSpec{executor.Handshake, executor.PluginSet(nil), executor.PluginName, executor.APIVersions}, nil
	}
	return kindSpec{}, fmt.Errorf("unknown plugin kind %q", kind)
}

// Start runs the binary at path as a plugin of kind, checks that it says it
// is one, negotiates the API version, configures it with "{}" (its
// defaults) and kills it at cleanup.
func Start(tb testing.TB, kind, path string) *Plugin {
	tb.Helper()
	p, err := start(kind, path)
	if err != nil {
		tb.Fatalf("start %s plugin %s: %v", kind, path, err)
	}
	tb.Cleanup(p.Kill)
	return p
}

func start(kind, path string) (*Plugin, error) {
	k, err := kindOf(kind)
	if err != nil {
		return nil, err
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  k.handshake,
		Plugins:          k.plugins,
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugintest", Output: os.Stderr, Level: hclog.Warn}),
		StartTimeout:     30 * time.Second,
	})
	p := &Plugin{client: client}
	if err := p.setup(kind, k); err != nil {
		client.Kill()
		return nil, err
	}
	return p, nil
}

func (p *Plugin) setup(kind string, k kindSpec) error {
	rpc, err := p.client.Client()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if p.Raw, err = rpc.Dispense(k.dispense); err != nil {
		return fmt.Errorf("dispense %q: %w", k.dispense, err)
	}
	bp, ok := p.Raw.(base.Plugin)
	if !ok {
		return fmt.Errorf("dispensed %T, which is not a plugin", p.Raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := bp.PluginInfo(ctx)
	if err != nil {
		return fmt.Errorf("PluginInfo: %w", err)
	}
	if info.Kind != kind {
		return fmt.Errorf("says it is a %q plugin, want %q", info.Kind, kind)
	}
	p.Info = *info
	if p.APIVersion, err = base.NegotiateAPIVersion(k.apiVersions, info.APIVersions); err != nil {
		return err
	}
	if err := bp.SetConfig(ctx, []byte("{}"), p.APIVersion); err != nil {
		return fmt.Errorf("SetConfig with defaults: %w", err)
	}
	return nil
}
