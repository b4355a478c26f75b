package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestListLengthAndDownload: the listing the sandbox browser shows, reads
// bounded by length (0: the size only), whole-file downloads, and names
// that would leave the sandbox refused.
func TestListLengthAndDownload(t *testing.T) {
	root := t.TempDir()
	h := NewHandler(root, hclog.NewNullLogger())
	mux := http.NewServeMux()
	mux.Handle(Pattern, h)
	mux.Handle(ListPattern, h.ListHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	dir, err := Create(root, "fw1", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, Stdout), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.txt"), []byte("done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "sneaky")); err != nil {
		t.Fatal(err)
	}

	code, _, body := get(t, srv.URL+"/api/v1/sandbox/fw1/t1")
	var list []Entry
	if err := json.Unmarshal(body, &list); code != 200 || err != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, ","); got != "result.txt,stderr,stdout,work" || !list[3].Dir || list[2].Size != 10 {
		t.Errorf("listing %s, want result.txt,stderr,stdout,work (no symlink) with sizes and dirs: %+v", got, list)
	}
	for _, tc := range []struct {
		query, want string
		code        int
	}{
		{"?offset=2&length=3", "234", 200},
		{"?length=0", "", 200},
		{"?offset=8&length=100", "89", 200},
		{"?length=-1", "", 400},
	} {
		code, hdr, body := get(t, srv.URL+"/api/v1/sandbox/fw1/t1/stdout"+tc.query)
		if code != tc.code || (code == 200 && (string(body) != tc.want || hdr.Get(SizeHeader) != "10")) {
			t.Errorf("stdout%s: %d %q size %s, want %d %q size 10", tc.query, code, body, hdr.Get(SizeHeader), tc.code, tc.want)
		}
	}
	code, hdr, body := get(t, srv.URL+"/api/v1/sandbox/fw1/t1/result.txt?download=1")
	if code != 200 || string(body) != "done\n" || !strings.Contains(hdr.Get("Content-Disposition"), `filename="result.txt"`) {
		t.Errorf("download: %d %q %v", code, body, hdr)
	}
	if code, _, _ := get(t, srv.URL+"/api/v1/sandbox/fw1/t1/sneaky"); code != 404 {
		t.Errorf("a symlink in the sandbox was served: %d", code)
	}
	if code, _, _ := get(t, srv.URL+"/api/v1/sandbox/fw1/t1/.."); code == 200 {
		t.Errorf("'..' as a file name was served")
	}
	if code, _, _ := get(t, srv.URL+"/api/v1/sandbox/fw1/nope"); code != 404 {
		t.Errorf("listing a missing sandbox: %d, want 404", code)
	}
}
