// Package rootfstest gives tests of the runc isolator a root filesystem:
// busybox from Debian's busybox-static package, built once by
// testdata/rootfs/build-busybox.sh (also `make testdata-rootfs`) and cached
// outside the clone, in ~/.cache/corral/rootfs-busybox or
// $CORRAL_ROOTFS_CACHE.
package rootfstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	once   sync.Once
	path   string
	output string
	err    error
)

// Busybox returns the busybox root filesystem, building it on first use.
// A test that needs it fails (never skips) when it cannot be built: CI
// installs what the build needs.
func Busybox(tb testing.TB) string {
	tb.Helper()
	once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "testdata", "rootfs", "build-busybox.sh")
		out, e := exec.Command(script).CombinedOutput()
		output, err = string(out), e
		lines := strings.Split(strings.TrimSpace(output), "\n")
		path = lines[len(lines)-1]
	})
	if err != nil {
		tb.Fatalf("build the busybox rootfs (testdata/rootfs/build-busybox.sh, needs Debian's busybox-static: apt-get download): %v\n%s", err, output)
	}
	if _, e := os.Stat(filepath.Join(path, "bin", "busybox")); e != nil {
		tb.Fatalf("busybox rootfs at %q is incomplete: %v", path, e)
	}
	return path
}
