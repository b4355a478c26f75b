package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/isolator/runc/bundle"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// bundleConfig is the OCI bundle's spec file: a rootfs directory holding
// it is a bundle, its root.path the filesystem.
const bundleConfig = "config.json"

// maxHostname is the kernel's limit (HOST_NAME_MAX).
const maxHostname = 64

// defaultPath is the container's PATH when neither image nor task sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildSpec is the container's OCI spec: the bundle's, or a default one
// for a plain directory, with what corral decides put over it: the
// namespaces, the hostname, the sandbox and /tmp mounts, the task's user
// (resolved in the container's /etc/passwd), the cgroup (set later), and
// no hooks (they would run host programs the task chose).
func buildSpec(req isolator.PrepareRequest, network string) (*specs.Spec, error) {
	if req.Rootfs == "" {
		return nil, errors.New(`the runc isolator needs a root filesystem: set the task's container rootfs (container { rootfs = "/path" }, corral exec --rootfs DIR)`)
	}
	if !filepath.IsAbs(req.Rootfs) {
		return nil, fmt.Errorf("rootfs %q: want an absolute path on the agent", req.Rootfs)
	}
	if req.SandboxDir == "" {
		return nil, errors.New("no sandbox directory")
	}
	st, err := os.Stat(req.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("rootfs %q: %w", req.Rootfs, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("rootfs %q is not a directory", req.Rootfs)
	}
	spec, err := loadBundle(req.Rootfs)
	if err != nil {
		return nil, err
	}
	if spec == nil {
		spec = defaultSpec(filepath.Clean(req.Rootfs))
	}
	if st, err := os.Stat(spec.Root.Path); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("rootfs %q: its root filesystem %s is not a directory", req.Rootfs, spec.Root.Path)
	}
	spec.Hostname = Hostname(req.Hostname, req.ContainerID)
	spec.Hooks = nil
	spec.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
		{Type: specs.UTSNamespace}, {Type: specs.IPCNamespace},
	}
	if network == NetworkNone {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	// Limits are the cgroups isolator's, set at Prepare; the spec keeps
	// only device access rules.
	var devices []specs.LinuxDeviceCgroup
	if spec.Linux.Resources != nil {
		devices = spec.Linux.Resources.Devices
	}
	spec.Linux.Resources = &specs.LinuxResources{Devices: devices}
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = nil, nil // no user namespace
	var mounts []specs.Mount
	for _, m := range spec.Mounts {
		if m.Destination != bundle.SandboxTarget && m.Destination != "/tmp" && m.Type != "cgroup" {
			mounts = append(mounts, m)
		}
	}
	spec.Mounts = append(mounts,
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		specs.Mount{Destination: bundle.SandboxTarget, Type: "bind", Source: req.SandboxDir, Options: []string{"rbind", "rw", "nosuid", "nodev"}},
	)
	u, err := resolveUser(spec.Root.Path, req.User)
	if err != nil {
		return nil, err
	}
	if spec.Process == nil {
		spec.Process = &specs.Process{}
	}
	spec.Process.User = u
	spec.Process.Terminal = false
	spec.Process.Args = []string{"true"} // the starter puts the task's command here
	if !hasEnv(spec.Process.Env, "PATH") {
		spec.Process.Env = append(spec.Process.Env, "PATH="+defaultPath)
	}
	return spec, nil
}

// loadBundle reads dir/config.json if dir is an OCI bundle; nil if not.
func loadBundle(dir string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, bundleConfig))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("OCI bundle %s: %w", dir, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("OCI bundle %s: %s: %w", dir, bundleConfig, err)
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("OCI bundle %s: %s has no root.path", dir, bundleConfig)
	}
	if !filepath.IsAbs(s.Root.Path) {
		if s.Root.Path, err = securejoin.SecureJoin(dir, s.Root.Path); err != nil {
			return nil, fmt.Errorf("OCI bundle %s: root.path: %w", dir, err)
		}
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{Devices: denyAllDevices()}
	}
	return &s, nil
}

func denyAllDevices() []specs.LinuxDeviceCgroup {
	return []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
}

// defaultSpec is the spec of a plain rootfs directory: what `runc spec`
// would give (read-only root, the usual /proc, /dev, /sys mounts, the
// default capabilities, masked and read-only /proc paths, no devices but
// the standard ones), without a terminal.
func defaultSpec(rootfs string) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Env:             []string{"PATH=" + defaultPath},
			Cwd:             "/",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Permitted: caps, Effective: caps},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Resources:     &specs.LinuxResources{Devices: denyAllDevices()},
		},
	}
}

// resolveUser finds the task's user in the container's /etc/passwd and
// /etc/group, as a container runtime does with an image's USER: no user
// is root, a number is taken as is.
func resolveUser(rootfs, name string) (specs.User, error) {
	if name == "" {
		name = "root"
	}
	passwd, err := securejoin.SecureJoin(rootfs, "/etc/passwd")
	if err != nil {
		return specs.User{}, fmt.Errorf("task user %q: %w", name, err)
	}
	group, err := securejoin.SecureJoin(rootfs, "/etc/group")
	if err != nil {
		return specs.User{}, fmt.Errorf("task user %q: %w", name, err)
	}
	u, err := user.GetExecUserPath(name, &user.ExecUser{}, passwd, group)
	if err != nil {
		return specs.User{}, fmt.Errorf("task user %q in the container's /etc/passwd: %w", name, err)
	}
	out := specs.User{UID: uint32(u.Uid), GID: uint32(u.Gid)}
	for _, g := range u.Sgids {
		out.AdditionalGids = append(out.AdditionalGids, uint32(g))
	}
	return out, nil
}

// Hostname makes name (or else the container ID) a valid hostname: letters,
// digits, '-' and '.', at most 64 bytes, not starting or ending with '-'.
func Hostname(name, containerID string) string {
	if name == "" {
		name = containerID
	}
	b := []byte(name)
	for k, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[k] = '-'
		}
	}
	if len(b) > maxHostname {
		b = b[:maxHostname]
	}
	h := strings.Trim(string(b), "-.")
	if h == "" {
		return "container"
	}
	return h
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// writeSpec creates the container's directory (owner only) and its spec.
func writeSpec(dir string, spec *specs.Spec) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("container dir: %w", err)
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	tmp := filepath.Join(dir, bundle.SpecName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, bundle.SpecName)); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	return nil
}

// setCgroupsPath records the container's cgroup in its spec.
func setCgroupsPath(dir, rel string) error {
	path := filepath.Join(dir, bundle.SpecName)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	s.Linux.CgroupsPath = rel
	return writeSpec(dir, &s)
}
