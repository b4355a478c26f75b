package acl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCredential(t *testing.T) {
	c, err := ParseCredential([]byte(`{"principal": "agent-7", "secret": "s3cret"}`))
	if err != nil || c.Principal != "agent-7" || c.Secret != "s3cret" {
		t.Fatalf("ParseCredential = %+v, %v", c, err)
	}
	for _, tc := range []struct{ src, want string }{
		{`{"principal": "", "secret": "s"}`, "principal is empty"},
		{`{"principal": "a"}`, `principal "a" has an empty secret`},
		{`{"principal": "ANY", "secret": "s"}`, "reserved"},
		{`{"principal": "a:b", "secret": "s"}`, "colon"},
		{`{"principal": "a", "secret": "s", "extra": 1}`, "unknown field"},
		{`{"credentials": []}`, "unknown field"},
		{`not json`, `want {"principal"`},
	} {
		if _, err := ParseCredential([]byte(tc.src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCredential(%s) = %v, want an error saying %q", tc.src, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "cred.json")
	if _, err := LoadCredential(path); err == nil || !strings.Contains(err.Error(), "credential") {
		t.Errorf("LoadCredential of a missing file = %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"principal": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredential(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadCredential of a bad file = %v, want the path named", err)
	}
}
