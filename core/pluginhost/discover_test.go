package pluginhost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/procfs"
)

var (
	realOnce sync.Once
	realDir  string
	realErr  error
)

// realAllocators returns a directory of the shipped allocator plugins:
// `make build`'s bin/plugins under `make test` (CORRAL_BIN_DIR), else the
// drf plugin built here once for the test binary.
func realAllocators(t *testing.T) string {
	t.Helper()
	realOnce.Do(func() {
		if dir := os.Getenv("CORRAL_BIN_DIR"); dir != "" {
			realDir = filepath.Join(dir, "plugins")
			_, realErr = os.Stat(filepath.Join(realDir, "corral-allocator-drf"))
			return
		}
		realDir = filepath.Join(testBinDir, "real")
		out, err := exec.Command("go", "build", "-o", filepath.Join(realDir, "corral-allocator-drf"), "../../plugins/allocator/drf/cmd").CombinedOutput()
		if err != nil {
			realErr = fmt.Errorf("building the drf plugin: %v\n%s", err, out)
		}
	})
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realDir
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func runs(t *testing.T, counter string) int {
	t.Helper()
	b, err := os.ReadFile(counter)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func byName(found []Found) map[string][]Found {
	m := map[string][]Found{}
	for _, f := range found {
		m[f.Name] = append(m[f.Name], f)
	}
	return m
}

func TestDiscover(t *testing.T) {
	real := realAllocators(t)
	dir := t.TempDir()
	var realNames []string
	entries, err := os.ReadDir(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), "corral-allocator-"); ok {
			realNames = append(realNames, name)
			if err := os.Symlink(filepath.Join(real, e.Name()), filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	// "test": the test plugin (an allocator by default) behind a script
	// counting its runs, to see the cache at work.
	counter := filepath.Join(t.TempDir(), "runs")
	testBin := filepath.Join(dir, "corral-allocator-test")
	writeScript(t, testBin, "echo run >> "+counter+"\nexec "+testPlugin+" \"$@\"\n")
	// Not plugins, each in its own way.
	writeScript(t, filepath.Join(dir, "corral-allocator-hello"), "echo hello\n")
	if err := os.WriteFile(filepath.Join(dir, "corral-allocator-readme"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "corral-allocator-subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, filepath.Join(dir, "corral-isolator-other"), "exit 1\n")

	pin := strings.Repeat("ab", 32)
	plugins := []conf.Plugin{
		// Pins the sum of the dir's "test".
		{Name: "test", SHA256: pin},
		// Elsewhere, but an isolator: its handshake is not an allocator's.
		{Name: "iso", Path: testPlugin, Args: []string{"-kind=isolator"}},
		// Answers the allocator handshake but says it is an isolator.
		{Name: "liar", Path: testPlugin, Args: []string{"-info-kind=isolator"}},
		// Elsewhere and fine; probed with its args.
		{Name: "custom", Path: testPlugin, Args: []string{"-api-version=v2"}},
		{Name: "gone", Path: "/nonexistent/gone"},
		// A block for a plugin of another kind, found by name: not listed.
		{Name: "other"},
	}
	logger, _ := testLogger(t)
	opts := Options{Logger: logger}
	start := time.Now()
	found := Discover(context.Background(), dir, base.KindAllocator, plugins, opts)
	t.Logf("first listing of %d entries took %s", len(found), time.Since(start))

	var names []string
	for _, f := range found {
		names = append(names, f.Name)
	}
	want := append([]string{"custom", "gone", "hello", "iso", "liar", "test"}, realNames...)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("names = %v, want %v (sorted)", names, want)
	}
	m := byName(found)
	for _, name := range append([]string{"test", "custom"}, realNames...) {
		f := m[name][0]
		sum, err := FileSHA256(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Error != "" || f.SHA256 != sum || f.Version == "" || !slices.Contains(f.APIVersions, allocator.APIVersions[0]) {
			t.Errorf("%s = %+v, want no error, sha256 %s, a version and API %s", name, f, sum, allocator.APIVersions[0])
		}
	}
	if f := m["test"][0]; f.Path != testBin || f.Version != "0.0.1" || f.Configured != pin {
		t.Errorf("test = %+v, want path %s, version 0.0.1, configured %s", f, testBin, pin)
	}
	if f := m["custom"][0]; f.Path != testPlugin || f.Configured != "" {
		t.Errorf("custom = %+v, want path %s, nothing configured", f, testPlugin)
	}
	for name, wants := range map[string][]string{
		"hello": {"not a corral allocator plugin", "hello"},
		"iso":   {"not a corral allocator plugin", "CORRAL_ALLOCATOR_PLUGIN"},
		"liar":  {`says it is a "isolator" plugin`},
		"gone":  {"/nonexistent/gone (does not exist)"},
	} {
		f := m[name][0]
		for _, w := range wants {
			if !strings.Contains(f.Error, w) {
				t.Errorf("%s: Error %q does not contain %q", name, f.Error, w)
			}
		}
	}
	// What a liar says about itself is still shown.
	if f := m["liar"][0]; f.Version != "0.0.1" || f.SHA256 == "" {
		t.Errorf("liar = %+v, want its version and sum", f)
	}

	// Listing again starts nothing that did not change.
	if n := runs(t, counter); n != 1 {
		t.Fatalf("test plugin ran %d times in the first listing, want 1", n)
	}
	again := Discover(context.Background(), dir, base.KindAllocator, plugins, opts)
	if !slices.EqualFunc(found, again, func(a, b Found) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Errorf("second listing differs:\n%+v\n%+v", found, again)
	}
	if n := runs(t, counter); n != 1 {
		t.Errorf("test plugin ran %d times after a second listing, want still 1 (cached)", n)
	}
	// A changed binary is probed again.
	writeScript(t, testBin, "# v2\necho run >> "+counter+"\nexec "+testPlugin+" \"$@\"\n")
	third := Discover(context.Background(), dir, base.KindAllocator, plugins, opts)
	if n := runs(t, counter); n != 2 {
		t.Errorf("test plugin ran %d times after it changed, want 2", n)
	}
	if f := byName(third)["test"][0]; f.SHA256 == m["test"][0].SHA256 || f.Error != "" {
		t.Errorf("changed test = %+v, want a new sum and no error", f)
	}
}

// Which of two binaries a name selects is what the catalog says; the other
// is listed as unused.
func TestDiscoverShadowed(t *testing.T) {
	dir := t.TempDir()
	inDir := filepath.Join(dir, "corral-allocator-test")
	if err := os.Symlink(testPlugin, inDir); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "my-test")
	if err := os.Symlink(testPlugin, elsewhere); err != nil {
		t.Fatal(err)
	}
	found := Discover(context.Background(), dir, base.KindAllocator, []conf.Plugin{{Name: "test", Path: elsewhere, SHA256: strings.Repeat("0", 64)}}, Options{})
	if len(found) != 2 {
		t.Fatalf("found %+v, want two entries named test", found)
	}
	for _, f := range found {
		switch f.Path {
		case elsewhere:
			if f.Error != "" || f.Configured == "" {
				t.Errorf("selected %+v, want no error and the pinned sum", f)
			}
		case inDir:
			if want := `not used: the name "test" selects ` + elsewhere; f.Error != want || f.Configured != "" {
				t.Errorf("shadowed %+v, want Error %q and nothing configured", f, want)
			}
		}
	}
}

// A non-plugin that never answers, and whose child holds our pipe, does
// not hold up a listing beyond StartTimeout; both processes are killed.
func TestDiscoverHangingBinary(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "child")
	writeScript(t, filepath.Join(dir, "corral-allocator-hang"), "sleep 600 &\necho $! > "+pidFile+"\nwait\n")
	start := time.Now()
	found := Discover(context.Background(), dir, base.KindAllocator, nil, Options{StartTimeout: time.Second})
	took := time.Since(start)
	if len(found) != 1 || !strings.Contains(found[0].Error, "did not complete the go-plugin handshake within 1s") {
		t.Fatalf("found %+v, want one entry with a handshake timeout", found)
	}
	// Generous for a loaded machine, far below the child's 600s.
	if took > 60*time.Second {
		t.Errorf("listing took %s", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, child)
	waitFor(t, fmt.Sprintf("the script's child %d to die", child), 10*time.Second, func() bool { return !procfs.Alive(child, 0) })
}

func TestDiscoverNoDir(t *testing.T) {
	found := Discover(context.Background(), "/nonexistent/plugins", base.KindAllocator, nil, Options{})
	if len(found) != 0 {
		t.Errorf("missing plugin_dir: %+v, want nothing", found)
	}
	found = Discover(context.Background(), t.TempDir(), "scheduler", nil, Options{})
	if len(found) != 1 || !strings.Contains(found[0].Error, `unknown plugin kind "scheduler"`) {
		t.Errorf("unknown kind: %+v", found)
	}
}
