package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/sdk/acl"
)

func TestACLBlock(t *testing.T) {
	cfg, err := Load("testdata/acl.hcl")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.ACL
	if a == nil || a.Permissive {
		t.Fatalf("ACL = %+v, want enforced, not permissive", a)
	}
	for _, tc := range []struct {
		principal string
		action    acl.Action
		object    string
		allowed   bool
	}{
		{"analytics", acl.RegisterFrameworks, "analytics", true},
		{"analytics", acl.RegisterFrameworks, "batch/nightly", true},
		{"analytics", acl.RegisterFrameworks, "prod", false},
		{"ops", acl.RegisterFrameworks, "*", false},
		{"analytics", acl.RunTasks, "nobody", true},
		{"analytics", acl.RunTasks, "root", false},
		{"ops", acl.KillTasks, "analytics", true},
		{"analytics", acl.KillTasks, "ops", false},
		{"anyone", acl.ViewFrameworks, "analytics", true}, // absent object list: ANY
		{"agent", acl.RegisterAgents, "host1", true},
		{"analytics", acl.DrainAgents, "host1", false}, // no rules: the default denies
	} {
		if got := a.Decide(tc.principal, tc.action, tc.object).Allowed; got != tc.allowed {
			t.Errorf("%s %s %s: allowed=%v, want %v", tc.principal, tc.action, tc.object, got, tc.allowed)
		}
	}
	if none, _ := Parse("x.hcl", nil); none.ACL != nil {
		t.Error("no acl block: want ACLs off (nil)")
	}
	if p, err := Parse("x.hcl", []byte("acl {\n  permissive = true\n}\n")); err != nil || !p.ACL.Permissive {
		t.Errorf("permissive acl block: %+v, %v", p.ACL, err)
	}
}

func TestACLErrors(t *testing.T) {
	for _, tc := range []struct {
		src, want string
	}{
		{"acl {\n  register_frameworks {\n    roles = [\"a\"]\n  }\n}\n", "needs principals"},
		{"acl {\n  register_frameworks {\n    principals = []\n  }\n}\n", "acl.register_frameworks[0].principals"},
		{"acl {\n  run_tasks {\n    principals = [\"a\"]\n    roles = [\"x\"]\n  }\n}\n", "roles"},
		{"acl {\n  run_tasks {\n    principals = [\"NONE\"]\n  }\n}\n", "a rule for no principal"},
		{"acl {\n  run_tasks {\n    principals = [\"ANY\", \"a\"]\n  }\n}\n", "cannot be mixed"},
		{"acl {\n  launch_tasks {\n    principals = [\"a\"]\n  }\n}\n", "launch_tasks"},
		{"acl {\n  permissive = \"maybe\"\n}\n", "permissive"},
		{"acl {}\nacl {}\n", "Duplicate acl block"},
		{"credentials_file = \"/nonexistent/creds.json\"\n", "credentials_file"},
	} {
		_, err := Parse("acl.hcl", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "acl.hcl:") {
			t.Errorf("Parse(%q) = %v, want an error naming the line and %q", tc.src, err, tc.want)
		}
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(path, []byte(`{"credentials": [{"principal": "analytics", "secret": "s3cret"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("c.hcl", []byte("credentials_file = \""+path+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Credentials.Verify("analytics", "s3cret") != nil || cfg.Credentials.Verify("analytics", "x") == nil {
		t.Fatal("the credentials file was not loaded as written")
	}
	if err := os.WriteFile(path, []byte(`{"credentials": [{"principal": "analytics"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("c.hcl", []byte("credentials_file = \""+path+"\"\n")); err == nil || !strings.Contains(err.Error(), "empty secret") {
		t.Fatalf("a credential without a secret: %v", err)
	}
}
