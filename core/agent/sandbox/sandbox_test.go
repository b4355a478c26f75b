package sandbox

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func newServer(t *testing.T) (root string, srv *httptest.Server) {
	t.Helper()
	root = t.TempDir()
	mux := http.NewServeMux()
	mux.Handle(Pattern, NewHandler(root, hclog.NewNullLogger()))
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return root, srv
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func TestCreate(t *testing.T) {
	root := t.TempDir()
	dir, err := Create(root, "fw1", "task1")
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(root, "fw1", "task1") {
		t.Fatalf("dir = %s", dir)
	}
	for _, f := range []string{Stdout, Stderr} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Size() != 0 {
			t.Fatalf("%s: stat %v err %v, want an empty file", f, st, err)
		}
	}
	// Recreating keeps existing output.
	if err := os.WriteFile(filepath.Join(dir, Stdout), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(root, "fw1", "task1"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, Stdout)); string(b) != "old" {
		t.Fatalf("stdout = %q after re-create, want old", b)
	}
	for _, bad := range [][2]string{{"..", "t"}, {"fw", "../x"}, {"", "t"}, {"fw", "."}, {"a/b", "t"}} {
		if _, err := Create(root, bad[0], bad[1]); err == nil {
			t.Errorf("Create(%q, %q) succeeded, want an error", bad[0], bad[1])
		}
	}
}

func TestServeOffsets(t *testing.T) {
	root, srv := newServer(t)
	dir, err := Create(root, "fw", "t1")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789"), MaxRead/10+50) // a bit over 1 MiB
	if err := os.WriteFile(filepath.Join(dir, Stdout), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, Stderr), []byte("oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := srv.URL + "/api/v1/sandbox/fw/t1/"
	for _, tc := range []struct {
		name, path string
		code       int
		want       []byte
		size       int
	}{
		{"stderr whole", "stderr", 200, []byte("oops\n"), 5},
		{"stderr offset", "stderr?offset=2", 200, []byte("ps\n"), 5},
		{"offset at end", "stderr?offset=5", 200, []byte{}, 5},
		{"offset past end", "stderr?offset=500", 200, []byte{}, 5},
		{"capped at 1 MiB", "stdout", 200, big[:MaxRead], len(big)},
		{"second page", "stdout?offset=" + strconv.Itoa(MaxRead), 200, big[MaxRead:], len(big)},
		{"negative offset", "stderr?offset=-1", 400, nil, -1},
		{"bad offset", "stderr?offset=x", 400, nil, -1},
		{"other file", "executor.log", 404, nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := get(t, base+tc.path)
			if code != tc.code {
				t.Fatalf("status %d, want %d (body %q)", code, tc.code, body)
			}
			if tc.want != nil && !bytes.Equal(body, tc.want) {
				t.Fatalf("body has %d bytes %.20q, want %d bytes %.20q", len(body), body, len(tc.want), tc.want)
			}
			if tc.size >= 0 && hdr.Get(SizeHeader) != strconv.Itoa(tc.size) {
				t.Fatalf("%s = %q, want %d", SizeHeader, hdr.Get(SizeHeader), tc.size)
			}
		})
	}
}

func TestServeRejectsTraversalAndUnknown(t *testing.T) {
	root, srv := newServer(t)
	// A secret next to the sandbox root that traversal would reach.
	secretDir := filepath.Join(root, "fw", "t1")
	if err := os.MkdirAll(secretDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "stdout"), []byte("SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "stdout"), []byte("SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A task that replaced its stdout with a symlink must not get it served.
	if err := os.Symlink(filepath.Join(outside, "stdout"), filepath.Join(secretDir, "stdout")); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/api/v1/sandbox/fw/nope/stdout",
		"/api/v1/sandbox/nope/t1/stderr",
		"/api/v1/sandbox/fw/t1/stdout",
		"/api/v1/sandbox/fw/..%2F..%2F/stdout",
		"/api/v1/sandbox/..%2F..%2F..%2F..%2F..%2F..%2Ftmp/x/stdout",
		"/api/v1/sandbox/%2E%2E/%2E%2E/stdout",
		"/api/v1/sandbox/../../stdout",
		"/api/v1/sandbox/fw/../stdout",
	} {
		code, _, body := get(t, srv.URL+path)
		if code == http.StatusOK || bytes.Contains(body, []byte("SECRET")) {
			t.Errorf("GET %s: status %d body %q, want a refusal", path, code, body)
		}
		if code != 404 && code != 400 {
			t.Errorf("GET %s: status %d, want 400 or 404", path, code)
		}
	}
}
