package allocatortest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// The -rewrite flag is registered when the package is initialized, so that
// `go test ./plugins/allocator/mine -rewrite` works in any test binary that
// imports the package. A binary that already defines -rewrite keeps its own
// definition, and Rewrite reads whichever is registered.
const rewriteFlag = "rewrite"

func init() {
	if flag.Lookup(rewriteFlag) == nil {
		flag.Bool(rewriteFlag, false, "rewrite the expected output in allocator transcripts with the actual output")
	}
}

// Rewrite reports whether the test binary runs with -rewrite: transcripts
// then overwrite their expected output instead of checking it.
func Rewrite() bool {
	f := flag.Lookup(rewriteFlag)
	if f == nil {
		return false
	}
	v, _ := strconv.ParseBool(f.Value.String())
	return v
}

// RunTranscripts runs every transcript file matching glob (such as
// "testdata/*.txt"), each as a subtest against a fresh plugin from
// newPlugin configured with configJSON (a file's "config" command can
// reconfigure it). With -rewrite the files get the actual output instead.
func RunTranscripts(t *testing.T, glob string, newPlugin func(t *testing.T) allocator.Allocator, configJSON string) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatalf("transcripts %q: %v", glob, err)
	}
	if len(files) == 0 {
		t.Fatalf("no transcript matches %q", glob)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			RunTranscript(t, path, newPlugin(t), configJSON)
		})
	}
}

// RunTranscript runs one transcript file against p (see the package
// documentation for the language).
func RunTranscript(t *testing.T, path string, p allocator.Allocator, configJSON string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, trailer, err := parseTranscript(string(data))
	if err != nil {
		t.Fatalf("%s:%v", path, err)
	}
	s := NewSim(p)
	if err := s.Configure(configJSON); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out strings.Builder
	for _, b := range blocks {
		got := strings.Join(Run(s, b.cmd), "\n")
		for _, l := range b.prefix {
			out.WriteString(l + "\n")
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", b.cmd, got)
		if want := strings.Join(b.want, "\n"); !Rewrite() && got != want {
			t.Errorf("%s:%d: %s\n got:\n%s\n want:\n%s", path, b.line, b.cmd, indent(got), indent(want))
		}
	}
	for _, l := range trailer {
		out.WriteString(l + "\n")
	}
	if text := strings.TrimRight(out.String(), "\n") + "\n"; Rewrite() && text != string(data) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
	}
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// block is one command of a transcript with the comment and blank lines
// before it and its expected output.
type block struct {
	prefix []string
	cmd    string
	line   int
	want   []string
}

// parseTranscript splits a transcript into blocks; trailer holds the
// comment and blank lines after the last one.
func parseTranscript(text string) (blocks []block, trailer []string, err error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var prefix []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			prefix = append(prefix, l)
			continue
		}
		b := block{prefix: prefix, cmd: strings.TrimSpace(l), line: i + 1}
		prefix = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			return nil, nil, fmt.Errorf("%d: command %q is not followed by a ---- line", i+1, b.cmd)
		}
		for i += 2; i < len(lines) && lines[i] != ""; i++ {
			b.want = append(b.want, lines[i])
		}
		blocks = append(blocks, b)
	}
	return blocks, prefix, nil
}
