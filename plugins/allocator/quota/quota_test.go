package quota

import (
	"testing"

	"github.com/corral-project/corral/sdk/allocator/allocatortest"
)

var plugin = allocatortest.Plugin{New: NewPlugin, Binary: "corral-allocator-quota", Cmd: "./cmd"}

// Transcripts are documented in sdk/allocator/allocatortest; regenerate
// with `go test ./plugins/allocator/quota -run Transcripts -rewrite`.
func TestTranscripts(t *testing.T) { plugin.TestTranscripts(t, "testdata/*.txt") }
func TestProperties(t *testing.T)  { plugin.TestProperties(t) }
func TestContract(t *testing.T)    { plugin.TestContract(t) }
