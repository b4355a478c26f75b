package drf

import (
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/sdk/allocator/allocatortest"
)

// TestTranscripts runs testdata/*.txt (the language is documented in
// sdk/allocator/allocatortest) directly, over an in-process gRPC
// connection and against the built binary (with CORRAL_BIN_DIR, as `make
// test` sets it), so that every field the scenarios touch also crosses the
// wire. Regenerate with `go test ./plugins/allocator/drf -run Transcripts -rewrite`.
func TestTranscripts(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		allocatortest.RunTranscripts(t, "testdata/*.txt", direct, "{}")
	})
	if allocatortest.Rewrite() {
		return // one rewrite is enough
	}
	t.Run("grpc", func(t *testing.T) {
		allocatortest.RunTranscripts(t, "testdata/*.txt", func(t *testing.T) allocator.Allocator {
			return contracttest.InProcess(t, NewPlugin())
		}, "{}")
	})
	// The real binary, one process per file, as the master starts it.
	if testing.Short() {
		return
	}
	t.Run("binary", func(t *testing.T) { allocatortest.RunTranscripts(t, "testdata/*.txt", binary, "{}") })
}

func direct(*testing.T) allocator.Allocator { return NewPlugin() }

// binary starts the built plugin ($CORRAL_BIN_DIR, or built from ./cmd)
// as the master does; one process per call.
func binary(t *testing.T) allocator.Allocator {
	path := plugintest.Binary(t, "corral-allocator-drf", "./cmd")
	return plugintest.Start(t, base.KindAllocator, path).Raw.(allocator.Allocator)
}
