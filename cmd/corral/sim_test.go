package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimCompare runs `corral sim -compare` with shipped plugins, the
// static mode and an in-house allocator given by path, and checks the
// summary table and the report folder.
func TestSimCompare(t *testing.T) {
	dir := binDir(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sim", "-trace", "../../testdata/traces/small.json",
		"-compare", "drf,static," + filepath.Join(dir, "plugins", "corral-allocator-binpack"),
		"-plugin-dir", filepath.Join(dir, "plugins"), "-out", out, "-plot", "svg"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"policy", "drf", "static", "corral-allocator-binpack", "locality", "hadoop"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, f := range []string{"results.json", "utilization.csv", "shares.csv", "jobs.csv", "frameworks.csv",
		"utilization.svg", "shares.svg", "completion_cdf.svg"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestSimFlagErrors(t *testing.T) {
	plugins := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "-out", "x"}, "-trace and -out are required"},
		{[]string{"sim", "-trace", "../../testdata/traces/small.json", "-out", "x", "-plot", "gif"}, `-plot "gif"`},
		{[]string{"sim", "-trace", "nope.json", "-out", "x"}, "nope.json"},
		{[]string{"sim", "-trace", "../../testdata/traces/small.json", "-out", "x", "-compare", "drf,drf"}, `"drf" given twice`},
		{[]string{"sim", "-trace", "../../testdata/traces/small.json", "-out", "x", "-compare", "drf,drf=nofile.hcl"}, "readable HCL file"},
		{[]string{"sim", "-trace", "../../testdata/traces/small.json", "-out", "x", "-compare", "drf="}, "no config file"},
		{[]string{"sim", "-trace", "../../testdata/traces/small.json", "-out", "x", "-allocator", "drf,nofile"}, "nor inline HCL"},
		{[]string{"sim", "-trace", "../../testdata/traces/small.json", "-out", "x", "-plugin-dir", plugins, "-allocator", "fancy"},
			`allocator plugin "fancy" not found`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestSimComparePerPolicyConfig runs one plugin under two configs side by
// side (NAME=FILE in -compare): both appear, labelled apart.
func TestSimComparePerPolicyConfig(t *testing.T) {
	dir := binDir(t)
	out := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "seeded.hcl")
	if err := os.WriteFile(cfg, []byte("shuffle_seed = 7\nmin_offer = \"cpus:1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sim", "-trace", "../../testdata/traces/small.json",
		"-compare", "drf,drf=" + cfg, "-plugin-dir", filepath.Join(dir, "plugins"), "-out", out, "-plot", "svg"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"drf ", "drf=seeded.hcl"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}
