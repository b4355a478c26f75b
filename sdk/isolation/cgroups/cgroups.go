// Package cgroups is the cgroups isolator, after Mesos' cgroups/cpu,
// cgroups/mem and cgroups/pids isolators: every container is a cgroup
// (one per controller on cgroup v1, one in the unified tree on v2) under
// one parent per agent, /corral/<agent-id> by default. It turns a task's
// resources into kernel limits (cpu shares or weight from cpus, an optional
// hard CFS quota, memory and swap from mem, a pids limit), reads usage from
// the cgroup, reports OOM kills through Watch, and kills and removes the
// cgroup on Cleanup. The cgroups themselves are configured, read and
// removed through the cgroups library of the OCI runtime
// (github.com/opencontainers/cgroups); a new v1 container is made with one
// mkdir per controller and its limits written through the library's file
// access (see create and setFresh), which skips the generic Apply and
// Set's stats and read-backs on the path every task takes.
//
// The executor's task shim writes the task's pid to the cgroup while the
// task is stopped at its exec (LaunchSpec.CgroupProcs), so nothing the task forks can
// escape it, whatever session or process group it makes.
package cgroups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/cgroups"
)

// Name and Version identify the plugin.
const (
	Name    = "cgroups"
	Version = "0.1.0"
)

// Defaults of the config attributes.
const (
	// DefaultParent is where containers go; AgentIDPlaceholder is replaced
	// by the agent's ID ("unregistered" before it has one).
	DefaultParent         = "/corral/" + AgentIDPlaceholder
	AgentIDPlaceholder    = "{agent_id}"
	cfsPeriodMicros       = 100_000 // the kernel's default CFS period
	minCFSQuotaMicros     = 1_000   // the kernel refuses less than 1 ms
	minCPUShares          = 2       // the kernel's minimum cpu.shares
	maxCPUShares          = 262144  // and its maximum (MAX_SHARES)
	mib                   = 1 << 20
	unregisteredAgentName = "unregistered"
)

// cleanupTimeout bounds Cleanup when the caller's context has no deadline.
const cleanupTimeout = 30 * time.Second

// Config is the plugin's config body.
type Config struct {
	// Parent is the cgroup every container is created under, relative to
	// the hierarchy's root; AgentIDPlaceholder is replaced by the agent ID.
	Parent string `json:"parent"`
	// CPUQuota caps every container at its cpus with a CFS quota (Mesos'
	// --cgroups_enable_cfs); without it cpus is only a relative share.
	CPUQuota bool `json:"cpu_quota"`
	// PidsLimit caps the number of processes and threads of a container;
	// 0 means no limit.
	PidsLimit int64 `json:"pids_limit"`
	// SwapMiB is how much swap a container may use on top of its mem; 0
	// forbids swap where the kernel accounts for it.
	SwapMiB int64 `json:"swap_mib"`
	// OOMPoll is accepted for configs written for earlier versions, which
	// polled for OOM kills; the kernel now notifies them, so it is
	// ignored.
	OOMPoll string `json:"oom_poll"`
}

type settings struct {
	parent    string
	cpuQuota  bool
	pidsLimit int64
	swapBytes int64
	// oomPollSet: the config has the ignored oom_poll (SetConfig says so).
	oomPollSet bool
}

// container is one live cgroup.
type container struct {
	rel       string // path of the cgroup relative to the hierarchy roots
	mgr       cgroups.Manager
	memLimit  uint64
	pidsLimit uint64
	cpuQuota  *bool // the task's own quota choice, kept for Update
	pid       int
}

// Isolator implements isolator.Isolator with cgroups.
type Isolator struct {
	logger    hclog.Logger
	hier      *Hierarchy
	detectErr error

	oom *oomWatcher // nil without a hierarchy

	mu         sync.Mutex
	set        settings
	agentID    string
	containers map[string]*container
}

