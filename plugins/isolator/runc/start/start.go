// Package start is the runc isolator's starter: the stage of a task's
// process that builds the container around the task's command with
// libcontainer and stays its parent until it exits.
//
// The executor's task shim execs the starter (the isolator's
// LaunchSpec.Wrapper) in place of the command, as
//
//	corral-runc-start <container dir> -- <argv...>
//
// where <container dir> holds spec.json, the OCI runtime spec the isolator
// wrote at Prepare (root filesystem, namespaces, mounts, cgroup path, user).
// The starter fills in the process (argv, the environment it was given,
// cwd /mnt/sandbox, its stdio: the sandbox's stdout and stderr files),
// creates the container under <container dir>/container, runs the command
// as the container's init, forwards the signals it gets to it, and exits
// as it did: with its exit code, or killed by the same signal. It removes
// libcontainer's state on the way out but never the cgroup: the isolator
// reads the container's OOM count from it after the exit, and Cleanup
// removes it.
//
// libcontainer re-executes this binary as "init" inside the new namespaces
// (the nsenter package does the namespace work in C before the Go runtime
// starts; MaybeInit finishes it). The binary imports nothing else heavy,
// since the Go part of that init runs inside the task's memory limit.
package start

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/corral-project/corral/plugins/isolator/runc/bundle"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	// The device rules of the spec are applied by the cgroups library's
	// devices controller only if it is linked in.
	_ "github.com/opencontainers/cgroups/devices"
	// nsenter's C constructor joins and creates namespaces for the init
	// re-exec before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// Names shared with the isolator.
const (
	SpecName      = bundle.SpecName
	ContainerName = bundle.ContainerName
	SandboxTarget = bundle.SandboxTarget
)

// ExitFailed is the starter's exit code when the container could not be
// started (the shells' "command not found" code, as the shim's).
const ExitFailed = 127

// MaybeInit finishes libcontainer's init and never returns when the binary
// was re-executed as the container's init ("init" as os.Args[1]). Call it
// first in main's package init().
func MaybeInit() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}

// Main runs the starter on os.Args and exits.
func Main() {
	code, sig, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral-runc-start: %v\n", err)
		os.Exit(ExitFailed)
	}
	if sig != 0 {
		// Die of the same signal, so that the shim records it as the task's.
		signal.Reset(sig)
		_ = unix.Kill(os.Getpid(), sig)
		code = 128 + int(sig)
	}
	os.Exit(code)
}

func run(args []string) (int, syscall.Signal, error) {
	if len(args) < 3 || args[1] != "--" {
		return 0, 0, errors.New("usage: corral-runc-start <container dir> -- <argv...>")
	}
	dir, argv := args[0], args[2:]
	spec, err := readSpec(filepath.Join(dir, SpecName))
	if err != nil {
		return 0, 0, err
	}
	spec.Process.Args = argv
	spec.Process.Env = environment(spec.Process.Env, os.Environ())
	spec.Process.Cwd = SandboxTarget
	spec.Process.Terminal = false
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: filepath.Base(dir),
		Spec:       spec,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("container config: %w", err)
	}
	// If the starter dies (SIGKILL from the executor's shutdown), the
	// container's init dies with it; Cleanup kills whatever is left.
	cfg.ParentDeathSignal = int(unix.SIGKILL)

	// Forward every signal from before the start on, so none is lost.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)

	// pdeathsig fires when the thread that forked the init exits, not the
	// process: fork from a locked thread that lives as long as we do.
	runtime.LockOSThread()
	_ = os.RemoveAll(filepath.Join(dir, ContainerName)) // a previous attempt's state
	c, err := libcontainer.Create(dir, ContainerName, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("create container: %w", err)
	}
	defer func() { _ = os.RemoveAll(filepath.Join(dir, ContainerName)) }()
	p := &libcontainer.Process{
		Args:   spec.Process.Args,
		Env:    spec.Process.Env,
		Cwd:    spec.Process.Cwd,
		UID:    int(spec.Process.User.UID),
		GID:    int(spec.Process.User.GID),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Init:   true,
	}
	for _, g := range spec.Process.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	if err := c.Run(p); err != nil {
		return 0, 0, fmt.Errorf("start %s in container: %w", strings.Join(argv, " "), err)
	}
	// One starter lives as long as each task: give back what starting took.
	debug.SetGCPercent(20)
	debug.FreeOSMemory()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == unix.SIGCHLD || s == unix.SIGURG {
					continue // ours (a reaped child, Go's preemption), not the task's
				}
				_ = p.Signal(s)
			case <-done:
				return
			}
		}
	}()
	st, err := p.Wait()
	close(done)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, 0, fmt.Errorf("wait for the container's init: %w", err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 0, ws.Signal(), nil
	}
	return st.ExitCode(), 0, nil
}

func readSpec(path string) (*specs.Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read container spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode container spec %s: %w", path, err)
	}
	if s.Process == nil || s.Root == nil || s.Linux == nil {
		return nil, fmt.Errorf("container spec %s: process, root and linux are required", path)
	}
	return &s, nil
}

// environment is the image's environment overlaid with the task's, with
// the sandbox variables pointing at the sandbox as the task sees it.
func environment(image, task []string) []string {
	env := map[string]string{}
	var order []string
	set := func(kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, kv := range image {
		set(kv)
	}
	for _, kv := range task {
		set(kv)
	}
	set("HOME=" + SandboxTarget)
	set("CORRAL_SANDBOX=" + SandboxTarget)
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+env[k])
	}
	return out
}
