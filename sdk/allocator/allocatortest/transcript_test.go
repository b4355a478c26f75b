package allocatortest

import (
	"flag"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/allocator/contracttest"
)

// TestTranscripts runs the testkit's own scenarios against the fake
// first-fit plugin of fake_test.go, directly and over an in-process gRPC
// connection: every field the Sim sends or reads (tasks and their
// guarantee flag, demand, revocations) must survive the wire.
func TestTranscripts(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		RunTranscripts(t, "testdata/*.txt", newFakePlugin, "{}")
	})
	if Rewrite() {
		return
	}
	t.Run("grpc", func(t *testing.T) {
		RunTranscripts(t, "testdata/*.txt", func(t *testing.T) allocator.Allocator {
			return contracttest.InProcess(t, newFake())
		}, "{}")
	})
}

func TestRewriteFlagIsRegistered(t *testing.T) {
	if flag.Lookup("rewrite") == nil {
		t.Fatal("-rewrite is not registered")
	}
	if Rewrite() != (flag.Lookup("rewrite").Value.String() == "true") {
		t.Fatal("Rewrite() does not read the flag")
	}
}

func TestParseTranscript(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		blocks     int
		trailer    int
		err        string
	}{
		{name: "empty", text: "", trailer: 1},
		{name: "comments only", text: "# a\n\n# b\n", trailer: 3},
		{name: "one block", text: "# c\nledger\n----\nempty\n", blocks: 1},
		{name: "output runs to a blank line", text: "ledger\n----\na\nb\n\nledger\n----\nc\n\n# end\n", blocks: 2, trailer: 1}, // the blank line ends the output
		{name: "missing separator", text: "ledger\nempty\n", err: "1: command \"ledger\" is not followed by a ---- line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, trailer, err := parseTranscript(tc.text)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != tc.blocks || len(trailer) != tc.trailer {
				t.Fatalf("%d blocks, %d trailer lines; want %d, %d", len(blocks), len(trailer), tc.blocks, tc.trailer)
			}
		})
	}
}
