package allocatortest

import (
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/plugintest"
)

// Plugin describes an allocator plugin for the standard test suite: its
// transcripts, the property checks and the contract suite, each run
// directly, over in-process gRPC and (unless -short) against the real
// binary, found in $CORRAL_BIN_DIR/plugins or built from Cmd.
//
//	var plugin = allocatortest.Plugin{New: mine.NewPlugin, Binary: "corral-allocator-mine", Cmd: "./cmd"}
//
//	func TestTranscripts(t *testing.T) { plugin.TestTranscripts(t, "testdata/*.txt") }
//	func TestProperties(t *testing.T)  { plugin.TestProperties(t) }
//	func TestContract(t *testing.T)    { plugin.TestContract(t) }
type Plugin struct {
	New    func() allocator.Allocator // a fresh in-process plugin
	Binary string                     // the binary's name; "" runs no binary
	Cmd    string                     // the package that builds it, relative to the test
	Config string                     // config JSON for transcripts and properties; "" is "{}"
	// Properties tunes the property checks (skips, seeds, excluded
	// resources).
	Properties Properties
}

func (p Plugin) config() string {
	if p.Config == "" {
		return "{}"
	}
	return p.Config
}

// modes are the ways a test reaches the plugin.
func (p Plugin) modes() map[string]func(*testing.T) allocator.Allocator {
	m := map[string]func(*testing.T) allocator.Allocator{
		"direct": func(*testing.T) allocator.Allocator { return p.New() },
		"grpc":   func(t *testing.T) allocator.Allocator { return contracttest.InProcess(t, p.New()) },
	}
	if p.Binary != "" && !testing.Short() {
		m["binary"] = func(t *testing.T) allocator.Allocator {
			path := plugintest.Binary(t, p.Binary, p.Cmd)
			return plugintest.Start(t, base.KindAllocator, path).Raw.(allocator.Allocator)
		}
	}
	return m
}

// TestTranscripts runs the transcripts matching glob in every mode (only
// directly with -rewrite).
func (p Plugin) TestTranscripts(t *testing.T, glob string) {
	if Rewrite() {
		RunTranscripts(t, glob, p.modes()["direct"], p.config())
		return
	}
	for _, mode := range []string{"direct", "grpc", "binary"} {
		if run, ok := p.modes()[mode]; ok {
			t.Run(mode, func(t *testing.T) { RunTranscripts(t, glob, run, p.config()) })
		}
	}
}

// TestProperties runs the property checks on the in-process plugin.
func (p Plugin) TestProperties(t *testing.T) {
	p.Properties.Check(t, p.modes()["direct"], p.config())
}

// TestContract runs the allocator contract suite in every mode.
func (p Plugin) TestContract(t *testing.T) {
	for _, mode := range []string{"direct", "grpc", "binary"} {
		if run, ok := p.modes()[mode]; ok {
			t.Run(mode, func(t *testing.T) { contracttest.Run(t, run) })
		}
	}
}
