package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"
)

// V1Controllers are the cgroup v1 controllers a container gets a cgroup in:
// cpu (shares, quota), cpuacct (user/system time), memory (limit, peak,
// OOM), pids (limit) and freezer (so that Cleanup can stop a fork bomb
// before killing it). Nothing else is created, which keeps a container at
// five directories.
var V1Controllers = []string{"cpu", "cpuacct", "memory", "pids", "freezer"}

// unifiedRoot is where cgroup v2 is mounted on a unified host.
const unifiedRoot = "/sys/fs/cgroup"

// Hierarchy is the machine's cgroup layout: v2 (one unified tree) or v1
// (one tree per controller), found once at start.
type Hierarchy struct {
	Unified bool
	// Mounts maps each of V1Controllers to its mount point (v1 only).
	Mounts map[string]string
}

// Detect finds the cgroup layout. On v1 every one of V1Controllers must be
// mounted; on v2 the unified tree must be.
func Detect() (*Hierarchy, error) {
	if cgroups.IsCgroup2UnifiedMode() {
		return &Hierarchy{Unified: true}, nil
	}
	h := &Hierarchy{Mounts: make(map[string]string, len(V1Controllers))}
	for _, c := range V1Controllers {
		mp, err := cgroups.FindCgroupMountpoint("", c)
		if err != nil {
			return nil, fmt.Errorf("cgroup v1 controller %s is not mounted: %w", c, err)
		}
		h.Mounts[c] = mp
	}
	return h, nil
}

// Version is "v1" or "v2".
func (h *Hierarchy) Version() string {
	if h.Unified {
		return "v2"
	}
	return "v1"
}

// Paths returns the directories of cgroup rel (such as
// /corral/<agent>/<container>) in every controller, keyed as the cgroups
// library expects: by controller on v1, "" on v2.
func (h *Hierarchy) Paths(rel string) map[string]string {
	if h.Unified {
		return map[string]string{"": filepath.Join(unifiedRoot, rel)}
	}
	out := make(map[string]string, len(h.Mounts))
	for c, mp := range h.Mounts {
		out[c] = filepath.Join(mp, rel)
	}
	return out
}

