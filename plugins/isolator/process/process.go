// Package process is the "plain process" isolator, in the spirit of Mesos'
// posix isolators: a container is the POSIX session its first process leads.
// It applies resource limits (rlimits) at launch through the LaunchSpec,
// measures usage by walking /proc for the session's processes, and destroys
// a container by killing the whole session. It enforces nothing at run time
// and cannot contain a process that calls setsid(2) itself; use the cgroups
// isolator for that.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/isolator/process/posix"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-hclog"
)

// Name and Version identify the plugin.
const (
	Name    = "process"
	Version = "0.1.0"
)

// cleanupTimeout bounds how long Cleanup waits for a session to die when
// the caller's context has no deadline. SIGKILL cannot be caught, so only a
// process stuck in uninterruptible sleep (D state) takes longer.
const cleanupTimeout = 30 * time.Second

// Config is the plugin's config body.
type Config struct {
	// Rlimits maps an rlimit name to "soft:hard", "N" or "unlimited".
	Rlimits map[string]string `json:"rlimits"`
}

// Isolator implements isolator.Isolator for plain processes.
type Isolator struct {
	logger hclog.Logger

	mu      sync.Mutex
	rlimits []isolator.Rlimit
	// leaders maps a container ID to the pid that leads its session (the
	// session ID of every process in the container).
	leaders map[string]int
}

var _ isolator.Isolator = (*Isolator)(nil)

// New returns an isolator with an empty config: tasks inherit the agent's
// rlimits. There is deliberately no default nofile limit: the agent's own
// limits are the operator's choice, and a default here would silently lower
// (or fail to raise above the hard limit of) what they configured.
func New(logger hclog.Logger) *Isolator {
	return &Isolator{logger: logger, leaders: make(map[string]int)}
}

// PluginInfo implements base.Plugin.
func (i *Isolator) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{
		Kind:        base.KindIsolator,
		Name:        Name,
		Version:     Version,
		APIVersions: isolator.APIVersions,
	}, nil
}

// ConfigSchema implements base.Plugin.
func (i *Isolator) ConfigSchema(context.Context) (*base.Schema, error) {
	return &base.Schema{Attributes: []base.Attribute{{
		Name:        "rlimits",
		Type:        "map(string)",
		DefaultJSON: "{}",
		Description: fmt.Sprintf("Resource limits applied to every task before exec, by name (%s): "+
			`"soft:hard", "N" for both, or "unlimited". Unset limits are inherited from the agent.`,
			strings.Join(posix.RlimitNames(), ", ")),
	}}}, nil
}

// SetConfig implements base.Plugin.
func (i *Isolator) SetConfig(_ context.Context, configJSON []byte, apiVersion string) error {
	if !slices.Contains(isolator.APIVersions, apiVersion) {
		return fmt.Errorf("process isolator: unsupported API version %q (supported: %s)",
			apiVersion, strings.Join(isolator.APIVersions, ", "))
	}
	rlimits, err := ParseConfig(configJSON)
	if err != nil {
		return fmt.Errorf("process isolator: %w", err)
	}
	i.mu.Lock()
	i.rlimits = rlimits
	i.mu.Unlock()
	i.logger.Info("configured", "rlimits", len(rlimits))
	return nil
}

// ParseConfig decodes and validates a config body, returning its rlimits
// sorted by name. Every invalid entry is reported, by name.
func ParseConfig(configJSON []byte) ([]isolator.Rlimit, error) {
	var cfg Config
	if len(configJSON) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(configJSON)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("decode config: %w", err)
		}
	}
	var (
		out  []isolator.Rlimit
		errs []error
	)
	for _, name := range slices.Sorted(maps.Keys(cfg.Rlimits)) {
		value := cfg.Rlimits[name]
		if _, err := posix.RlimitResource(name); err != nil {
			errs = append(errs, fmt.Errorf("rlimits: %w", err))
			continue
		}
		soft, hard, err := posix.ParseRlimitValue(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("rlimits: %s = %q: %w", name, value, err))
			continue
		}
		out = append(out, isolator.Rlimit{Name: name, Soft: soft, Hard: hard})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Recover rebuilds the container map from the agent's checkpoint. A
// container is kept while any process of its session is alive (its leader
// may have exited and left children behind, which Cleanup must still kill).
// Orphans are always empty: a session carries no mark saying which agent or
// container created it, so this isolator cannot tell a forgotten container
// from any other process on the machine, and must not guess and kill it.
func (i *Isolator) Recover(_ context.Context, _ string, known []isolator.ContainerState) ([]string, error) {
	sessions, err := posix.BySession()
	if err != nil {
		return nil, fmt.Errorf("process isolator: recover: %w", err)
	}
	leaders := make(map[string]int, len(known))
	for _, c := range known {
		if c.Pid <= 1 || len(sessions[c.Pid]) == 0 {
			i.logger.Info("recover: container has no process left", "container_id", c.ContainerID, "pid", c.Pid)
			continue
		}
		leaders[c.ContainerID] = c.Pid
	}
	i.mu.Lock()
	i.leaders = leaders
	i.mu.Unlock()
	i.logger.Info("recovered", "known", len(known), "alive", len(leaders))
	return nil, nil
}

