package quota

import (
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/sdk/allocator/allocatortest"
)

func direct(*testing.T) allocator.Allocator { return NewPlugin() }

// binary starts the built plugin ($CORRAL_BIN_DIR, or built from ./cmd)
// as the master does; one process per call.
func binary(t *testing.T) allocator.Allocator {
	path := plugintest.Binary(t, "corral-allocator-quota", "./cmd")
	return plugintest.Start(t, base.KindAllocator, path).Raw.(allocator.Allocator)
}

// TestTranscripts runs testdata/*.txt (the language is documented in
// sdk/allocator/allocatortest) directly, over in-process gRPC and against
// the real binary. Regenerate with `go test ./plugins/allocator/quota -run Transcripts -rewrite`.
func TestTranscripts(t *testing.T) {
	t.Run("direct", func(t *testing.T) { allocatortest.RunTranscripts(t, "testdata/*.txt", direct, "{}") })
	if allocatortest.Rewrite() {
		return
	}
	t.Run("grpc", func(t *testing.T) {
		allocatortest.RunTranscripts(t, "testdata/*.txt", func(t *testing.T) allocator.Allocator {
			return contracttest.InProcess(t, NewPlugin())
		}, "{}")
	})
	if testing.Short() {
		return
	}
	t.Run("binary", func(t *testing.T) { allocatortest.RunTranscripts(t, "testdata/*.txt", binary, "{}") })
}

func TestProperties(t *testing.T) {
	allocatortest.CheckProperties(t, direct, "{}")
}

func TestContract(t *testing.T) {
	t.Run("direct", func(t *testing.T) { contracttest.Run(t, direct) })
	t.Run("grpc", func(t *testing.T) {
		contracttest.Run(t, func(t *testing.T) allocator.Allocator { return contracttest.InProcess(t, NewPlugin()) })
	})
	if testing.Short() {
		return
	}
	t.Run("binary", func(t *testing.T) { contracttest.Run(t, binary) })
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct{ config, err string }{
		{`{}`, ""},
		{`{"starvation_timeout":"30s","max_hold":"2m"}`, ""},
		{`{"starvation_timeout":"soon"}`, `"starvation_timeout"`},
		{`{"max_hold":"-1s"}`, `"max_hold"`},
		{`{"scarce_resources":[""]}`, `"scarce_resources"`},
		{`{"bogus":true}`, `"bogus"`},
		{`{"preemption":true}`, `"preemption"`}, // the priority policy's
	} {
		_, err := ParseConfig([]byte(tc.config))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseConfig(%s) = %v, want error containing %q", tc.config, err, tc.err)
		}
	}
}
