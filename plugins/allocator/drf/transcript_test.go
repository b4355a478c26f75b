package drf

import (
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/allocator/allocatortest"
)

var plugin = allocatortest.Plugin{New: NewPlugin, Binary: "corral-allocator-drf", Cmd: "./cmd"}

// TestTranscripts runs testdata/*.txt (the language is documented in
// sdk/allocator/allocatortest) directly, over an in-process gRPC
// connection and against the built binary, so that every field the
// scenarios touch also crosses the wire. Regenerate with
// `go test ./plugins/allocator/drf -run Transcripts -rewrite`.
func TestTranscripts(t *testing.T) { plugin.TestTranscripts(t, "testdata/*.txt") }

func direct(*testing.T) allocator.Allocator { return NewPlugin() }
