// Package runc is the runc isolator: every task runs in a container made
// with libcontainer (github.com/opencontainers/runc/libcontainer), in its
// own pid, mount, uts and ipc namespaces (and a network namespace if
// configured; the host's network by default), in the root filesystem the
// task names (ContainerInfo.rootfs: a directory on the agent, or an OCI
// bundle with config.json and its rootfs), with its sandbox bind-mounted
// at /mnt/sandbox and its stdout and stderr still the sandbox's files.
//
// Limits and statistics are the cgroups isolator's (sdk/isolation/cgroups,
// shared, not copied): Prepare creates the container's cgroup with the same
// limits, Usage, Watch (OOM) and Update read and write it the same way.
//
// Who starts the task: the executor's task shim execs the isolator's starter
// (corral-runc-start, named by LaunchSpec.Wrapper) in place of the command.
// The starter reads the OCI spec Prepare wrote, creates the container and
// runs the command as its init; it stays the init's parent, forwards
// signals to it and exits with its status, so the executor and the task's
// shim see the task as before. The starter itself stays outside the
// container's cgroup (its memory is not the task's).
//
// Every kernel object of a container is found from its ID: the cgroup
// <parent>/<id> in every controller and the state directory
// <state_dir>/<id>. Cleanup kills the cgroup (the container's init and with
// it its whole pid namespace, whose mounts go with it), removes the cgroup
// from every controller libcontainer made it in and the state directory.
// Recover returns every cgroup or state directory the agent does not know.
package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/isolator/runc/bundle"
	"github.com/corral-project/corral/sdk/isolation/cgroups"
	"github.com/hashicorp/go-hclog"
	occgroups "github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// Name and Version identify the plugin.
const (
	Name    = "runc"
	Version = "0.1.0"
)

// Defaults of the config attributes.
const (
	// DefaultParent keeps runc containers apart from the cgroups
	// isolator's (/corral/{agent_id}), so that neither takes the other's
	// containers for orphans on an agent that loads both.
	DefaultParent   = "/corral/runc/" + cgroups.AgentIDPlaceholder
	DefaultStateDir = "/run/corral/runc/" + cgroups.AgentIDPlaceholder
	// StarterName is the starter binary, looked for beside the plugin's.
	StarterName = "corral-runc-start"

	NetworkHost = "host"
	NetworkNone = "none"
)

// Config attributes of this plugin; the rest of the config body is the
// cgroups isolator's (parent, cpu_quota, pids_limit, swap_mib; oom_poll is
// accepted and ignored).
type Config struct {
	// StateDir holds one directory per container (its OCI spec and
	// libcontainer's state); AgentIDPlaceholder is the agent's ID.
	StateDir string `json:"state_dir"`
	// Network is "host" (the task shares the agent's network) or "none"
	// (a network namespace of its own with only loopback).
	Network string `json:"network"`
	// Starter is the starter binary; default: corral-runc-start beside
	// the plugin binary.
	Starter string `json:"starter"`
}

var ownKeys = []string{"state_dir", "network", "starter"}

// Isolator implements isolator.Isolator with libcontainer. Usage, Watch
// and Update are the cgroups isolator's.
type Isolator struct {
	*cgroups.Isolator
	logger hclog.Logger

	mu      sync.Mutex
	cfg     Config
	agentID string
}

var _ isolator.Isolator = (*Isolator)(nil)

// Option configures an Isolator.
type Option func(*options)

type options struct {
	parent, stateDir, starter string
}

// WithDefaults changes the defaults of parent, state_dir and starter
// (tests give each run places of their own; "" keeps a default).
func WithDefaults(parent, stateDir, starter string) Option {
	return func(o *options) { o.parent, o.stateDir, o.starter = parent, stateDir, starter }
}

// New returns a runc isolator. If the machine has no usable cgroup
// hierarchy, SetConfig says why.
func New(logger hclog.Logger, opts ...Option) *Isolator {
	o := options{parent: DefaultParent, stateDir: DefaultStateDir}
	for _, opt := range opts {
		opt(&o)
	}
	if o.parent == "" {
		o.parent = DefaultParent
	}
	if o.stateDir == "" {
		o.stateDir = DefaultStateDir
	}
	if o.starter == "" {
		if exe, err := os.Executable(); err == nil {
			o.starter = filepath.Join(filepath.Dir(exe), StarterName)
		}
	}
	return &Isolator{
		Isolator: cgroups.New(logger, cgroups.WithDefaultParent(o.parent)),
		logger:   logger,
		cfg:      Config{StateDir: o.stateDir, Network: NetworkHost, Starter: o.starter},
	}
}

// PluginInfo implements base.Plugin.
func (i *Isolator) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindIsolator, Name: Name, Version: Version, APIVersions: isolator.APIVersions}, nil
}

