package master

import (
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/acl"
	"github.com/corral-project/corral/sdk/resources"
)

// Config holds the master's settings. Zero values take the defaults below.
type Config struct {
	// ACLs, when set, authorize every framework, agent and operator
	// action by the caller's principal (see Authorize); nil allows
	// everything, as before ACLs existed.
	ACLs               *acl.ACLs
	AllocationInterval time.Duration // default 1s
	AllocatorTimeout   time.Duration // per Allocate call, default 5s
	// AllocatorInitTimeout is the deadline of Init, which sends the whole
	// cluster (default 60s): a leader that just took back 10k agents with
	// 100k tasks sends them in one snapshot, which on a loaded machine
	// took longer than an Allocate's 5 s, and each retry started over, so
	// the new leader never allocated. A hung plugin is still caught by the
	// watchdog's pings, which Init does not hold up.
	AllocatorInitTimeout   time.Duration
	OfferTimeout           time.Duration // 0: offers never expire
	HeartbeatInterval      time.Duration // scheduler heartbeats, default 15s
	AgentReregisterTimeout time.Duration // default 75s
	// RecoveryAllocationPause bounds how long a master that starts leading
	// holds allocation back while agents the registry knows are still
	// re-registering (default 5s; see recoveringLocked).
	RecoveryAllocationPause time.Duration
	MaxMessageBytes         int // framework messages, default 1 MiB
	// FrameworkCallRate limits each framework's calls per second (after
	// its subscription) with a burst of FrameworkCallBurst (default twice
	// the rate); 0 means no limit, as Mesos without --rate_limits.
	FrameworkCallRate  float64
	FrameworkCallBurst int
	// MaxSubscriptionsPerPrincipal caps the scheduler subscriptions (open
	// streams and hot standbys) one authenticated principal holds at once
	// (see sublimit.go); 0 means no cap.
	MaxSubscriptionsPerPrincipal int
	// DefaultFailoverTimeout is a framework's failover_timeout when it sets
	// none (0): default one week. A negative value means 0 (remove a
	// framework as soon as it disconnects, Mesos's default).
	DefaultFailoverTimeout time.Duration
	// FrameworkFailoverMax caps a framework's failover_timeout (0: no cap).
	FrameworkFailoverMax time.Duration
	// Roles configured by the operator (HCL). Run-time changes made through
	// SetRole are kept in RegistryPath and win over these on restart.
	Roles map[string]RoleConfig
	// RegistryPath is the standalone durable registry (a file under the
	// master's work dir); "" keeps run-time changes in memory only.
	RegistryPath string
	// Registry, when set, is where the registry lives instead of
	// RegistryPath (coord.Consul's KV store in HA mode).
	Registry coord.Store
	// RevokeAfter is passed to the allocator: tasks running longer may be
	// revoked while other roles starve (0: off). RevokeGrace is the time
	// between the inverse offer and the kill; default 30s.
	RevokeAfter time.Duration
	RevokeGrace time.Duration
	// Allocator is the configured allocation policy (HCL); an operator's
	// swap, kept in the registry, wins over it on restart.
	Allocator AllocatorChoice
	// RollbackCycles is K of the hot-swap rules: a fresh allocator that
	// misses its deadline K times in a row, or has more than half of its
	// proposals refused over K cycles, is rolled back; a fresh one stays
	// on probation (the replaced plugin kept running) for K good cycles.
	// Default 3.
	RollbackCycles int
	// MaxCompletedFrameworks bounds the removed frameworks kept for the
	// operator API (Mesos: 50).
	MaxCompletedFrameworks int
	// SampleInterval is how often the master samples capacity, allocation
	// and shares for the operator's charts (default 5s; an hour is kept).
	SampleInterval time.Duration
	// MaxCompletedTasks bounds the completed tasks kept per framework for
	// the operator API.
	MaxCompletedTasks int
}

func (c *Config) setDefaults() {
	if c.AllocationInterval <= 0 {
		c.AllocationInterval = time.Second
	}
	if c.AllocatorTimeout <= 0 {
		c.AllocatorTimeout = 5 * time.Second
	}
	if c.AllocatorInitTimeout <= 0 {
		c.AllocatorInitTimeout = time.Minute
	}
	// Never shorter than a cycle's: Init carries at least as much.
	c.AllocatorInitTimeout = max(c.AllocatorInitTimeout, c.AllocatorTimeout)
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 15 * time.Second
	}
	if c.AgentReregisterTimeout <= 0 {
		c.AgentReregisterTimeout = 75 * time.Second
	}
	if c.RecoveryAllocationPause <= 0 {
		c.RecoveryAllocationPause = 5 * time.Second
	}
	switch {
	case c.DefaultFailoverTimeout == 0:
		c.DefaultFailoverTimeout = 7 * 24 * time.Hour
	case c.DefaultFailoverTimeout < 0:
		c.DefaultFailoverTimeout = 0
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.RevokeGrace <= 0 {
		c.RevokeGrace = 30 * time.Second
	}
	if c.RollbackCycles <= 0 {
		c.RollbackCycles = 3
	}
	if c.MaxCompletedFrameworks <= 0 {
		c.MaxCompletedFrameworks = 50
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = 5 * time.Second
	}
	if c.MaxCompletedTasks <= 0 {
		c.MaxCompletedTasks = 1000
	}
}

// RoleConfig is a role's operator settings. Weight 0 means 1; empty
// Guarantee and Limit mean no quota.
type RoleConfig struct {
	Weight    float64
	Priority  int64
	Guarantee resources.Resources
	Limit     resources.Resources
}

// AllocatorSource yields the allocator plugin currently serving. The
// plugin host's supervisor implements it; a restarted plugin is a new value.
type AllocatorSource interface {
	Current() (allocator.Allocator, PluginInfo, error)
}

// PluginInfo names the active allocator for the operator API.
type PluginInfo struct {
	Name    string
	Version string
	Path    string
	Pid     int // plugin process, 0 when in-process
	// Generation changes every time the plugin process is (re)started, so
	// the master knows to re-Init it.
	Generation uint64
}

// Deps are the master's collaborators.
type Deps struct {
	Logger hclog.Logger
	// Launcher starts allocator plugins: the configured one at start and
	// candidates of a hot swap. Without it, Allocator is the fixed
	// allocator (tests, in-process use) and swaps are refused.
	Launcher  AllocatorLauncher
	Allocator AllocatorSource
	// Now is the clock; nil means time.Now. Injected for tests.
	Now func() time.Time
}
