// Package pluginhost finds, starts, checks, configures and supervises
// corral plugin binaries (allocators, isolators, executors) with
// hashicorp/go-plugin. Everything about a plugin is checked before it is
// used: the binary's sha256 when its plugin block pins one, its handshake,
// its kind, its API versions and the operator's config for it. A
// Supervisor restarts a plugin that exits and, through its watchdog, kills
// (and so restarts) one that stops answering. Discover lists the plugins
// of a kind an operator can choose from.
package pluginhost

import (
	"fmt"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/hashicorp/go-plugin"
)

// kind is what the host needs to know about a plugin kind.
type kind struct {
	name        string
	handshake   plugin.HandshakeConfig
	plugins     plugin.PluginSet // host side: nil implementations
	dispense    string
	apiVersions []string
	// implements reports whether a dispensed value is the kind's interface.
	implements func(any) bool
}

var kinds = map[string]kind{
	base.KindAllocator: {
		name: base.KindAllocator, handshake: allocator.Handshake, plugins: allocator.PluginSet(nil),
		dispense: allocator.PluginName, apiVersions: allocator.APIVersions,
		implements: func(v any) bool { _, ok := v.(allocator.Allocator); return ok },
	},
	base.KindIsolator: {
		name: base.KindIsolator, handshake: isolator.Handshake, plugins: isolator.PluginSet(nil),
		dispense: isolator.PluginName, apiVersions: isolator.APIVersions,
		implements: func(v any) bool { _, ok := v.(isolator.Isolator); return ok },
	},
	base.KindExecutor: {
		name: base.KindExecutor, handshake: executor.Handshake, plugins: executor.PluginSet(nil),
		dispense: executor.PluginName, apiVersions: executor.APIVersions,
		implements: func(v any) bool { _, ok := v.(executor.Executor); return ok },
	},
}

func lookupKind(name string) (kind, error) {
	k, ok := kinds[name]
	if !ok {
		return kind{}, fmt.Errorf("unknown plugin kind %q (want %s, %s or %s)",
			name, base.KindAllocator, base.KindIsolator, base.KindExecutor)
	}
	return k, nil
}

// expectation describes the handshake a binary of this kind must answer,
// for error messages.
func (k kind) expectation() string {
	return fmt.Sprintf("a corral %s plugin: handshake cookie %s, protocol version %d",
		k.name, k.handshake.MagicCookieKey, k.handshake.ProtocolVersion)
}