// ConfigSchema implements base.Plugin: the cgroups isolator's attributes
// (with this plugin's parent) and its own.
func (i *Isolator) ConfigSchema(ctx context.Context) (*base.Schema, error) {
	s, err := i.Isolator.ConfigSchema(ctx)
	if err != nil {
		return nil, err
	}
	for k, a := range s.Attributes {
		if a.Name == "parent" {
			s.Attributes[k].DefaultJSON = `"` + DefaultParent + `"`
		}
	}
	s.Attributes = append(s.Attributes,
		base.Attribute{Name: "state_dir", Type: "string", DefaultJSON: `"` + DefaultStateDir + `"`,
			Description: "Directory of the containers' OCI specs and libcontainer state; " + cgroups.AgentIDPlaceholder + " is the agent's ID."},
		base.Attribute{Name: "network", Type: "string", DefaultJSON: `"` + NetworkHost + `"`,
			Description: `"host": tasks share the agent's network; "none": each task gets a network namespace with only loopback.`},
		base.Attribute{Name: "starter", Type: "string", DefaultJSON: `""`,
			Description: "Path of corral-runc-start; default: beside the plugin binary."},
	)
	return s, nil
}

// SetConfig implements base.Plugin.
func (i *Isolator) SetConfig(ctx context.Context, configJSON []byte, apiVersion string) error {
	fields := map[string]json.RawMessage{}
	if len(configJSON) > 0 {
		if err := json.Unmarshal(configJSON, &fields); err != nil {
			return fmt.Errorf("runc isolator: decode config: %w", err)
		}
	}
	i.mu.Lock()
	cfg := i.cfg
	i.mu.Unlock()
	var errs []error
	for _, k := range ownKeys {
		raw, ok := fields[k]
		if !ok {
			continue
		}
		delete(fields, k)
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			errs = append(errs, fmt.Errorf("%s: want a string: %w", k, err))
			continue
		}
		switch k {
		case "state_dir":
			cfg.StateDir = v
		case "network":
			cfg.Network = v
		case "starter":
			if v != "" { // "" is the schema's default: beside the plugin
				cfg.Starter = v
			}
		}
	}
	if !filepath.IsAbs(cfg.StateDir) || strings.Contains(cfg.StateDir, "..") {
		errs = append(errs, fmt.Errorf("state_dir = %q: want an absolute path such as %q", cfg.StateDir, DefaultStateDir))
	}
	if cfg.Network != NetworkHost && cfg.Network != NetworkNone {
		errs = append(errs, fmt.Errorf("network = %q: want %q or %q", cfg.Network, NetworkHost, NetworkNone))
	}
	if st, err := os.Stat(cfg.Starter); err != nil || st.IsDir() {
		errs = append(errs, fmt.Errorf("starter %q: %s is not installed beside the plugin (make build puts it in bin/plugins): %v",
			cfg.Starter, StarterName, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runc isolator: %w", err)
	}
	rest, _ := json.Marshal(fields)
	if err := i.Isolator.SetConfig(ctx, rest, apiVersion); err != nil {
		return fmt.Errorf("runc isolator: %w", err)
	}
	i.mu.Lock()
	i.cfg = cfg
	i.mu.Unlock()
	i.logger.Info("configured", "state_dir", cfg.StateDir, "network", cfg.Network, "starter", cfg.Starter)
	return nil
}

// stateDir is the directory of every container of the current agent.
func (i *Isolator) stateDir() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	id := i.agentID
	if id == "" {
		id = "unregistered"
	}
	return strings.ReplaceAll(i.cfg.StateDir, cgroups.AgentIDPlaceholder, id)
}

// ContainerDir is where a container's spec and state live.
func (i *Isolator) ContainerDir(containerID string) string {
	return filepath.Join(i.stateDir(), containerID)
}

func (i *Isolator) setAgent(agentID string) {
	if agentID == "" {
		return
	}
	i.mu.Lock()
	i.agentID = agentID
	i.mu.Unlock()
}