var _ isolator.Isolator = (*Isolator)(nil)

// Option configures an Isolator.
type Option func(*Isolator)

// WithDefaultParent changes the parent used when the config names none
// (tests give each run a parent of its own).
func WithDefaultParent(parent string) Option {
	return func(i *Isolator) { i.set.parent = parent }
}

// New returns an isolator for the machine's cgroup hierarchy. If there is
// no usable hierarchy, SetConfig says why.
func New(logger hclog.Logger, opts ...Option) *Isolator {
	h, err := Detect()
	i := &Isolator{
		logger:     logger,
		hier:       h,
		detectErr:  err,
		set:        settings{parent: DefaultParent},
		containers: make(map[string]*container),
	}
	if h != nil {
		i.oom = newOOMWatcher(logger, h.Unified)
	}
	for _, o := range opts {
		o(i)
	}
	return i
}

// Hierarchy is the cgroup layout found at start (nil if none was usable).
func (i *Isolator) Hierarchy() *Hierarchy { return i.hier }

// PluginInfo implements base.Plugin.
func (i *Isolator) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindIsolator, Name: Name, Version: Version, APIVersions: isolator.APIVersions}, nil
}

// ConfigSchema implements base.Plugin.
func (i *Isolator) ConfigSchema(context.Context) (*base.Schema, error) {
	return &base.Schema{Attributes: []base.Attribute{
		{Name: "parent", Type: "string", DefaultJSON: `"` + DefaultParent + `"`,
			Description: "Cgroup every container is created under (in every controller); " + AgentIDPlaceholder + " is the agent's ID."},
		{Name: "cpu_quota", Type: "bool", DefaultJSON: "false",
			Description: "Cap each container at its cpus with a CFS quota; otherwise cpus is a relative share only."},
		{Name: "pids_limit", Type: "number", DefaultJSON: "0",
			Description: "Most processes and threads a container may have; 0 for no limit."},
		{Name: "swap_mib", Type: "number", DefaultJSON: "0",
			Description: "Swap a container may use on top of its mem, in MiB."},
		{Name: "oom_poll", Type: "string", DefaultJSON: `""`,
			Description: "Ignored (accepted for older configs): the kernel notifies OOM kills, nothing polls for them."},
	}}, nil
}

// SetConfig implements base.Plugin.
func (i *Isolator) SetConfig(_ context.Context, configJSON []byte, apiVersion string) error {
	if !slices.Contains(isolator.APIVersions, apiVersion) {
		return fmt.Errorf("cgroups isolator: unsupported API version %q (supported: %s)",
			apiVersion, strings.Join(isolator.APIVersions, ", "))
	}
	if i.detectErr != nil {
		return fmt.Errorf("cgroups isolator: no usable cgroup hierarchy: %w", i.detectErr)
	}
	i.mu.Lock()
	defaultParent := i.set.parent
	i.mu.Unlock()
	s, err := parseConfig(configJSON, defaultParent)
	if err != nil {
		return fmt.Errorf("cgroups isolator: %w", err)
	}
	i.mu.Lock()
	i.set = s
	i.mu.Unlock()
	i.logger.Info("configured", "cgroup_version", i.hier.Version(), "parent", s.parent,
		"cpu_quota", s.cpuQuota, "pids_limit", s.pidsLimit, "swap_bytes", s.swapBytes)
	if s.oomPollSet {
		i.logger.Warn("oom_poll is ignored: the kernel notifies OOM kills (cgroup.event_control on v1, memory.events on v2)")
	}
	return nil
}

