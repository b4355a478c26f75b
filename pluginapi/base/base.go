// Package base holds what every corral plugin implements regardless of kind:
// identity and API versions, a config schema, and config validation.
package base

import (
	"context"
	"fmt"
	"strings"
)

// Plugin kinds. Each kind has its own handshake cookie so that an isolator
// binary configured as an allocator fails the handshake instead of misbehaving.
const (
	KindAllocator = "allocator"
	KindIsolator  = "isolator"
	KindExecutor  = "executor"
)

// Info identifies a plugin binary.
type Info struct {
	Kind        string
	Name        string
	Version     string
	APIVersions []string // newest first
}

// Attribute is one attribute of a plugin's HCL config {} body.
type Attribute struct {
	Name string
	// One of: string, number, bool, list(string), list(number), map(string).
	Type        string
	Required    bool
	DefaultJSON string // JSON default used when the operator leaves it out
	Description string
}

// Schema describes a plugin's config body.
type Schema struct {
	Attributes []Attribute
}

// Plugin is served by every plugin next to its kind's service.
type Plugin interface {
	PluginInfo(ctx context.Context) (*Info, error)
	ConfigSchema(ctx context.Context) (*Schema, error)
	// SetConfig validates and applies the decoded config (a JSON object) for
	// the negotiated API version. Calling it twice with the same input is safe.
	SetConfig(ctx context.Context, configJSON []byte, apiVersion string) error
}

// NegotiateAPIVersion picks the newest version both sides support. Both lists
// are ordered newest first; the host's order wins.
func NegotiateAPIVersion(host, plugin []string) (string, error) {
	for _, h := range host {
		for _, p := range plugin {
			if h == p {
				return h, nil
			}
		}
	}
	return "", fmt.Errorf("no common API version: host supports [%s], plugin supports [%s]",
		strings.Join(host, ", "), strings.Join(plugin, ", "))
}