// Prepare checks the task's root filesystem, writes the container's OCI
// spec, creates its cgroup with the task's limits and returns the starter
// as the wrapper of the task's command. Preparing again gives the same.
func (i *Isolator) Prepare(ctx context.Context, req isolator.PrepareRequest) (*isolator.LaunchSpec, error) {
	if err := checkID(req.ContainerID); err != nil {
		return nil, fmt.Errorf("runc isolator: prepare: %w", err)
	}
	i.setAgent(req.AgentID)
	i.mu.Lock()
	cfg := i.cfg
	i.mu.Unlock()
	spec, err := buildSpec(req, cfg.Network)
	if err != nil {
		return nil, fmt.Errorf("runc isolator: prepare %q: %w", req.ContainerID, err)
	}
	dir := i.ContainerDir(req.ContainerID)
	if err := writeSpec(dir, spec); err != nil {
		return nil, fmt.Errorf("runc isolator: prepare %q: %w", req.ContainerID, err)
	}
	rel, err := i.Isolator.PrepareCgroup(ctx, req)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("runc isolator: %w", err)
	}
	if err := setCgroupsPath(dir, rel); err != nil {
		_ = i.Cleanup(ctx, req.ContainerID)
		return nil, fmt.Errorf("runc isolator: prepare %q: %w", req.ContainerID, err)
	}
	i.logger.Debug("prepared", "container_id", req.ContainerID, "rootfs", spec.Root.Path, "cgroup", rel)
	return &isolator.LaunchSpec{
		Environment: map[string]string{},
		Wrapper:     []string{cfg.Starter, dir, "--"},
		// The starter's session, so that the executor's signals reach it;
		// it forwards them to the container's init.
		NewSession: true,
	}, nil
}

// Isolate checks the container was prepared. The pid is the starter's,
// which stays outside the container; the container's init joins the
// cgroup when the starter creates it.
func (i *Isolator) Isolate(_ context.Context, containerID string, pid int) error {
	if err := checkID(containerID); err != nil {
		return fmt.Errorf("runc isolator: isolate: %w", err)
	}
	if pid <= 1 {
		return fmt.Errorf("runc isolator: isolate %q: invalid pid %d", containerID, pid)
	}
	if _, err := os.Stat(filepath.Join(i.ContainerDir(containerID), bundle.SpecName)); err != nil {
		return fmt.Errorf("runc isolator: isolate %q: container is not prepared: %w", containerID, err)
	}
	return nil
}

// Cleanup kills everything in the container's cgroup (its init, and with
// it its pid namespace and mounts), removes the cgroup from every
// controller (libcontainer makes it in more than the cgroups isolator's
// five on v1) and the container's state directory. Cleaning a container
// that is gone is not an error.
func (i *Isolator) Cleanup(ctx context.Context, containerID string) error {
	if err := checkID(containerID); err != nil {
		return fmt.Errorf("runc isolator: cleanup: %w", err)
	}
	if err := i.Isolator.Cleanup(ctx, containerID); err != nil {
		return fmt.Errorf("runc isolator: %w", err)
	}
	rel := filepath.Join(i.Parent(), containerID)
	var errs []error
	for _, d := range allControllerDirs(rel) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	if err := os.RemoveAll(i.ContainerDir(containerID)); err != nil {
		errs = append(errs, fmt.Errorf("remove state: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runc isolator: cleanup %q: %w", containerID, err)
	}
	return nil
}

// Recover takes over the containers the agent knows and returns as orphans
// every other container found in the kernel (a cgroup under the parent in
// any controller) or on disk (a state directory).
func (i *Isolator) Recover(ctx context.Context, agentID string, known []isolator.ContainerState) ([]string, error) {
	i.mu.Lock()
	i.agentID = agentID
	i.mu.Unlock()
	orphans, err := i.Isolator.Recover(ctx, agentID, known)
	if err != nil {
		return nil, fmt.Errorf("runc isolator: %w", err)
	}
	isKnown := func(id string) bool {
		return slices.ContainsFunc(known, func(k isolator.ContainerState) bool { return k.ContainerID == id })
	}
	add := func(id string) {
		if checkID(id) == nil && !isKnown(id) && !slices.Contains(orphans, id) {
			orphans = append(orphans, id)
		}
	}
	entries, err := os.ReadDir(i.stateDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("runc isolator: recover: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			add(e.Name())
		}
	}
	for _, d := range allControllerDirs(i.Parent()) {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				add(e.Name())
			}
		}
	}
	slices.Sort(orphans)
	i.logger.Info("recovered", "known", len(known), "orphans", len(orphans))
	return orphans, nil
}

// allControllerDirs is rel in every mounted cgroup hierarchy (v1: every
// controller, named or not, and the v2 tree of a hybrid host, where
// libcontainer makes a cgroup too; v2: the unified tree).
func allControllerDirs(rel string) []string {
	if occgroups.IsCgroup2UnifiedMode() {
		return []string{filepath.Join("/sys/fs/cgroup", rel)}
	}
	mounts, err := occgroups.GetCgroupMounts(true)
	if err != nil {
		return nil
	}
	var out []string
	if occgroups.IsCgroup2HybridMode() {
		out = append(out, filepath.Join("/sys/fs/cgroup/unified", rel))
	}
	for _, m := range mounts {
		d := filepath.Join(m.Mountpoint, rel)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// checkID refuses IDs that are not one plain path element.
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("container ID %q is not a plain name", id)
	}
	return nil
}