func parseConfig(configJSON []byte, defaultParent string) (settings, error) {
	cfg := Config{Parent: defaultParent}
	if len(configJSON) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(configJSON)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return settings{}, fmt.Errorf("decode config: %w", err)
		}
	}
	var errs []error
	parent := filepath.Clean("/" + cfg.Parent)
	if parent == "/" || strings.Contains(cfg.Parent, "..") {
		errs = append(errs, fmt.Errorf("parent = %q: want a cgroup path below the root, such as %q", cfg.Parent, DefaultParent))
	}
	if cfg.PidsLimit < 0 {
		errs = append(errs, fmt.Errorf("pids_limit = %d: must not be negative", cfg.PidsLimit))
	}
	if cfg.SwapMiB < 0 {
		errs = append(errs, fmt.Errorf("swap_mib = %d: must not be negative", cfg.SwapMiB))
	}
	// oom_poll is ignored, but a value an earlier version refused is
	// still refused rather than silently taken.
	if cfg.OOMPoll != "" {
		if poll, err := time.ParseDuration(cfg.OOMPoll); err != nil || poll <= 0 {
			errs = append(errs, fmt.Errorf("oom_poll = %q: want a positive duration such as \"250ms\" (it is ignored: OOM kills are notified by the kernel)", cfg.OOMPoll))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return settings{}, err
	}
	return settings{parent: parent, cpuQuota: cfg.CPUQuota, pidsLimit: cfg.PidsLimit,
		swapBytes: cfg.SwapMiB * mib, oomPollSet: cfg.OOMPoll != ""}, nil
}

// parentLocked is the parent cgroup for the current agent ID.
func (i *Isolator) parentLocked() string {
	id := i.agentID
	if id == "" {
		id = unregisteredAgentName
	}
	return strings.ReplaceAll(i.set.parent, AgentIDPlaceholder, id)
}

// Parent is the cgroup containers are created under, relative to the
// hierarchy's root.
func (i *Isolator) Parent() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.parentLocked()
}

// checkID refuses IDs that are not one plain path element: an ID is a
// directory name under the parent and must not climb out of it.
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("container ID %q is not a plain name", id)
	}
	return nil
}

// limits turns a task's resources into cgroup limits; quota, if set, is
// the task's own choice of a hard CPU quota over the configured one.
func (i *Isolator) limits(res resources.Resources, quota *bool) (*cgroups.Resources, uint64, uint64) {
	i.mu.Lock()
	s := i.set
	i.mu.Unlock()
	if quota != nil {
		s.cpuQuota = *quota
	}
	r := &cgroups.Resources{}
	cpus := res.Scalar(resources.CPUs)
	shares := uint64(min(max(math.Round(cpus*1024), minCPUShares), maxCPUShares))
	if i.hier.Unified {
		r.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(shares)
	} else {
		r.CpuShares = shares
	}
	if s.cpuQuota && cpus > 0 {
		r.CpuPeriod = cfsPeriodMicros
		r.CpuQuota = int64(max(math.Round(cpus*cfsPeriodMicros), minCFSQuotaMicros))
	}
	var memLimit uint64
	if mem := res.Scalar(resources.Mem); mem > 0 {
		r.Memory = int64(mem * mib)
		memLimit = uint64(r.Memory)
		if i.hier.swapAccounting() {
			r.MemorySwap = r.Memory + s.swapBytes
		}
	}
	var pidsLimit uint64
	if s.pidsLimit > 0 {
		limit := s.pidsLimit
		r.PidsLimit = &limit
		pidsLimit = uint64(limit)
	}
	return r, memLimit, pidsLimit
}

// Prepare creates the container's cgroup with its limits and returns the
// cgroup.procs files the first process must join. Preparing a container
// again returns the same spec. A task that asks for a root filesystem is
// refused: this isolator runs tasks on the host's.
func (i *Isolator) Prepare(_ context.Context, req isolator.PrepareRequest) (*isolator.LaunchSpec, error) {
	if req.Rootfs != "" {
		return nil, fmt.Errorf("cgroups isolator: prepare %q: rootfs %q: %w", req.ContainerID, req.Rootfs, isolator.ErrRootfsUnsupported)
	}
	c, err := i.prepare(req)
	if err != nil {
		return nil, err
	}
	return i.spec(c), nil
}

