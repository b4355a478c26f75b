package agent

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/corral-project/corral/core/agent/checkpoint"
	"github.com/corral-project/corral/sdk/acl"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/tlsconfig"
)

// Defaults for Config fields left empty.
const (
	DefaultMaster                = "127.0.0.1:5050"
	DefaultAddress               = "127.0.0.1:5051"
	DefaultIsolator              = "process"
	DefaultExecutor              = "command"
	DefaultExecutorShutdownGrace = 3 * time.Second
	DefaultStatusUpdateRetry     = 10 * time.Second
)

// What a stopping agent does with its tasks (Config.OnShutdown).
const (
	// ShutdownKeep leaves tasks running: a restarted agent reattaches to
	// them from its checkpoint (the default).
	ShutdownKeep = "keep"
	// ShutdownKill kills every task (SIGTERM, grace, SIGKILL) on the way out.
	ShutdownKill = "kill"
)

// How a starting agent treats what a previous run left (Config.Recover),
// after Mesos' --recover.
const (
	// RecoverReconnect reattaches to the checkpointed tasks; an unusable
	// checkpoint stops start-up.
	RecoverReconnect = "reconnect"
	// RecoverCleanup kills what the checkpoint names, destroys old
	// containers, moves the checkpoint aside and starts under a new ID.
	RecoverCleanup = "cleanup"
)

// IsolatorsAttribute is the agent attribute listing the isolators it has
// loaded (comma-separated, sorted), so that schedulers can place tasks that
// ask for a container type on agents that have it.
const IsolatorsAttribute = "isolators"

// Config is the agent's configuration.
type Config struct {
	Master   string // host:port of the master's AgentGateway
	Address  string // host:port the agent's HTTP API listens on; port 0 picks one
	WorkDir  string
	Hostname string
	// Resources override detected resources by name (a whole value each).
	Resources  resources.Resources
	Attributes map[string]string
	// Plugin names, resolved through the plugin catalog. Isolator is the
	// default isolator; Isolators are more that a task may ask for by its
	// container type. All are advertised in the "isolators" attribute.
	Isolator, Executor string
	Isolators          []string
	// ExecutorShutdownGrace is the SIGTERM-to-SIGKILL grace when neither the
	// task nor the kill request names one, and on agent shutdown.
	ExecutorShutdownGrace time.Duration
	// StatusUpdateRetry is the first retry interval of an unacknowledged
	// status update; it doubles up to 10 minutes.
	StatusUpdateRetry time.Duration
	// ExecutorIdleTimeout shuts down a custom executor that has run no
	// task for this long (default 60 s).
	ExecutorIdleTimeout time.Duration
	// ExecutorReregisterTimeout is how long a restarted agent waits for a
	// live custom executor to subscribe again before killing it (default
	// 15 s).
	ExecutorReregisterTimeout time.Duration
	// MaxConcurrentLaunches bounds how many tasks start their executor at
	// the same time (default: 4 per CPU). Executor starts are CPU-bound;
	// beyond a few per CPU they only slow each other down.
	MaxConcurrentLaunches int
	// TLS secures the agent's HTTP API and its connection to the master
	// (mutual TLS when both sides verify); the zero value is plain text.
	TLS tlsconfig.Config
	// ACLs, when set, guard the sandbox endpoints: the caller's
	// principal needs access_sandboxes on the task's framework principal
	// (see authz.go). nil: open, as before ACLs.
	ACLs *acl.ACLs
	// Credentials verify HTTP basic credentials on the guarded endpoints
	// (the cluster's credentials_file, as the master's), so that a caller
	// without a client certificate can still be a principal. nil: only
	// client certificates identify.
	Credentials *acl.Credentials
	// AllowRootTasks says whether tasks may run as root (uid 0): a task
	// naming a user whose uid is 0, or naming none on an agent that runs
	// as root. nil takes the default, allowed unless ACLs are set (a
	// secured cluster refuses root until the operator says otherwise; see
	// taskuser.go).
	AllowRootTasks *bool
	// Credential is the principal and secret the agent presents to the
	// master as HTTP basic credentials when it registers (the master's
	// credentials_file checks them and register_agents authorizes the
	// principal). nil: none; a client certificate's name is the principal.
	Credential *Credential
	// OnShutdown is ShutdownKeep (default) or ShutdownKill.
	OnShutdown string
	// Recover is RecoverReconnect (default) or RecoverCleanup.
	Recover string
	// Sandbox garbage collection (package gc): GCDelay after a task ended
	// its sandbox goes, sooner as the disk fills; checked every
	// DiskWatchInterval. Zero values take Mesos' defaults (1 week, 1 min,
	// 10% headroom).
	GCDelay           time.Duration
	DiskWatchInterval time.Duration
	GCDiskHeadroom    float64
}

