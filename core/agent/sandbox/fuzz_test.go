package sandbox

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// secret is what a file outside every sandbox holds; no request may read it.
const secret = "outside-the-sandbox"

// FuzzPathEscape: whatever framework, task and file names a client sends
// (dots, slashes, encoded separators, NULs), the sandbox API serves only
// files inside a sandbox: never a file beside the sandbox root, and never
// through a symlink a task planted.
func FuzzPathEscape(f *testing.F) {
	for _, s := range [][3]string{
		{"fw", "t", "stdout"}, {"..", "..", "secret"}, {"fw", "..", "secret"}, {"fw", "t", "link"},
		{"fw", "t", "..%2f..%2f..%2fsecret"}, {"fw%2f..", "t", "stdout"}, {".", ".", "stdout"},
		{"fw", "t", "dirlink"}, {"fw", "t\x00", "stdout"}, {"fw", "t", "%2e%2e"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	base := f.TempDir()
	root := filepath.Join(base, "sandboxes")
	if err := os.WriteFile(filepath.Join(base, "secret"), []byte(secret), 0o600); err != nil {
		f.Fatal(err)
	}
	dir, err := Create(root, "fw", "t")
	if err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stdout"), []byte("hello"), 0o644); err != nil {
		f.Fatal(err)
	}
	// What a hostile task can do inside its own sandbox.
	if err := os.Symlink(filepath.Join(base, "secret"), filepath.Join(dir, "link")); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(dir, "dirlink")); err != nil {
		f.Fatal(err)
	}
	h := NewHandler(root, hclog.NewNullLogger())
	mux := http.NewServeMux()
	mux.Handle(Pattern, h)
	mux.Handle(ListPattern, h.ListHandler())

	f.Fuzz(func(t *testing.T, fw, task, file string) {
		for _, p := range []string{
			"/api/v1/sandbox/" + fw + "/" + task + "/" + file,
			"/api/v1/sandbox/" + url.PathEscape(fw) + "/" + url.PathEscape(task) + "/" + url.PathEscape(file),
			"/api/v1/sandbox/" + url.PathEscape(fw) + "/" + url.PathEscape(task),
		} {
			u, err := url.Parse("http://agent" + p)
			if err != nil {
				continue
			}
			req := httptest.NewRequest(http.MethodGet, "http://agent/", nil)
			req.URL = u
			req.RequestURI = u.RequestURI()
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			body, _ := io.ReadAll(w.Result().Body)
			if strings.Contains(string(body), secret) {
				t.Fatalf("GET %s answered %d with the secret file outside the sandbox", p, w.Code)
			}
			if w.Code == http.StatusOK && strings.Contains(string(body), "sandboxes") && strings.Contains(string(body), "secret") {
				t.Fatalf("GET %s listed files outside the sandbox: %s", p, body)
			}
		}
	})
}

// FuzzDir: a sandbox path built from any IDs is inside the root or refused.
func FuzzDir(f *testing.F) {
	for _, s := range []string{"fw", "..", ".", "a/b", "", "a\x00", `a\b`, "..."} {
		f.Add(s, "t")
		f.Add("fw", s)
	}
	f.Fuzz(func(t *testing.T, fw, task string) {
		root := "/var/lib/corral/sandboxes"
		dir, err := Dir(root, fw, task)
		if err != nil {
			return
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || strings.Count(rel, string(filepath.Separator)) != 1 {
			t.Fatalf("Dir(%q, %q) = %q, not a sandbox two levels under the root", fw, task, dir)
		}
	})
}