// Dirs returns the distinct directories of rel, sorted (on v1, co-mounted
// controllers such as cpu,cpuacct share one).
func (h *Hierarchy) Dirs(rel string) []string {
	var out []string
	for _, p := range h.Paths(rel) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// main is the directory processes are listed from and memory read from.
func (h *Hierarchy) main(rel string) string {
	if h.Unified {
		return filepath.Join(unifiedRoot, rel)
	}
	return filepath.Join(h.Mounts["memory"], rel)
}

// Exists reports whether rel exists in any controller.
func (h *Hierarchy) Exists(rel string) bool {
	for _, d := range h.Dirs(rel) {
		if cgroups.PathExists(d) {
			return true
		}
	}
	return false
}

// Children lists the cgroups directly under rel in any controller.
func (h *Hierarchy) Children(rel string) ([]string, error) {
	var out []string
	for _, d := range h.Dirs(rel) {
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list cgroup %s: %w", d, err)
		}
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(out, e.Name()) {
				out = append(out, e.Name())
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Manager returns the cgroups library's manager for rel with the given
// limits; it creates nothing.
func (h *Hierarchy) Manager(rel string, r *cgroups.Resources) (cgroups.Manager, error) {
	if r == nil {
		r = &cgroups.Resources{}
	}
	// Containers share the agent's devices; this isolator limits compute
	// and memory, not device access (that is the runc isolator's job).
	r.SkipDevices = true
	m, err := manager.NewWithPaths(&cgroups.Cgroup{Path: rel, Resources: r}, h.Paths(rel))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", rel, err)
	}
	return m, nil
}

// Pids lists the processes in rel and in any cgroup a task made below it
// (empty if rel is gone). The common case, no cgroup below, costs one read
// of cgroup.procs and one stat: a cgroup directory's link count is two
// plus its subdirectories (kernfs keeps it so), so only a container with
// sub-cgroups pays for the library's walk of the tree, which lists every
// control file of every directory.
func (h *Hierarchy) Pids(rel string) ([]int, error) {
	dir := h.main(rel)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("stat cgroup %s: %w", dir, err)
	}
	get := cgroups.GetPids
	if st.Nlink != 2 {
		get = cgroups.GetAllPids
	}
	pids, err := get(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return pids, err
}

// Create makes rel's directory in every v1 controller. Each is one mkdir
// where the cgroups library's Apply(-1) spends a stat of the directory and
// of its parent first (os.MkdirAll); the parent is made only when missing.
// Limits are written by the library's Set afterwards.
func (h *Hierarchy) Create(rel string) error {
	for _, d := range h.Dirs(rel) {
		err := unix.Mkdir(d, 0o755)
		switch {
		case err == nil, errors.Is(err, unix.EEXIST):
		case errors.Is(err, unix.ENOENT):
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("create cgroup %s: %w", d, err)
			}
		default:
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	return nil
}

// OOMKills is how many processes of rel the kernel's OOM killer ended.
func (h *Hierarchy) OOMKills(rel string) (uint64, error) {
	if h.Unified {
		return fs2.OOMKillCount(h.main(rel))
	}
	return fs.OOMKillCount(h.main(rel))
}

// swapAccounting reports whether memory+swap can be limited.
func (h *Hierarchy) swapAccounting() bool {
	if h.Unified {
		return cgroups.PathExists(filepath.Join(unifiedRoot, "memory.swap.max")) ||
			fileUnderChildren(unifiedRoot, "memory.swap.max")
	}
	return cgroups.PathExists(filepath.Join(h.Mounts["memory"], "memory.memsw.limit_in_bytes"))
}

// fileUnderChildren reports whether any direct child cgroup of dir has
// file: the v2 root cgroup has no memory.* files of its own.
func fileUnderChildren(dir, file string) bool {
	matches, _ := filepath.Glob(filepath.Join(dir, "*", file))
	return len(matches) > 0
}

// killPoll is how often Kill looks again at a cgroup it is emptying.
const killPoll = 10 * time.Millisecond

// Kill ends every process in rel and returns once none is left. On v2 with
// cgroup.kill (Linux 5.14) the kernel does it atomically; otherwise the
// cgroup is frozen first, so that nothing inside can fork between the
// listing and the kill, then every process is sent SIGKILL and the cgroup
// thawed so the signals are delivered.
func (h *Hierarchy) Kill(ctx context.Context, m cgroups.Manager, rel string) error {
	for {
		pids, err := h.Pids(rel)
		if err != nil {
			return fmt.Errorf("list processes of cgroup %s: %w", rel, err)
		}
		if len(pids) == 0 {
			return nil
		}
		if err := h.killOnce(m, rel, pids); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cgroup %s: %d processes still alive: %w", rel, len(pids), ctx.Err())
		case <-time.After(killPoll):
		}
	}
}

func (h *Hierarchy) killOnce(m cgroups.Manager, rel string, pids []int) error {
	if h.Unified && cgroups.PathExists(filepath.Join(h.main(rel), "cgroup.kill")) {
		if err := cgroups.WriteFile(h.main(rel), "cgroup.kill", "1"); err != nil {
			return fmt.Errorf("kill cgroup %s: %w", rel, err)
		}
		return nil
	}
	if err := m.Freeze(cgroups.Frozen); err != nil {
		if !h.Exists(rel) {
			// Removed meanwhile, by whoever else owned it (a container
			// runtime cleaning up a failed start): nothing left to kill.
			return nil
		}
		// The v1 freezer can stay in FREEZING past the library's wait on
		// a starved machine (a task mid-syscall, or simply not scheduled);
		// the library thaws it again before it returns. Giving up here
		// would leave the container behind, so kill what was listed
		// without the freeze: Kill lists again and repeats until the
		// cgroup is empty, and the pids limit bounds how fast anything
		// inside can fork in between.
		return killPids(pids)
	}
	// Listed again while frozen: nothing can have forked since.
	if frozen, err := h.Pids(rel); err == nil {
		pids = frozen
	}
	errs := []error{killPids(pids)}
	if err := m.Freeze(cgroups.Thawed); err != nil {
		errs = append(errs, fmt.Errorf("thaw cgroup %s: %w", rel, err))
	}
	return errors.Join(errs...)
}

// killPids sends SIGKILL to every pid; one already gone is not an error.
func killPids(pids []int) error {
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill pid %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// Contains reports whether pid is in cgroup rel in every controller, from
// /proc/<pid>/cgroup: one read, where writing the pid to each controller's
// cgroup.procs again costs a cgroup migration apiece (five on v1, each
// under the kernel's global cgroup locks).
func (h *Hierarchy) Contains(rel string, pid int) (bool, error) {
	paths, err := cgroups.ParseCgroupFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return false, err
	}
	if h.Unified {
		return paths[""] == rel, nil
	}
	for c := range h.Mounts {
		if paths[c] != rel {
			return false, nil
		}
	}
	return true, nil
}
