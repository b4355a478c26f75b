package conf

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/corral-project/corral/sdk/resources"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings of the error, in any order
	}{
		{"typo.hcl", []string{
			`testdata/typo.hcl:3,3-11: Unsupported argument; An argument named "alocator" is not expected here. Did you mean "allocator"?`,
		}},
		{"bad_duration.hcl", []string{
			`testdata/bad_duration.hcl:4,25-29: Invalid value for master.allocation_interval; "1x" is not a duration`,
		}},
		{"bad_resources.hcl", []string{
			`testdata/bad_resources.hcl:2,15-35: Invalid value for agent.resources; resources "cpus:four;mem:2048"`,
		}},
		{"duplicate_plugin.hcl", []string{
			`testdata/duplicate_plugin.hcl:5,1-13: Duplicate plugin block; A plugin block named "drf" was already declared at testdata/duplicate_plugin.hcl:1,1-13`,
		}},
		{"duplicate_role.hcl", []string{
			`testdata/duplicate_role.hcl:3,3-19: Duplicate role block; A role block named "analytics" was already declared at testdata/duplicate_role.hcl:2,3-19`,
		}},
		{"duplicate_master.hcl", []string{
			`testdata/duplicate_master.hcl:4,1-7: Duplicate master block`,
		}},
		{"wrong_type.hcl", []string{
			`testdata/wrong_type.hcl:2,23-29: Incorrect attribute value type; Inappropriate value for attribute "max_message_bytes"`,
		}},
		{"bad_weight.hcl", []string{
			`testdata/bad_weight.hcl:2,27-28: Invalid value for master.role["batch"].weight; a role weight must be greater than 0, got 0`,
		}},
		{"bad_address.hcl", []string{
			`testdata/bad_address.hcl:2,12-23: Invalid value for agent.master; "localhost" is not host:port`,
		}},
		{"bad_log_level.hcl", []string{
			`testdata/bad_log_level.hcl:1,13-22: Invalid value for log_level; unknown log level "verbose"`,
		}},
		{"bad_role_name.hcl", []string{
			`testdata/bad_role_name.hcl:2,8-17: Invalid role name; role "eng//ml": empty path component`,
		}},
		{"bad_priority.hcl", []string{
			`testdata/bad_priority.hcl:2,27-30: Unsuitable value; Unsuitable value for attribute "priority": value must be a whole number`,
		}},
		{"star_quota.hcl", []string{
			`testdata/star_quota.hcl:3,5-10: Invalid block master.role["*"].quota; the default role "*" cannot have a quota`,
		}},
		{"guarantee_over_limit.hcl", []string{
			`testdata/guarantee_over_limit.hcl:4,19-38: Invalid value for master.role["eng/ml"].quota.guarantee; ` +
				`the guarantee exceeds the limit on cpus 40 > 32, mem 16384 > 8192; a role cannot be guaranteed more than it may use ` +
				`(limit set at testdata/guarantee_over_limit.hcl:5,7-37)`,
		}},
		{"bad_quota.hcl", []string{
			`testdata/bad_quota.hcl:4,19-31: Invalid value for master.role["eng"].quota.guarantee; resources "cpus:eight": resource "cpus": "eight" is not a number`,
			`testdata/bad_quota.hcl:5,19-40: Invalid value for master.role["eng"].quota.limit; resources "ports:[31000-32000]": quota applies to scalar resources only`,
		}},
		{"duplicate_quota.hcl", []string{
			`testdata/duplicate_quota.hcl:4,5-10: Duplicate quota block; A quota block was already declared at testdata/duplicate_quota.hcl:3,5-10`,
		}},
		{"bad_sha256.hcl", []string{
			`testdata/bad_sha256.hcl:3,12-20: Invalid value for plugin["drf"].sha256; sha256 "abc123" is 6 characters; a sha256 is 64 hex digits`,
		}},
		{"bad_revoke.hcl", []string{
			`testdata/bad_revoke.hcl:2,18-23: Invalid value for master.revoke_after; must not be negative, got -1h0m0s`,
			`testdata/bad_revoke.hcl:3,18-22: Invalid value for master.revoke_grace; must be greater than 0, got 0s`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatalf("Load succeeded, want error; got %+v", cfg)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T is not a *conf.Error: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %s\ndoes not contain\n  %s", err, w)
				}
			}
		})
	}
}

