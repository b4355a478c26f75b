// Package basetest holds the contract checks every plugin must pass
// whatever its kind: identity, API versions, config schema and SetConfig.
// Each kind's contracttest runs them first.
package basetest

import (
	"context"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
)

// Run checks the base service of a plugin of kind that should speak one of
// hostVersions. newImpl must return a fresh, unconfigured plugin per call.
func Run[P base.Plugin](t *testing.T, kind string, hostVersions []string, newImpl func(t *testing.T) P) {
	t.Run("PluginInfo", func(t *testing.T) {
		info, err := newImpl(t).PluginInfo(Ctx(t))
		if err != nil {
			t.Fatalf("PluginInfo: %v", err)
		}
		if info.Kind != kind {
			t.Errorf("Kind = %q, want %q", info.Kind, kind)
		}
		if info.Name == "" || info.Version == "" {
			t.Errorf("Name = %q, Version = %q: both must be set", info.Name, info.Version)
		}
		if _, err := base.NegotiateAPIVersion(hostVersions, info.APIVersions); err != nil {
			t.Errorf("APIVersions %v: %v", info.APIVersions, err)
		}
	})

	t.Run("ConfigSchema", func(t *testing.T) {
		schema, err := newImpl(t).ConfigSchema(Ctx(t))
		if err != nil {
			t.Fatalf("ConfigSchema: %v", err)
		}
		if schema == nil {
			t.Fatal("ConfigSchema returned nil schema and nil error")
		}
		for _, attr := range schema.Attributes {
			if attr.Name == "" {
				t.Errorf("attribute with empty name: %+v", attr)
			}
		}
	})

	t.Run("SetConfig", func(t *testing.T) {
		p := newImpl(t)
		v := Negotiate(t, p, hostVersions)
		if err := p.SetConfig(Ctx(t), []byte("{}"), v); err != nil {
			t.Fatalf("SetConfig({}): %v", err)
		}
		if err := p.SetConfig(Ctx(t), []byte("{}"), v); err != nil {
			t.Fatalf("SetConfig({}) again: %v", err)
		}
		if err := p.SetConfig(Ctx(t), []byte("{not json"), v); err == nil {
			t.Fatal("SetConfig with malformed JSON succeeded, want an error")
		}
	})
}

// Negotiate returns the API version the host would pick with p.
func Negotiate(t *testing.T, p base.Plugin, hostVersions []string) string {
	t.Helper()
	info, err := p.PluginInfo(Ctx(t))
	if err != nil {
		t.Fatalf("PluginInfo: %v", err)
	}
	v, err := base.NegotiateAPIVersion(hostVersions, info.APIVersions)
	if err != nil {
		t.Fatalf("negotiate API version: %v", err)
	}
	return v
}

// Configured returns a fresh plugin from newImpl with SetConfig("{}")
// applied at the negotiated version, as the host does before any other call.
func Configured[P base.Plugin](t *testing.T, newImpl func(t *testing.T) P, hostVersions []string) P {
	t.Helper()
	p := newImpl(t)
	if err := p.SetConfig(Ctx(t), []byte("{}"), Negotiate(t, p, hostVersions)); err != nil {
		t.Fatalf("SetConfig({}): %v", err)
	}
	return p
}

// Ctx is a per-test context with a deadline, so a hung plugin fails the
// test instead of stalling the suite.
func Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