// PrepareCgroup creates the container's cgroup with its limits, as Prepare
// does, and returns its path relative to the hierarchy's root (such as
// /corral/<agent>/<container>), for an isolator that builds a container
// around it (runc) and joins its first process itself.
func (i *Isolator) PrepareCgroup(_ context.Context, req isolator.PrepareRequest) (string, error) {
	c, err := i.prepare(req)
	if err != nil {
		return "", err
	}
	return c.rel, nil
}

func (i *Isolator) prepare(req isolator.PrepareRequest) (*container, error) {
	if err := checkID(req.ContainerID); err != nil {
		return nil, fmt.Errorf("cgroups isolator: prepare: %w", err)
	}
	if i.hier == nil {
		return nil, fmt.Errorf("cgroups isolator: prepare %q: no usable cgroup hierarchy: %w", req.ContainerID, i.detectErr)
	}
	i.mu.Lock()
	if req.AgentID != "" {
		i.agentID = req.AgentID
	}
	c, ok := i.containers[req.ContainerID]
	parent := i.parentLocked()
	i.mu.Unlock()
	if ok {
		return c, nil
	}
	rel := filepath.Join(parent, req.ContainerID)
	r, memLimit, pidsLimit := i.limits(req.Resources, req.CPUQuota)
	c = &container{rel: rel, memLimit: memLimit, pidsLimit: pidsLimit, cpuQuota: req.CPUQuota}
	m, err := i.hier.Manager(rel, r)
	if err != nil {
		return nil, fmt.Errorf("cgroups isolator: prepare %q: %w", req.ContainerID, err)
	}
	// Created in every controller, joining nobody; Set writes the limits.
	if err := i.create(m, rel); err != nil {
		_ = m.Destroy()
		return nil, fmt.Errorf("cgroups isolator: prepare %q: create cgroup %s: %w", req.ContainerID, rel, err)
	}
	if err := i.setFresh(m, rel, r); err != nil {
		_ = m.Destroy()
		return nil, fmt.Errorf("cgroups isolator: prepare %q: set limits on %s: %w", req.ContainerID, rel, err)
	}
	c.mgr = m
	// Watched before any process can join it, so no OOM kill is missed.
	if err := i.oom.register(req.ContainerID, i.hier.main(rel)); err != nil {
		_ = m.Destroy()
		return nil, fmt.Errorf("cgroups isolator: prepare %q: %w", req.ContainerID, err)
	}
	i.mu.Lock()
	if prev, ok := i.containers[req.ContainerID]; ok {
		// A concurrent Prepare of the same container won; same cgroup.
		c = prev
	} else {
		i.containers[req.ContainerID] = c
	}
	i.mu.Unlock()
	i.logger.Debug("prepared", "container_id", req.ContainerID, "cgroup", rel)
	return c, nil
}

// create makes the container's cgroup. On v1 that is a directory per
// controller (Hierarchy.Create, what the library's Apply(-1) does without
// its stats); on v2 the library's Apply(-1) also enables the controllers
// in the parents' cgroup.subtree_control, which the limits need.
func (i *Isolator) create(m cgroups.Manager, rel string) error {
	if i.hier.Unified {
		return m.Apply(-1)
	}
	return i.hier.Create(rel)
}

