package fetch

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// server serves files by path and counts the requests it answered.
func server(t *testing.T, files map[string][]byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

type entry struct {
	name, body string
}

func tarball(t *testing.T, gz bool, members ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w *tar.Writer
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = tar.NewWriter(zw)
	} else {
		w = tar.NewWriter(&buf)
	}
	for _, m := range members {
		if strings.HasSuffix(m.name, "/") {
			if err := w.WriteHeader(&tar.Header{Name: m.name, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := w.WriteHeader(&tar.Header{Name: m.name, Typeflag: tar.TypeReg, Mode: 0o640, Size: int64(len(m.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func zipball(t *testing.T, members ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, m := range members {
		f, err := w.Create(m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// TestFetch: every way a URI reaches a sandbox, and the errors that name
// what went wrong.
func TestFetch(t *testing.T) {
	script := []byte("#!/bin/sh\necho hi\n")
	tgz := tarball(t, true, entry{"conf/", ""}, entry{"conf/app.conf", "port=1"}, entry{"README", "read me"})
	plainTar := tarball(t, false, entry{"data.txt", "rows"})
	zipped := zipball(t, entry{"lib/a.txt", "A"})
	srv, _ := server(t, map[string][]byte{
		"/bin/run.sh": script, "/pkg/app.tar.gz": tgz, "/pkg/data.tar": plainTar, "/pkg/lib.zip": zipped,
	})
	local := filepath.Join(t.TempDir(), "local.txt")
	if err := os.WriteFile(local, []byte("on the agent"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		uri     URI
		want    map[string]string // sandbox file -> content
		wantErr string
		exec    string // a file that must be executable
	}{
		{name: "http", uri: URI{Value: srv.URL + "/bin/run.sh"}, want: map[string]string{"run.sh": string(script)}},
		{name: "name from the URL path, not its query", uri: URI{Value: srv.URL + "/bin/run.sh?token=x"}, want: map[string]string{"run.sh": string(script)}},
		{name: "output file", uri: URI{Value: srv.URL + "/bin/run.sh", OutputFile: "start"}, want: map[string]string{"start": string(script)}},
		{name: "executable", uri: URI{Value: srv.URL + "/bin/run.sh", Executable: true}, exec: "run.sh"},
		{name: "sha256 matches", uri: URI{Value: srv.URL + "/bin/run.sh", SHA256: strings.ToUpper(sum(script))}, want: map[string]string{"run.sh": string(script)}},
		{name: "local path", uri: URI{Value: local}, want: map[string]string{"local.txt": "on the agent"}},
		{name: "file URL", uri: URI{Value: "file://" + local}, want: map[string]string{"local.txt": "on the agent"}},
		{name: "tar.gz extracted", uri: URI{Value: srv.URL + "/pkg/app.tar.gz", Extract: true},
			want: map[string]string{"conf/app.conf": "port=1", "README": "read me"}},
		{name: "tar extracted", uri: URI{Value: srv.URL + "/pkg/data.tar", Extract: true}, want: map[string]string{"data.txt": "rows"}},
		{name: "zip extracted", uri: URI{Value: srv.URL + "/pkg/lib.zip", Extract: true}, want: map[string]string{"lib/a.txt": "A"}},
		{name: "archive kept when not extracted", uri: URI{Value: srv.URL + "/pkg/data.tar"}, want: map[string]string{"data.tar": string(plainTar)}},

		{name: "sha256 mismatch", uri: URI{Value: srv.URL + "/bin/run.sh", SHA256: sum([]byte("other"))},
			wantErr: "sha256 is " + sum(script) + ", expected " + sum([]byte("other"))},
		{name: "HTTP 404", uri: URI{Value: srv.URL + "/missing"}, wantErr: "404"},
		{name: "missing local file", uri: URI{Value: "/nonexistent/corral-fetch"}, wantErr: "no such file"},
		{name: "no file name", uri: URI{Value: srv.URL + "/"}, wantErr: "set output_file"},
		{name: "output file with a slash", uri: URI{Value: srv.URL + "/bin/run.sh", OutputFile: "../run.sh"}, wantErr: "set output_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := &Fetcher{CacheDir: filepath.Join(t.TempDir(), "cache")}
			_, err := f.Fetch(context.Background(), tc.uri, dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Fetch(%s) = %v, want an error saying %q", tc.uri.Value, err, tc.wantErr)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a failed fetch left %v in the sandbox", entries)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch(%s): %v", tc.uri.Value, err)
			}
			for name, content := range tc.want {
				if got := readFile(t, filepath.Join(dir, name)); got != content {
					t.Errorf("%s = %q, want %q", name, got, content)
				}
			}
			if tc.exec != "" {
				if st, err := os.Stat(filepath.Join(dir, tc.exec)); err != nil || st.Mode().Perm()&0o111 == 0 {
					t.Errorf("%s is not executable: %v %v", tc.exec, st.Mode(), err)
				}
			}
		})
	}
}

// TestFetchCache: a cached URI is downloaded once per URI and checksum and
// copied into each sandbox; an uncached one is downloaded every time.
func TestFetchCache(t *testing.T) {
	body := []byte("payload")
	srv, hits := server(t, map[string][]byte{"/f.bin": body})
	f := &Fetcher{CacheDir: filepath.Join(t.TempDir(), "cache")}
	cached := URI{Value: srv.URL + "/f.bin", Cache: true}
	for i := range 3 {
		dir := t.TempDir()
		if _, err := f.Fetch(context.Background(), cached, dir); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if got := readFile(t, filepath.Join(dir, "f.bin")); got != string(body) {
			t.Fatalf("fetch %d: %q", i, got)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("three cached fetches made %d downloads, want 1", n)
	}
	// The checksum is part of the key: the same URI with a sum is another
	// cache entry (and is checked).
	if _, err := f.Fetch(context.Background(), URI{Value: cached.Value, Cache: true, SHA256: sum(body)}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), URI{Value: cached.Value}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("after a summed and an uncached fetch: %d downloads, want 3", n)
	}
}

// TestExtractStaysInSandbox: archive members that climb out are refused,
// and a symlink already in the sandbox does not lead a member outside.
func TestExtractStaysInSandbox(t *testing.T) {
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		archive []byte
		file    string
	}{
		{"tar ../", tarball(t, false, entry{"../escaped", "x"}), "evil.tar"},
		{"tar absolute", tarball(t, false, entry{filepath.Join(outside, "escaped"), "x"}), "evil.tar"},
		{"zip ../", zipball(t, entry{"a/../../escaped", "x"}), "evil.zip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "sandbox")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			src := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(src, tc.archive, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := (&Fetcher{}).Fetch(context.Background(), URI{Value: src, Extract: true}, dir)
			if err == nil || !strings.Contains(err.Error(), "leaves the sandbox") {
				t.Fatalf("Fetch = %v, want a refusal naming the member", err)
			}
			for _, p := range []string{filepath.Join(parent, "escaped"), filepath.Join(outside, "escaped")} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s was written outside the sandbox", p)
				}
			}
		})
	}
	t.Run("symlink in the sandbox", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(t.TempDir(), "via-link.tar")
		if err := os.WriteFile(src, tarball(t, false, entry{"link/escaped", "x"}), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := (&Fetcher{}).Fetch(context.Background(), URI{Value: src, Extract: true}, dir); err == nil {
			t.Error("a member under a symlink to outside the sandbox was extracted")
		}
		if _, err := os.Stat(filepath.Join(outside, "escaped")); err == nil {
			t.Error("a member was written through the symlink, outside the sandbox")
		}
	})
}
