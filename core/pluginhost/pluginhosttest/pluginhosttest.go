// Package pluginhosttest starts real plugin binaries through the real
// plugin host, for tests of shipped plugins.
package pluginhosttest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/pluginhost"
)

// Binary returns the plugin binary `make build` put in
// $CORRAL_BIN_DIR/plugins/name; with CORRAL_BIN_DIR unset it builds pkg
// (a path relative to the test's package, such as "./cmd") into a temp dir.
func Binary(tb testing.TB, name, pkg string) string {
	tb.Helper()
	if dir := os.Getenv("CORRAL_BIN_DIR"); dir != "" {
		bin := filepath.Join(dir, "plugins", name)
		if _, err := os.Stat(bin); err != nil {
			tb.Fatalf("CORRAL_BIN_DIR is set but %s is missing (run `make build`): %v", name, err)
		}
		return bin
	}
	bin := filepath.Join(tb.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Start runs the binary at path as a plugin of kind through
// pluginhost.Start (handshake, version check, default config), exactly as
// the master and agent do, and kills it at cleanup.
func Start(tb testing.TB, kind, path string) *pluginhost.Instance {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := hclog.New(&hclog.LoggerOptions{Name: "test-host", Output: os.Stderr, Level: hclog.Warn})
	inst, err := pluginhost.Start(ctx, pluginhost.Spec{Kind: kind, Name: filepath.Base(path), Path: path}, pluginhost.Options{Logger: log})
	if err != nil {
		tb.Fatalf("start %s plugin %s: %v", kind, path, err)
	}
	tb.Cleanup(inst.Kill)
	return inst
}