// setFresh writes a new container's limits. On v1 they are written
// straight to the control files, through the library's file access: its
// Set reads cpu.shares back after writing it (to report a value the kernel
// clamped; limits keeps shares in the kernel's range) and reads the memory
// limit to choose in which order to write memory and memory+swap (in a new
// cgroup both are unlimited, so memory first is always right). That is two
// reads of five file operations, for every task. v2 goes through Set.
func (i *Isolator) setFresh(m cgroups.Manager, rel string, r *cgroups.Resources) error {
	if i.hier.Unified {
		return m.Set(r)
	}
	paths := i.hier.Paths(rel)
	write := func(ctrl, file string, v int64) error {
		return cgroups.WriteFile(paths[ctrl], file, strconv.FormatInt(v, 10))
	}
	if r.CpuShares != 0 {
		if err := write("cpu", "cpu.shares", int64(r.CpuShares)); err != nil {
			return err
		}
	}
	if r.CpuQuota != 0 {
		if err := write("cpu", "cpu.cfs_period_us", int64(r.CpuPeriod)); err != nil {
			return err
		}
		if err := write("cpu", "cpu.cfs_quota_us", r.CpuQuota); err != nil {
			return err
		}
	}
	if r.Memory != 0 {
		if err := write("memory", "memory.limit_in_bytes", r.Memory); err != nil {
			return err
		}
	}
	if r.MemorySwap != 0 {
		if err := write("memory", "memory.memsw.limit_in_bytes", r.MemorySwap); err != nil {
			return err
		}
	}
	if r.PidsLimit != nil {
		if err := write("pids", "pids.max", *r.PidsLimit); err != nil {
			return err
		}
	}
	return nil
}

func (i *Isolator) spec(c *container) *isolator.LaunchSpec {
	var procs []string
	for _, d := range i.hier.Dirs(c.rel) {
		procs = append(procs, filepath.Join(d, cgroups.CgroupProcesses))
	}
	// A new session is not what contains the task here (the cgroup is),
	// but it keeps the executor's signals to the task's group working.
	// Joining procs before the exec is the whole isolation, so a launcher
	// that does (the task shims) may skip Isolate and the hold at exec.
	return &isolator.LaunchSpec{Environment: map[string]string{}, CgroupProcs: procs, NewSession: true, SkipIsolate: true}
}

// Isolate makes sure pid is in the container's cgroup (the task's shim has
// normally put it there before its command runs; then Isolate only checks).
func (i *Isolator) Isolate(_ context.Context, containerID string, pid int) error {
	c, err := i.lookup(containerID)
	if err != nil {
		return fmt.Errorf("cgroups isolator: isolate: %w", err)
	}
	if pid <= 1 {
		return fmt.Errorf("cgroups isolator: isolate %q: invalid pid %d", containerID, pid)
	}
	// The task's shim has normally put it in every controller's cgroup
	// already: then reading that is all Isolate costs.
	if in, err := i.hier.Contains(c.rel, pid); err == nil && in {
		i.mu.Lock()
		c.pid = pid
		i.mu.Unlock()
		return nil
	}
	if err := c.mgr.AddPid("", pid); err != nil {
		return fmt.Errorf("cgroups isolator: isolate %q: add pid %d to %s: %w", containerID, pid, c.rel, err)
	}
	i.mu.Lock()
	c.pid = pid
	i.mu.Unlock()
	return nil
}

func (i *Isolator) lookup(containerID string) (*container, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, ok := i.containers[containerID]
	if !ok {
		return nil, fmt.Errorf("container %q is not prepared", containerID)
	}
	return c, nil
}

// Update applies new limits to a container's cgroup.
func (i *Isolator) Update(_ context.Context, containerID string, res resources.Resources) error {
	c, err := i.lookup(containerID)
	if err != nil {
		return fmt.Errorf("cgroups isolator: update: %w", err)
	}
	r, memLimit, pidsLimit := i.limits(res, c.cpuQuota)
	if r.CpuQuota == 0 {
		r.CpuQuota = -1 // lift a quota set earlier (0 would leave it)
	}
	if err := c.mgr.Set(r); err != nil {
		return fmt.Errorf("cgroups isolator: update %q: set limits on %s: %w", containerID, c.rel, err)
	}
	i.mu.Lock()
	c.memLimit, c.pidsLimit = memLimit, pidsLimit
	i.mu.Unlock()
	return nil
}

