package conf

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/corral-project/corral/sdk/resources"
)

var logLevels = []string{"trace", "debug", "info", "warn", "error"}

func checkLogLevel(s string) error {
	for _, l := range logLevels {
		if s == l {
			return nil
		}
	}
	return fmt.Errorf("unknown log level %q; use one of %v", s, logLevels)
}

// checkMasterSpec accepts what sdk/discovery.Parse accepts: host:port, a
// comma-separated list of them, or consul://host:port/prefix.
func checkMasterSpec(s string) error {
	if rest, ok := strings.CutPrefix(s, "consul://"); ok {
		host, _, _ := strings.Cut(rest, "/")
		if err := checkHostPort(host); err != nil {
			return fmt.Errorf("consul address: %w (want consul://host:port/prefix)", err)
		}
		return nil
	}
	for _, a := range strings.Split(s, ",") {
		if err := checkHostPort(strings.TrimSpace(a)); err != nil {
			return err
		}
	}
	return nil
}

func checkScheme(s string) error {
	if s != "http" && s != "https" {
		return fmt.Errorf("%q: want http or https", s)
	}
	return nil
}

func checkConsulPrefix(s string) error {
	if strings.Trim(s, "/") == "" {
		return errors.New("the prefix must not be empty")
	}
	if strings.ContainsAny(s, " \t\n") {
		return fmt.Errorf("%q: the prefix must not contain spaces", s)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host; use for example 127.0.0.1%s or 0.0.0.0%s", s, s, s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	return nil
}

func checkNotEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func checkPositive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be greater than 0, got %s", d)
	}
	return nil
}

// checkHeadroom accepts a fraction of the disk to keep free, in [0, 1).
func checkHeadroom(f float64) error {
	if !(f >= 0 && f < 1) {
		return fmt.Errorf("must be at least 0 and less than 1, got %v", f)
	}
	return nil
}

// checkOnShutdown accepts the agent's on_shutdown values ("" is the
// role's default).
func checkOnShutdown(s string) error {
	switch s {
	case "", "keep", "kill":
		return nil
	}
	return fmt.Errorf(`must be "keep" or "kill", got %q`, s)
}

func checkNotNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must not be negative, got %s", d)
	}
	return nil
}

func checkPositiveInt(n int) error {
	if n <= 0 {
		return fmt.Errorf("must be greater than 0, got %d", n)
	}
	return nil
}

func checkWeight(w float64) error {
	if !(w > 0) {
		return fmt.Errorf("a role weight must be greater than 0, got %v", w)
	}
	return nil
}

func checkResources(s string) error {
	if s == "" {
		return nil
	}
	if _, err := resources.Parse(s); err != nil {
		return fmt.Errorf("resources %q: %w", s, err)
	}
	return nil
}

// Plugin names become file names in plugin_dir, so they are kept to a safe
// alphabet.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkPluginName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("plugin name %q must start with a letter or digit and contain only letters, digits, '.', '_' and '-'", s)
	}
	return nil
}

// CheckSHA256 accepts a sha256 checksum written as 64 hex digits (either
// case), the form sha256sum and `corral allocator list` print.
func CheckSHA256(s string) error {
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "sha256:"); ok {
		// A common paste from other tools; say what to drop.
		return fmt.Errorf("sha256 %q: write the 64 hex digits without the \"sha256:\" prefix (%q)", s, rest)
	}
	if len(s) != sha256.Size*2 {
		return fmt.Errorf("sha256 %q is %d characters; a sha256 is 64 hex digits, as printed by sha256sum or `corral allocator list`", s, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("sha256 %q is not hexadecimal: use only the digits 0-9 and a-f", s)
	}
	return nil
}

// checkPluginNames checks every name of a list of plugins.
func checkPluginNames(names []string) error {
	var errs []error
	for _, s := range names {
		errs = append(errs, checkPluginName(s))
	}
	return errors.Join(errs...)
}

// checkRoleName applies the resource model's rule: roles are /-separated
// paths ("eng/ml"), or "*".
func checkRoleName(s string) error { return resources.ValidateRole(s) }

// ErrStarQuota is the error for a quota on the default role.
var ErrStarQuota = errors.New(`the default role "*" cannot have a quota; set quota on named roles`)

// ParseQuota reads a quota's resource string ("cpus:8;mem:16384", the
// syntax of resources.Parse; "" is none). Quota counts scalars only (as in
// Mesos): ports or sets cannot be guaranteed or capped per role. The CLI
// checks `corral role set` flags with it, so both speak the same rule.
func ParseQuota(s string) (resources.Resources, error) {
	r, err := resources.Parse(s)
	if err != nil {
		return resources.Resources{}, fmt.Errorf("resources %q: %w", s, err)
	}
	if other := r.Subtract(r.Scalars()); !other.IsEmpty() {
		return resources.Resources{}, fmt.Errorf("resources %q: quota applies to scalar resources only (cpus, mem, disk, gpus, ...), not %s", s, other)
	}
	return r, nil
}

