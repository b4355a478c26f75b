package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecuritySettings: agent { allow_root_tasks credential_file } and
// master { max_subscriptions_per_principal }, their defaults and errors.
func TestSecuritySettings(t *testing.T) {
	def, err := Parse("empty.hcl", nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.Agent.AllowRootTasks != nil || def.Agent.Credential != nil || def.Master.MaxSubscriptionsPerPrincipal != 100 {
		t.Fatalf("defaults: allow_root_tasks %v, credential %v, max_subscriptions_per_principal %d; want unset, unset, 100",
			def.Agent.AllowRootTasks, def.Agent.Credential, def.Master.MaxSubscriptionsPerPrincipal)
	}
	cred := filepath.Join(t.TempDir(), "agent-credential.json")
	if err := os.WriteFile(cred, []byte(`{"principal": "agent-7", "secret": "s3cret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src       string
		allowRoot string // "", "true", "false"
		maxSubs   int
	}{
		{"agent {\n  allow_root_tasks = true\n}\n", "true", 100},
		{"agent {\n  allow_root_tasks = false\n}\n", "false", 100},
		{"master {\n  max_subscriptions_per_principal = 0\n}\n", "", 0},
		{"master {\n  max_subscriptions_per_principal = 3\n}\n", "", 3},
	} {
		cfg, err := Parse("s.hcl", []byte(tc.src))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.src, err)
		}
		got := ""
		if cfg.Agent.AllowRootTasks != nil {
			got = map[bool]string{true: "true", false: "false"}[*cfg.Agent.AllowRootTasks]
		}
		if got != tc.allowRoot || cfg.Master.MaxSubscriptionsPerPrincipal != tc.maxSubs {
			t.Errorf("Parse(%q): allow_root_tasks %q, max_subscriptions_per_principal %d; want %q, %d",
				tc.src, got, cfg.Master.MaxSubscriptionsPerPrincipal, tc.allowRoot, tc.maxSubs)
		}
	}
	cfg, err := Parse("c.hcl", []byte("agent {\n  credential_file = \""+cred+"\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Agent.Credential; c == nil || c.Principal != "agent-7" || c.Secret != "s3cret" || cfg.Agent.CredentialFile != cred {
		t.Fatalf("credential_file loaded %+v", c)
	}

	for _, tc := range []struct{ src, want string }{
		{"agent {\n  allow_root_tasks = \"sometimes\"\n}\n", "allow_root_tasks"},
		{"master {\n  max_subscriptions_per_principal = -1\n}\n", "max_subscriptions_per_principal"},
		{"agent {\n  credential_file = \"/nonexistent/cred.json\"\n}\n", "agent.credential_file"},
		{"agent {\n  credential_file = \"\"\n}\n", "agent.credential_file"},
	} {
		_, err := Parse("bad.hcl", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.hcl:") {
			t.Errorf("Parse(%q) = %v, want an error naming the line and %q", tc.src, err, tc.want)
		}
	}
}
