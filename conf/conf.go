// Package conf is the HCL configuration of corral: one schema covers
// `corral master`, `corral agent` and `corral dev`. A file sets only what it
// needs; everything else keeps the defaults of Default. Every error names
// the file, line and problem.
package conf

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/corral-project/corral/sdk/acl"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/tlsconfig"
)

// Config is a whole configuration file.
type Config struct {
	LogLevel  string // trace|debug|info|warn|error
	LogJSON   bool
	PluginDir string
	Master    *Master // never nil after Default, Parse or Load
	Agent     *Agent  // never nil after Default, Parse or Load
	Plugins   []Plugin
	// TLS is the `tls` block: one certificate per process, used on every
	// port it serves and every connection it makes (mutual TLS between
	// masters, agents, schedulers and the CLI). Absent: plain text.
	TLS tlsconfig.Config
	// Consul, when set (a `consul { ... }` block), makes masters elect a
	// leader and keep the registry through Consul, and registers masters
	// and agents as Consul services. nil: standalone.
	Consul *Consul
	// ACL is the `acl { ... }` block: who may do what (sdk/acl). nil (no
	// block): everything is allowed, as in `corral dev`.
	ACL *acl.ACLs
	// CredentialsFile (credentials_file) names Mesos-style credentials
	// (principals and secrets) for callers without a client certificate;
	// Credentials is its content. Empty: only certificates identify.
	CredentialsFile string
	Credentials     *acl.Credentials
}

// Consul is the `consul { ... }` block.
type Consul struct {
	Address string // HTTP API of the local Consul agent, host:port; default 127.0.0.1:8500
	Scheme  string // http (default) or https
	// Prefix is the KV prefix and service-name stem of this cluster;
	// default "corral".
	Prefix string
	Token  string // ACL token
	// TLS of the Consul client.
	CAFile, CertFile, KeyFile, TLSServerName string
	InsecureSkipVerify                       bool
	// CheckTTL is the TTL of each master's own health check, which
	// decides how soon a dead leader loses its lock (default 1s).
	CheckTTL time.Duration
	// LockDelay is the session's lock-delay (default 100ms).
	LockDelay time.Duration
}

// Master configures `corral master`.
type Master struct {
	// Address serves gRPC (scheduler and agent APIs) and HTTP (operator API)
	// on one port.
	Address            string
	WorkDir            string
	AllocationInterval time.Duration
	Allocator          string // allocator plugin name
	AllocatorTimeout   time.Duration
	// AllocatorInitTimeout is the deadline of an allocator's Init (the
	// whole cluster in one snapshot).
	AllocatorInitTimeout time.Duration
	// OfferTimeout rescinds offers not answered in time; 0 means never.
	OfferTimeout      time.Duration
	HeartbeatInterval time.Duration
	// AgentReregisterTimeout is how long a disconnected agent has before its
	// tasks become LOST.
	AgentReregisterTimeout time.Duration
	MaxMessageBytes        int
	Roles                  []Role
	// RevokeAfter lets the allocator revoke tasks that have run longer than
	// this while other roles starve (0: never; must not be negative).
	// RevokeGrace is how long a framework has between the inverse offer and
	// the kill (default 30s; must be positive).
	RevokeAfter time.Duration
	RevokeGrace time.Duration
	// FrameworkCallRate limits each framework's scheduler calls per second
	// (0: no limit) with bursts of FrameworkCallBurst (0: twice the rate).
	FrameworkCallRate  float64
	FrameworkCallBurst int
	// MaxSubscriptionsPerPrincipal caps the framework subscriptions one
	// authenticated principal holds at once, on the gRPC and the Mesos
	// scheduler APIs together (0: no cap; default 100).
	MaxSubscriptionsPerPrincipal int
}

// Role is a `role "name" { weight = ... priority = ... quota { ... } }`
// block. Names are /-separated paths ("eng/ml"), checked with
// resources.ValidateRole.
type Role struct {
	Name   string
	Weight float64 // > 0; default 1
	// Priority orders roles into tiers for policies that use it (higher is
	// offered first); default 0.
	Priority int64
	// Guarantee and Limit come from the quota block; empty means none.
	// Both hold scalars only, the guarantee never exceeds the limit on a
	// scalar the limit names, and "*" has neither.
	Guarantee resources.Resources
	Limit     resources.Resources
}