// CheckGuaranteeWithinLimit rejects a guarantee above the limit on any
// scalar the limit names: the role could never be given what it is
// promised. Scalars the limit does not name are unlimited.
func CheckGuaranteeWithinLimit(guarantee, limit resources.Resources) error {
	var over []string
	limit.EachScalar(func(name string, l float64) {
		if g := guarantee.Scalar(name); g > l {
			over = append(over, fmt.Sprintf("%s %s > %s", name, strconv.FormatFloat(g, 'f', -1, 64), strconv.FormatFloat(l, 'f', -1, 64)))
		}
	})
	if len(over) > 0 {
		return fmt.Errorf("the guarantee exceeds the limit on %s; a role cannot be guaranteed more than it may use", strings.Join(over, ", "))
	}
	return nil
}

func checkRole(r Role) error {
	var errs []error
	if r.Name == "*" && (!r.Guarantee.IsEmpty() || !r.Limit.IsEmpty()) {
		errs = append(errs, fmt.Errorf("quota: %w", ErrStarQuota))
	}
	for _, q := range []struct {
		name string
		r    resources.Resources
	}{{"guarantee", r.Guarantee}, {"limit", r.Limit}} {
		if other := q.r.Subtract(q.r.Scalars()); !other.IsEmpty() {
			errs = append(errs, fmt.Errorf("quota.%s: quota applies to scalar resources only, not %s", q.name, other))
		}
	}
	if err := CheckGuaranteeWithinLimit(r.Guarantee, r.Limit); err != nil {
		errs = append(errs, fmt.Errorf("quota.guarantee: %w", err))
	}
	return errors.Join(errs...)
}

// Validate checks a Config built or changed in code (for example by command
// line flags after Parse). Parse already runs the same checks with line
// numbers, so a parsed, unchanged Config always validates.
func (c *Config) Validate() error {
	var errs []error
	add := func(path string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	add("log_level", checkLogLevel(c.LogLevel))
	if c.Master == nil || c.Agent == nil {
		return errors.New("config: master and agent sections must not be nil (start from conf.Default)")
	}
	m, a := c.Master, c.Agent
	add("master.address", checkHostPort(m.Address))
	add("master.work_dir", checkNotEmpty(m.WorkDir))
	add("master.allocation_interval", checkPositive(m.AllocationInterval))
	add("master.allocator", checkPluginName(m.Allocator))
	add("master.allocator_timeout", checkPositive(m.AllocatorTimeout))
	add("master.allocator_init_timeout", checkPositive(m.AllocatorInitTimeout))
	add("master.offer_timeout", checkNotNegative(m.OfferTimeout))
	add("master.heartbeat_interval", checkPositive(m.HeartbeatInterval))
	add("master.agent_reregister_timeout", checkPositive(m.AgentReregisterTimeout))
	add("master.max_message_bytes", checkPositiveInt(m.MaxMessageBytes))
	add("master.revoke_after", checkNotNegative(m.RevokeAfter))
	add("master.revoke_grace", checkPositive(m.RevokeGrace))
	add("master.max_subscriptions_per_principal", checkNotNegativeInt(m.MaxSubscriptionsPerPrincipal))
	roles := map[string]bool{}
	for _, r := range m.Roles {
		path := fmt.Sprintf("master.role[%q]", r.Name)
		add(path, checkRoleName(r.Name))
		add(path+".weight", checkWeight(r.Weight))
		add(path, checkRole(r))
		if roles[r.Name] {
			add(path, errors.New("duplicate role"))
		}
		roles[r.Name] = true
	}
	add("agent.master", checkHostPort(a.Master))
	add("agent.address", checkHostPort(a.Address))
	add("agent.work_dir", checkNotEmpty(a.WorkDir))
	add("agent.resources", checkResources(a.Resources))
	add("agent.isolator", checkPluginName(a.Isolator))
	add("agent.isolators", checkPluginNames(a.Isolators))
	add("agent.executor", checkPluginName(a.Executor))
	add("agent.executor_shutdown_grace", checkNotNegative(a.ExecutorShutdownGrace))
	add("agent.status_update_retry", checkPositive(a.StatusUpdateRetry))
	add("agent.on_shutdown", checkOnShutdown(a.OnShutdown))
	add("agent.gc_delay", checkPositive(a.GCDelay))
	add("agent.disk_watch_interval", checkPositive(a.DiskWatchInterval))
	add("agent.gc_disk_headroom", checkHeadroom(a.GCDiskHeadroom))
	plugins := map[string]bool{}
	for _, p := range c.Plugins {
		path := fmt.Sprintf("plugin[%q]", p.Name)
		add(path, checkPluginName(p.Name))
		if p.SHA256 != "" {
			add(path+".sha256", CheckSHA256(p.SHA256))
		}
		if plugins[p.Name] {
			add(path, errors.New("duplicate plugin block"))
		}
		plugins[p.Name] = true
	}
	return errors.Join(errs...)
}
