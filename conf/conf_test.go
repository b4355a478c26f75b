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
			Address:                "0.0.0.0:6050",
			WorkDir:                "/var/lib/corral/master",
			AllocationInterval:     500 * time.Millisecond,
			Allocator:              "priority",
			AllocatorTimeout:       2 * time.Second,
			OfferTimeout:           0,
			HeartbeatInterval:      10 * time.Second,
			AgentReregisterTimeout: 2 * time.Minute,
			MaxMessageBytes:        4194304,
			Roles:                  []Role{{Name: "analytics", Weight: 2}, {Name: "batch", Weight: 0.5}},
		},
		Agent: &Agent{
			Master:                "10.0.0.1:6050",
			Address:               "0.0.0.0:6051",
			WorkDir:               "/var/lib/corral/agent",
			Hostname:              "node-1",
			Resources:             "cpus:4;mem:2048;ports:[31000-32000]",
			Attributes:            map[string]string{"rack": "r1", "zone": "z2"},
			Isolator:              "cgroups",
			Executor:              "custom",
			ExecutorShutdownGrace: 3 * time.Second,
			StatusUpdateRetry:     time.Second,
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
	if p.Name != "priority" || p.Path != "/opt/corral/priority" || !reflect.DeepEqual(p.Args, []string{"-fast"}) {
		t.Errorf("plugin[0] = %+v", p)
	}
	if p.DeclRange.Start.Line != 32 {
		t.Errorf("plugin[0] declared at line %d, want 32", p.DeclRange.Start.Line)
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

func TestParseJSON(t *testing.T) {
	src := `{"log_level": "warn", "master": {"allocator": "quota", "role": {"a": {"weight": 3}}}}`
	cfg, err := Parse("corral.json", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "warn" || cfg.Master.Allocator != "quota" || !reflect.DeepEqual(cfg.Master.Roles, []Role{{Name: "a", Weight: 3}}) {
		t.Fatalf("got %+v / %+v", cfg, cfg.Master)
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