// withDefaults fills empty fields.
func (c Config) withDefaults() (Config, error) {
	if err := c.TLS.Validate(); err != nil {
		return c, fmt.Errorf("agent: %w", err)
	}
	if c.Master == "" {
		c.Master = DefaultMaster
	}
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "corral-agent")
	}
	abs, err := filepath.Abs(c.WorkDir)
	if err != nil {
		return c, fmt.Errorf("work dir %q: %w", c.WorkDir, err)
	}
	c.WorkDir = abs
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("hostname: %w", err)
		}
		c.Hostname = h
	}
	if c.Isolator == "" {
		c.Isolator = DefaultIsolator
	}
	var more []string
	for _, name := range c.Isolators {
		if name != c.Isolator && !slices.Contains(more, name) {
			more = append(more, name)
		}
	}
	c.Isolators = more
	attrs := maps.Clone(c.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if _, set := attrs[IsolatorsAttribute]; !set {
		attrs[IsolatorsAttribute] = strings.Join(slices.Sorted(slices.Values(append([]string{c.Isolator}, more...))), ",")
	}
	c.Attributes = attrs
	if c.Executor == "" {
		c.Executor = DefaultExecutor
	}
	if c.ExecutorShutdownGrace <= 0 {
		c.ExecutorShutdownGrace = DefaultExecutorShutdownGrace
	}
	if c.MaxConcurrentLaunches <= 0 {
		c.MaxConcurrentLaunches = 4 * runtime.NumCPU()
	}
	if c.ExecutorIdleTimeout <= 0 {
		c.ExecutorIdleTimeout = 60 * time.Second
	}
	if c.ExecutorReregisterTimeout <= 0 {
		c.ExecutorReregisterTimeout = 15 * time.Second
	}
	if c.StatusUpdateRetry <= 0 {
		c.StatusUpdateRetry = DefaultStatusUpdateRetry
	}
	switch c.OnShutdown {
	case "":
		c.OnShutdown = ShutdownKeep
	case ShutdownKeep, ShutdownKill:
	default:
		return c, fmt.Errorf("on_shutdown = %q: want %q or %q", c.OnShutdown, ShutdownKeep, ShutdownKill)
	}
	switch c.Recover {
	case "":
		c.Recover = RecoverReconnect
	case RecoverReconnect, RecoverCleanup:
	default:
		return c, fmt.Errorf("recover = %q: want %q or %q", c.Recover, RecoverReconnect, RecoverCleanup)
	}
	return c, nil
}

// Paths under the work dir.
func (c Config) sandboxRoot() string { return filepath.Join(c.WorkDir, "sandboxes") }
func (c Config) pluginDir() string   { return filepath.Join(c.WorkDir, "plugins") }
func (c Config) idFile() string      { return filepath.Join(c.WorkDir, "agent_id") }

// secretFile holds the secret the master bound to the agent ID (0600).
func (c Config) secretFile() string { return filepath.Join(c.WorkDir, "agent_secret") }
func (c Config) checkpointPath() string {
	return filepath.Join(c.WorkDir, checkpoint.FileName)
}