func TestLoadEmptyIsDefault(t *testing.T) {
	cfg, err := Load("testdata/empty.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("empty file:\n got %+v\nwant %+v", cfg, Default())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestLoadPartialKeepsDefaults(t *testing.T) {
	cfg, err := Load("testdata/partial.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Master.Allocator = "quota"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v, want %+v", *cfg.Master, *want.Master)
	}
}

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		LogLevel:  "debug",
		LogJSON:   true,
		PluginDir: "/opt/corral/plugins",
		Master: &Master{
			Address:                      "0.0.0.0:6050",
			WorkDir:                      "/var/lib/corral/master",
			AllocationInterval:           500 * time.Millisecond,
			Allocator:                    "priority",
			AllocatorTimeout:             2 * time.Second,
			AllocatorInitTimeout:         90 * time.Second,
			OfferTimeout:                 0,
			HeartbeatInterval:            10 * time.Second,
			AgentReregisterTimeout:       2 * time.Minute,
			MaxMessageBytes:              4194304,
			RevokeAfter:                  2 * time.Hour,
			RevokeGrace:                  45 * time.Second,
			MaxSubscriptionsPerPrincipal: 20,
			Roles: []Role{
				{Name: "analytics", Weight: 2},
				{Name: "batch", Weight: 0.5},
				{Name: "eng/ml", Weight: 3, Priority: 10,
					Guarantee: resources.MustParse("cpus:8;mem:16384"), Limit: resources.MustParse("cpus:32")},
				{Name: "eng/web", Weight: 1, Priority: -1, Limit: resources.MustParse("gpus:0.5")},
			},
		},
		Agent: &Agent{
			Master:                    "10.0.0.1:6050",
			Address:                   "0.0.0.0:6051",
			WorkDir:                   "/var/lib/corral/agent",
			Hostname:                  "node-1",
			Resources:                 "cpus:4;mem:2048;ports:[31000-32000]",
			Attributes:                map[string]string{"rack": "r1", "zone": "z2"},
			Isolator:                  "cgroups",
			Executor:                  "custom",
			ExecutorShutdownGrace:     3 * time.Second,
			StatusUpdateRetry:         time.Second,
			ExecutorIdleTimeout:       90 * time.Second,
			ExecutorReregisterTimeout: 20 * time.Second,
			OnShutdown:                "kill",
			GCDelay:                   48 * time.Hour,
			DiskWatchInterval:         30 * time.Second,
			GCDiskHeadroom:            0.2,
			AllowRootTasks:            new(bool),
		},
	}
	plugins := cfg.Plugins
	cfg.Plugins = nil
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("master got %+v\nwant %+v", *cfg.Master, *want.Master)
		t.Errorf("agent got %+v\nwant %+v", *cfg.Agent, *want.Agent)
	}
	if len(plugins) != 2 {
		t.Fatalf("got %d plugins, want 2", len(plugins))
	}
	p := plugins[0]
	if p.Name != "priority" || p.Path != "/opt/corral/priority" || !reflect.DeepEqual(p.Args, []string{"-fast"}) ||
		p.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("plugin[0] = %+v", p)
	}
	if p.DeclRange.Start.Line != 55 {
		t.Errorf("plugin[0] declared at line %d, want 55", p.DeclRange.Start.Line)
	}
	if p.Config == nil {
		t.Fatal("plugin[0].Config is nil, want the config block's body")
	}
	attrs, diags := p.Config.JustAttributes()
	if diags.HasErrors() || attrs["levels"] == nil {
		t.Errorf("config body attributes = %v, %v; want levels", attrs, diags)
	}
	if plugins[1].Name != "cgroups" || plugins[1].Config != nil {
		t.Errorf("plugin[1] = %+v, want cgroups with nil Config", plugins[1])
	}
	cfg.Plugins = plugins
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestPluginSHA256(t *testing.T) {
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct {
		name  string
		value string // the attribute's HCL expression; "" leaves it out
		want  string // the decoded sum
		err   string // the whole expected error
	}{
		{name: "absent", value: "", want: ""},
		{name: "lowercase", value: `"` + sum + `"`, want: sum},
		{name: "uppercase is lowercased", value: `"` + strings.ToUpper(sum) + `"`, want: sum},
		{name: "too short", value: `"abcd"`,
			err: `p.hcl:3,12-18: Invalid value for plugin["drf"].sha256; sha256 "abcd" is 4 characters; a sha256 is 64 hex digits, as printed by sha256sum or ` + "`corral allocator list`"},
		{name: "too long", value: `"` + sum + `0"`,
			err: `p.hcl:3,12-79: Invalid value for plugin["drf"].sha256; sha256 "` + sum + `0" is 65 characters; a sha256 is 64 hex digits`},
		{name: "not hex", value: `"` + strings.Repeat("zz", 32) + `"`,
			err: `p.hcl:3,12-78: Invalid value for plugin["drf"].sha256; sha256 "` + strings.Repeat("zz", 32) + `" is not hexadecimal: use only the digits 0-9 and a-f`},
		{name: "prefixed", value: `"sha256:` + sum + `"`,
			err: `p.hcl:3,12-85: Invalid value for plugin["drf"].sha256; sha256 "sha256:` + sum + `": write the 64 hex digits without the "sha256:" prefix ("` + sum + `")`},
		{name: "not a string", value: `[1]`,
			err: `p.hcl:3,12-15: Incorrect attribute value type; Inappropriate value for attribute "sha256": string required, but have tuple (want string).`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "plugin \"drf\" {\n  path   = \"/opt/drf\"\n"
			if tt.value != "" {
				src += "  sha256 = " + tt.value + "\n"
			}
			src += "}\n"
			cfg, err := Parse("p.hcl", []byte(src))
			if tt.err != "" {
				if err == nil {
					t.Fatalf("Parse succeeded with sha256 %q, want error", cfg.Plugin("drf").SHA256)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error\n  %s\ndoes not contain\n  %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Plugin("drf").SHA256; got != tt.want {
				t.Fatalf("SHA256 = %q, want %q", got, tt.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	src := `{"log_level": "warn", "master": {"allocator": "quota", "revoke_after": "1h", "role": {
		"a": {"weight": 3},
		"b/c": {"priority": 2, "quota": {"guarantee": "cpus:1", "limit": "cpus:2;mem:64"}}}}}`
	cfg, err := Parse("corral.json", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	wantRoles := []Role{{Name: "a", Weight: 3},
		{Name: "b/c", Weight: 1, Priority: 2, Guarantee: resources.MustParse("cpus:1"), Limit: resources.MustParse("cpus:2;mem:64")}}
	if cfg.LogLevel != "warn" || cfg.Master.Allocator != "quota" || cfg.Master.RevokeAfter != time.Hour ||
		!reflect.DeepEqual(cfg.Master.Roles, wantRoles) {
		t.Fatalf("got %+v / %+v", cfg, cfg.Master)
	}
}

// The defaults of the revocation settings are part of the contract with
// the master: revocation off, and a 30s grace once it is turned on.
func TestRevokeDefaults(t *testing.T) {
	cfg, err := Parse("x.hcl", []byte("master {\n  revoke_after = \"90m\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := Default().Master; d.RevokeAfter != 0 || d.RevokeGrace != 30*time.Second {
		t.Errorf("defaults revoke_after=%v revoke_grace=%v, want 0 and 30s", d.RevokeAfter, d.RevokeGrace)
	}
	if m := cfg.Master; m.RevokeAfter != 90*time.Minute || m.RevokeGrace != 30*time.Second {
		t.Errorf("revoke_after=%v revoke_grace=%v, want 1h30m and the default 30s", m.RevokeAfter, m.RevokeGrace)
	}
}

func TestParseSyntaxErrorNamesLine(t *testing.T) {
	_, err := Parse("x.hcl", []byte("master {\n  address = \n}\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "x.hcl:2,") {
		t.Fatalf("got %v, want an error starting with x.hcl:2,", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.hcl")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"ok", func(*Config) {}, ""},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, `log_level: unknown log level "loud"`},
		{"address", func(c *Config) { c.Master.Address = "5050" }, `master.address: "5050" is not host:port`},
		{"port", func(c *Config) { c.Agent.Address = "127.0.0.1:99999" }, `agent.address: "127.0.0.1:99999": port "99999"`},
		{"weight", func(c *Config) { c.Master.Roles = []Role{{Name: "a", Weight: -1}} }, `master.role["a"].weight: a role weight must be greater than 0`},
		{"dup role", func(c *Config) { c.Master.Roles = []Role{{Name: "a", Weight: 1}, {Name: "a", Weight: 2}} }, `master.role["a"]: duplicate role`},
		{"dup plugin", func(c *Config) { c.Plugins = []Plugin{{Name: "x"}, {Name: "x"}} }, `plugin["x"]: duplicate plugin block`},
		{"resources", func(c *Config) { c.Agent.Resources = "cpus" }, `agent.resources: resources "cpus"`},
		{"interval", func(c *Config) { c.Master.AllocationInterval = 0 }, `master.allocation_interval: must be greater than 0`},
		{"plugin name", func(c *Config) { c.Master.Allocator = "../drf" }, `master.allocator: plugin name "../drf"`},
		{"hierarchical role", func(c *Config) {
			c.Master.Roles = []Role{{Name: "eng/ml", Weight: 1, Priority: 5, Guarantee: resources.MustParse("cpus:1"), Limit: resources.MustParse("cpus:1")}}
		}, ""},
		{"role name", func(c *Config) { c.Master.Roles = []Role{{Name: "eng/", Weight: 1}} }, `master.role["eng/"]: role "eng/": empty path component`},
		{"star quota", func(c *Config) { c.Master.Roles = []Role{{Name: "*", Weight: 1, Limit: resources.MustParse("cpus:1")}} },
			`master.role["*"]: quota: the default role "*" cannot have a quota`},
		{"guarantee over limit", func(c *Config) {
			c.Master.Roles = []Role{{Name: "a", Weight: 1, Guarantee: resources.MustParse("cpus:2;mem:10"), Limit: resources.MustParse("cpus:1.5")}}
		}, `master.role["a"]: quota.guarantee: the guarantee exceeds the limit on cpus 2 > 1.5`},
		{"non-scalar quota", func(c *Config) {
			c.Master.Roles = []Role{{Name: "a", Weight: 1, Limit: resources.MustParse("ports:[1-2]")}}
		},
			`master.role["a"]: quota.limit: quota applies to scalar resources only, not ports:[1-2]`},
		{"plugin sha256", func(c *Config) { c.Plugins = []Plugin{{Name: "x", SHA256: "00"}} }, `plugin["x"].sha256: sha256 "00" is 2 characters`},
		{"plugin sha256 ok", func(c *Config) { c.Plugins = []Plugin{{Name: "x", SHA256: strings.Repeat("Ab", 32)}} }, ""},
		{"revoke after", func(c *Config) { c.Master.RevokeAfter = -time.Second }, `master.revoke_after: must not be negative`},
		{"revoke grace", func(c *Config) { c.Master.RevokeGrace = 0 }, `master.revoke_grace: must be greater than 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("examples/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d example files, want master.hcl, agent.hcl and dev.hcl", len(files))
	}
	for _, f := range files {
		cfg, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", f, err)
		}
		if filepath.Base(f) != "master.hcl" {
			continue
		}
		// The master example is where operators learn the role settings:
		// keep a hierarchical role with priority and quota in it.
		var found bool
		for _, r := range cfg.Master.Roles {
			found = found || strings.Contains(r.Name, "/") && r.Priority != 0 && !r.Guarantee.IsEmpty() && !r.Limit.IsEmpty()
		}
		if !found {
			t.Errorf("%s: no hierarchical role with priority, guarantee and limit in %+v", f, cfg.Master.Roles)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	cfg := Default()
	cfg.LogLevel = "warn"
	cfg.LogJSON = true
	l := newLogger(cfg, "master", &buf)
	l.Info("hidden")
	l.Warn("shown", "k", "v")
	var entry map[string]any
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("output %q is not one JSON line: %v", buf.String(), err)
	}
	if entry["@message"] != "shown" || entry["@module"] != "master" || entry["k"] != "v" {
		t.Fatalf("entry = %v", entry)
	}

	buf.Reset()
	cfg = Default()
	l = newLogger(cfg, "agent", &buf)
	l.Debug("hidden")
	l.Info("hello")
	if out := buf.String(); !strings.Contains(out, "[INFO]  agent: hello") || strings.Contains(out, "hidden") {
		t.Fatalf("text output = %q", out)
	}
}

// The diagnostic format is what operators see; keep it stable.
func TestFormatDiagnostic(t *testing.T) {
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: "S", Detail: "D",
		Subject: &hcl.Range{Filename: "f.hcl", Start: hcl.Pos{Line: 3, Column: 3}, End: hcl.Pos{Line: 3, Column: 12}},
	}
	if got, want := FormatDiagnostic(d), "f.hcl:3,3-12: S; D"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