// Prepare returns the launch spec: a new session (which is what makes the
// container identifiable) and the configured rlimits. Nothing is created,
// so calling it again returns the same spec.
func (i *Isolator) Prepare(_ context.Context, req isolator.PrepareRequest) (*isolator.LaunchSpec, error) {
	if req.ContainerID == "" {
		return nil, errors.New("process isolator: prepare: empty container ID")
	}
	if req.Rootfs != "" {
		return nil, fmt.Errorf("process isolator: prepare %q: rootfs %q: %w", req.ContainerID, req.Rootfs, isolator.ErrRootfsUnsupported)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return &isolator.LaunchSpec{
		NewSession:  true,
		Rlimits:     slices.Clone(i.rlimits),
		Environment: map[string]string{},
	}, nil
}

// Isolate records that pid leads the container's session. pid must be a
// live session leader: a process that is not would share its session with
// whoever started it, and Cleanup would kill them too.
func (i *Isolator) Isolate(_ context.Context, containerID string, pid int) error {
	if containerID == "" {
		return errors.New("process isolator: isolate: empty container ID")
	}
	st, err := posix.ReadStat(pid)
	if err == nil && st.Gone() {
		err = fmt.Errorf("pid %d: %w", pid, posix.ErrNoProcess)
	}
	if err != nil {
		return fmt.Errorf("process isolator: isolate %q: %w", containerID, err)
	}
	if st.Session != pid {
		return fmt.Errorf("process isolator: isolate %q: pid %d is not a session leader (its session is %d); launch it with a new session",
			containerID, pid, st.Session)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if old, ok := i.leaders[containerID]; ok && old != pid && posix.Alive(old) {
		return fmt.Errorf("process isolator: isolate %q: already isolated with live pid %d, not %d", containerID, old, pid)
	}
	i.leaders[containerID] = pid
	i.logger.Debug("isolated", "container_id", containerID, "pid", pid)
	return nil
}

// Update accepts any resources: plain processes have nothing to resize, and
// rlimits are fixed when the task is launched.
func (i *Isolator) Update(context.Context, string, resources.Resources) error { return nil }

// Usage sums CPU time and RSS over each container's session, from one walk
// of /proc for the whole batch.
func (i *Isolator) Usage(_ context.Context, containerIDs []string) ([]isolator.Usage, error) {
	sessions, err := posix.BySession()
	if err != nil {
		return nil, fmt.Errorf("process isolator: usage: %w", err)
	}
	now := time.Now()
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]isolator.Usage, 0, len(containerIDs))
	for _, id := range containerIDs {
		u := isolator.Usage{ContainerID: id, Timestamp: now}
		if pid, ok := i.leaders[id]; ok && len(sessions[pid]) > 0 {
			sum := posix.Sum(sessions[pid])
			u.Found = true
			u.CPUUserSeconds = sum.CPUUserSeconds
			u.CPUSystemSeconds = sum.CPUSystemSeconds
			u.MemRSSBytes = sum.MemRSSBytes
			u.Processes = sum.Processes
		}
		out = append(out, u)
	}
	return out, nil
}

// Watch returns a channel that closes when ctx ends. The process isolator
// enforces no limit it could observe being hit: rlimits make the offending
// system call fail (or deliver SIGXCPU/SIGXFSZ) inside the task, which the
// executor reports as the task's exit.
func (i *Isolator) Watch(ctx context.Context) (<-chan isolator.Limitation, error) {
	ch := make(chan isolator.Limitation)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}

// Cleanup kills every process of the container's session, waits until they
// are gone, and forgets the container. Unknown containers are already clean.
func (i *Isolator) Cleanup(ctx context.Context, containerID string) error {
	i.mu.Lock()
	pid, ok := i.leaders[containerID]
	i.mu.Unlock()
	if !ok {
		return nil
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
	}
	if err := posix.KillSession(ctx, pid); err != nil {
		return fmt.Errorf("process isolator: cleanup %q: %w", containerID, err)
	}
	i.mu.Lock()
	if i.leaders[containerID] == pid {
		delete(i.leaders, containerID)
	}
	i.mu.Unlock()
	i.logger.Info("cleaned up", "container_id", containerID, "pid", pid)
	return nil
}