// Agent configures `corral agent`.
type Agent struct {
	// Master is where the masters are: host:port, host:port,host:port
	// (any master redirects to the leader) or consul://host:port/prefix.
	Master   string
	Address  string // agent HTTP API (sandbox files), host:port
	WorkDir  string
	Hostname string // "" means os.Hostname
	// Resources overrides detected resources by name, in the syntax of
	// resources.Parse ("cpus:4;mem:2048;ports:[31000-32000]"). "" keeps
	// everything detected.
	Resources             string
	Attributes            map[string]string
	Isolator              string // isolator plugin name
	Executor              string // executor plugin name
	ExecutorShutdownGrace time.Duration
	// StatusUpdateRetry is the first retry interval of an unacknowledged
	// status update; it doubles up to 10 minutes.
	StatusUpdateRetry time.Duration
	// ExecutorIdleTimeout shuts down a custom executor that has had no
	// task for this long; its resources are offered again.
	ExecutorIdleTimeout time.Duration
	// ExecutorReregisterTimeout is how long a restarted agent waits for
	// its live custom executors to subscribe again before killing them
	// (Mesos --executor_reregistration_timeout).
	ExecutorReregisterTimeout time.Duration
	// Isolators are more isolator plugins, beside Isolator (the default),
	// that tasks may ask for by their container type.
	Isolators []string
	// OnShutdown is what a stopping agent does with its tasks: "keep"
	// leaves them running for the next run to reattach to, "kill" kills
	// them. "" means the role's default: keep for `corral agent`, kill for
	// `corral dev` (a throwaway cluster).
	OnShutdown string
	// Sandbox garbage collection, as Mesos' --gc_delay,
	// --disk_watch_interval and --gc_disk_headroom: a finished task's
	// sandbox is removed GCDelay after it ended, sooner as the disk fills.
	GCDelay           time.Duration
	DiskWatchInterval time.Duration
	GCDiskHeadroom    float64
	// AllowRootTasks says whether tasks may run as root (uid 0); nil
	// means the default: allowed without an acl block (and in `corral
	// dev`), refused with one.
	AllowRootTasks *bool
	// CredentialFile names the agent's own principal and secret (Mesos's
	// agent --credential JSON, {"principal": ..., "secret": ...}), sent to
	// the master as basic credentials; Credential is its content.
	CredentialFile string
	Credential     *acl.Credential
}

// Plugin is a `plugin "name" { ... }` block.
type Plugin struct {
	Name string
	Path string // "" means resolve in plugin_dir
	Args []string
	// SHA256 pins the binary: the host refuses to start a file whose
	// sha256 differs. 64 lowercase hex digits, or "" for no check.
	SHA256 string
	// Config is the body of the config {} block, decoded later against the
	// plugin's own schema; nil if the block is absent.
	Config    hcl.Body
	DeclRange hcl.Range
}

// Default returns a configuration with every setting at its default.
func Default() *Config {
	return &Config{
		LogLevel:  "info",
		PluginDir: "./bin/plugins",
		Master: &Master{
			Address:                "127.0.0.1:5050",
			WorkDir:                "/tmp/corral/master",
			AllocationInterval:     time.Second,
			Allocator:              "drf",
			AllocatorTimeout:       5 * time.Second,
			AllocatorInitTimeout:   time.Minute,
			OfferTimeout:           time.Minute,
			HeartbeatInterval:      15 * time.Second,
			AgentReregisterTimeout: 75 * time.Second,
			MaxMessageBytes:        1 << 20,
			RevokeGrace:            30 * time.Second,
			// Generous for real frameworks (one subscription each, a few
			// standbys), small enough that one principal cannot fill the
			// master's memory with streams.
			MaxSubscriptionsPerPrincipal: 100,
		},
		Agent: &Agent{
			Master:                    "127.0.0.1:5050",
			Address:                   "127.0.0.1:5051",
			WorkDir:                   "/tmp/corral/agent",
			Attributes:                map[string]string{},
			Isolator:                  "process",
			Executor:                  "command",
			ExecutorShutdownGrace:     5 * time.Second,
			StatusUpdateRetry:         10 * time.Second,
			ExecutorIdleTimeout:       60 * time.Second,
			ExecutorReregisterTimeout: 15 * time.Second,
			GCDelay:                   7 * 24 * time.Hour,
			DiskWatchInterval:         time.Minute,
			GCDiskHeadroom:            0.1,
		},
	}
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, src)
}

// Parse parses src, naming it filename in errors, on top of Default. Files
// ending in .json are read as HCL's JSON syntax.
func Parse(filename string, src []byte) (*Config, error) {
	p := hclparse.NewParser()
	var (
		f     *hcl.File
		diags hcl.Diagnostics
	)
	if strings.HasSuffix(filename, ".json") {
		f, diags = p.ParseJSON(src, filename)
	} else {
		f, diags = p.ParseHCL(src, filename)
	}
	if diags.HasErrors() {
		return nil, DiagnosticsError(diags)
	}
	cfg := Default()
	if diags := decodeRoot(f.Body, cfg); diags.HasErrors() {
		return nil, DiagnosticsError(diags)
	}
	return cfg, nil
}

// Plugin returns the plugin block named name, or nil.
func (c *Config) Plugin(name string) *Plugin {
	for i := range c.Plugins {
		if c.Plugins[i].Name == name {
			return &c.Plugins[i]
		}
	}
	return nil
}