// Cleanup kills every process in the container's cgroup and removes the
// cgroup from every controller. A container this instance does not know
// (an orphan found by Recover) is cleaned from its place under the parent.
func (i *Isolator) Cleanup(ctx context.Context, containerID string) error {
	if err := checkID(containerID); err != nil {
		return fmt.Errorf("cgroups isolator: cleanup: %w", err)
	}
	if i.hier == nil {
		return nil // nothing can have been created
	}
	i.mu.Lock()
	c, ok := i.containers[containerID]
	parent := i.parentLocked()
	i.mu.Unlock()
	if !ok {
		rel := filepath.Join(parent, containerID)
		if !i.hier.Exists(rel) {
			return nil
		}
		m, err := i.hier.Manager(rel, nil)
		if err != nil {
			return fmt.Errorf("cgroups isolator: cleanup %q: %w", containerID, err)
		}
		c = &container{rel: rel, mgr: m}
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
	}
	if err := i.hier.Kill(ctx, c.mgr, c.rel); err != nil {
		return fmt.Errorf("cgroups isolator: cleanup %q: %w", containerID, err)
	}
	// Nothing is left inside to be OOM-killed. Released before the
	// cgroup is removed, whose removal would otherwise wake the watcher.
	i.oom.unregister(containerID)
	if err := c.mgr.Destroy(); err != nil {
		return fmt.Errorf("cgroups isolator: cleanup %q: remove cgroup %s: %w", containerID, c.rel, err)
	}
	i.mu.Lock()
	if i.containers[containerID] == c {
		delete(i.containers, containerID)
	}
	i.mu.Unlock()
	i.logger.Debug("cleaned up", "container_id", containerID, "cgroup", c.rel)
	return nil
}

// Recover rebuilds the container map from the cgroups under the agent's
// parent: a known container whose cgroup exists is kept; every other cgroup
// there is an orphan (a container the agent forgot, say after a crash
// between creating it and checkpointing it) and is returned for Cleanup.
func (i *Isolator) Recover(_ context.Context, agentID string, known []isolator.ContainerState) ([]string, error) {
	if i.hier == nil {
		return nil, fmt.Errorf("cgroups isolator: recover: no usable cgroup hierarchy: %w", i.detectErr)
	}
	i.mu.Lock()
	i.agentID = agentID
	parent := i.parentLocked()
	i.mu.Unlock()
	children, err := i.hier.Children(parent)
	if err != nil {
		return nil, fmt.Errorf("cgroups isolator: recover: %w", err)
	}
	recovered := make(map[string]*container, len(known))
	for _, k := range known {
		if err := checkID(k.ContainerID); err != nil || !slices.Contains(children, k.ContainerID) {
			i.logger.Info("recover: container has no cgroup", "container_id", k.ContainerID)
			continue
		}
		rel := filepath.Join(parent, k.ContainerID)
		r, memLimit, pidsLimit := i.limits(k.Resources, nil)
		m, err := i.hier.Manager(rel, r)
		if err != nil {
			return nil, fmt.Errorf("cgroups isolator: recover %q: %w", k.ContainerID, err)
		}
		if err := i.oom.register(k.ContainerID, i.hier.main(rel)); err != nil {
			return nil, fmt.Errorf("cgroups isolator: recover %q: %w", k.ContainerID, err)
		}
		recovered[k.ContainerID] = &container{rel: rel, mgr: m, memLimit: memLimit, pidsLimit: pidsLimit, pid: k.Pid}
	}
	i.oom.retain(func(id string) bool { _, ok := recovered[id]; return ok })
	var orphans []string
	for _, name := range children {
		if _, ok := recovered[name]; !ok {
			orphans = append(orphans, name)
		}
	}
	i.mu.Lock()
	i.containers = recovered
	i.mu.Unlock()
	i.logger.Info("recovered", "parent", parent, "known", len(known), "alive", len(recovered), "orphans", len(orphans))
	return orphans, nil
}
