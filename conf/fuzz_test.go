package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any bytes given as a config either load or fail with an error
// that names the file; never a panic. Seeds are every fixture and example.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/*.hcl", "examples/*.hcl"} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse("fuzz.hcl", src)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.hcl") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
	})
}
