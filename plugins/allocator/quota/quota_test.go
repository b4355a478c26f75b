package quota

import (
	"strings"
	"testing"

	"github.com/corral-project/corral/sdk/allocator/allocatortest"
)

var plugin = allocatortest.Plugin{New: NewPlugin, Binary: "corral-allocator-quota", Cmd: "./cmd"}

// Transcripts are documented in sdk/allocator/allocatortest; regenerate
// with `go test ./plugins/allocator/quota -run Transcripts -rewrite`.
func TestTranscripts(t *testing.T) { plugin.TestTranscripts(t, "testdata/*.txt") }
func TestProperties(t *testing.T)  { plugin.TestProperties(t) }
func TestContract(t *testing.T)    { plugin.TestContract(t) }

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
