package pluginhost

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// DefaultStartTimeout bounds a plugin's start: handshake, then each of the
// identity and config calls.
const DefaultStartTimeout = 10 * time.Second

// Options configure Start, NewSupervisor and Discover.
type Options struct {
	Logger       hclog.Logger  // plugin stderr goes to Logger.Named("plugin").Named(<name>)
	StartTimeout time.Duration // 0 means DefaultStartTimeout
	// Watchdog is the Supervisor's hang detection; the zero value means
	// the defaults. Start and Discover ignore it.
	Watchdog Watchdog
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	o.Watchdog = o.Watchdog.withDefaults()
	return o
}

// Instance is one running plugin process, checked and configured.
type Instance struct {
	spec       Spec
	client     *plugin.Client
	raw        any
	info       base.Info
	apiVersion string
	pid        int
	done       <-chan struct{} // closed when the process has exited

	proc      *procRunner     // set when we started the process
	attached  *attachedRunner // set when reattached
	socketDir string          // removed on Kill of a reattached executor
	// tls is the AutoMTLS configuration of a plugin we started.
	tls *tls.Config

	killOnce sync.Once
}

// Raw is the dispensed plugin: an allocator.Allocator, isolator.Isolator or
// executor.Executor according to the spec's kind.
func (i *Instance) Raw() any { return i.raw }

// Info is what the plugin said about itself.
func (i *Instance) Info() base.Info { return i.info }

// APIVersion is the negotiated API version.
func (i *Instance) APIVersion() string { return i.apiVersion }

// Pid is the plugin's process id.
func (i *Instance) Pid() int { return i.pid }

// Spec is what the instance was started from.
func (i *Instance) Spec() Spec { return i.spec }

// Done is closed when the plugin process has exited.
func (i *Instance) Done() <-chan struct{} { return i.done }

// Exited reports whether the plugin process has exited.
func (i *Instance) Exited() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// killGrace bounds go-plugin's graceful Kill. Its shutdown RPC waits for
// the process to exit, with no deadline of its own, so a stopped or wedged
// plugin would hold Kill (and Supervisor.Stop) forever. go-plugin itself
// waits 2s for a graceful exit before its SIGKILL; this leaves room for it.
const killGrace = 5 * time.Second

// Kill ends the plugin and waits until its process has exited and go-plugin
// has let go of it: go-plugin asks the plugin to shut down and SIGKILLs it
// after 2s; a plugin that does not even answer the shutdown request is
// SIGKILLed after killGrace. Safe to call more than once.
func (i *Instance) Kill() {
	i.killOnce.Do(func() {
		done := make(chan struct{})
		go func() { defer close(done); i.client.Kill() }()
		t := time.NewTimer(killGrace)
		select {
		case <-done:
		case <-t.C:
			_ = i.sigkill()
			<-done
		}
		t.Stop()
		if i.socketDir != "" {
			_ = os.RemoveAll(i.socketDir)
		}
	})
}

// HardKill SIGKILLs the plugin process at once, with no shutdown request
// (a hung plugin would not answer one; a SIGSTOPped one dies only from
// SIGKILL), then reaps it as Kill does. Safe to call more than once.
func (i *Instance) HardKill() {
	_ = i.sigkill()
	i.Kill()
}

// sigkill sends SIGKILL to the plugin process, if it is still ours to kill.
func (i *Instance) sigkill() error {
	switch {
	case i.proc != nil:
		return i.proc.Kill(context.Background())
	case i.attached != nil:
		return i.attached.Kill(context.Background())
	}
	return nil
}

// Detach drops the connection but leaves the process running, so a later
// host can reattach to it (executors). After Detach the instance must not
// be used.
func (i *Instance) Detach() {
	i.killOnce.Do(func() {
		if rpc, err := i.client.Client(); err == nil {
			if g, ok := rpc.(*plugin.GRPCClient); ok {
				// Not rpc.Close: that asks the plugin to shut down.
				_ = g.Conn.Close()
			}
		}
		if i.attached != nil {
			i.attached.stopWaiting()
		}
	})
}

func (i *Instance) errorf(format string, args ...any) error {
	return fmt.Errorf("%s plugin %q (%s): "+format, append([]any{i.spec.Kind, i.spec.Name, i.spec.Path}, args...)...)
}

// launch is what Start and StartExecutor share: a go-plugin client over our
// runner, then handshake, dispense, identity, version and config checks.
func launch(ctx context.Context, spec Spec, opts Options, rc runnerConfig, socketDir string) (*Instance, error) {
	opts = opts.withDefaults()
	inst, k, rpc, err := spawn(spec, opts, rc, socketDir)
	if err != nil {
		return nil, err
	}
	if err := inst.setup(ctx, k, rpc, opts.StartTimeout, true); err != nil {
		inst.Kill()
		return nil, err
	}
	return inst, nil
}

// spawn starts the process and completes the go-plugin handshake. The
// binary's checksum, when spec pins one, is verified right before exec.
func spawn(spec Spec, opts Options, rc runnerConfig, socketDir string) (*Instance, kind, plugin.ClientProtocol, error) {
	k, err := lookupKind(spec.Kind)
	if err != nil {
		return nil, kind{}, nil, fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	if err := checkExecutable(spec.Path); err != nil {
		return nil, kind{}, nil, fmt.Errorf("%s plugin %q: binary %s; expected %s", spec.Kind, spec.Name, err, k.expectation())
	}
	rc.path, rc.args, rc.name = spec.Path, spec.Args, spec.Name
	if spec.SHA256 != "" {
		rc.verify = func() error { return verifyChecksum(spec, spec.Path) }
	}
	var r *procRunner
	cc := &plugin.ClientConfig{
		HandshakeConfig: k.handshake,
		Plugins:         k.plugins,
		// No SecureConfig: go-plugin cannot check a RunnerFunc's binary
		// (see verifyChecksum); rc.verify does it instead.
		RunnerFunc:       rc.runnerFunc(func(pr *procRunner) { r = pr }),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           opts.Logger.Named("plugin"),
		StartTimeout:     opts.StartTimeout,
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
		// Mutual TLS between host and plugin (see mtls.go).
		AutoMTLS: autoMTLS,
	}
	if socketDir != "" {
		cc.UnixSocketConfig = &plugin.UnixSocketConfig{TempDir: socketDir}
	}
	client := plugin.NewClient(cc)
	inst := &Instance{spec: spec, client: client}
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		var ce *ChecksumError
		if errors.As(err, &ce) {
			return nil, kind{}, nil, ce
		}
		return nil, kind{}, nil, inst.startError(k, r, opts.StartTimeout, err)
	}
	inst.proc, inst.pid, inst.done = r, r.Pid(), r.done
	inst.tls = cc.TLSConfig
	return inst, k, rpc, nil
}

// startTimeoutError is a start that timed out, which may succeed on another
// try (a loaded machine), unlike a binary of the wrong kind.
type startTimeoutError struct{ error }

func (e startTimeoutError) Unwrap() error { return e.error }

// startError explains a failed handshake: the usual cause is a binary of
// another kind, or one built against another protocol version.
func (i *Instance) startError(k kind, r *procRunner, timeout time.Duration, err error) error {
	var stderr string
	if r != nil {
		if s := r.tail.String(); s != "" {
			stderr = fmt.Sprintf("; plugin stderr: %q", s)
		}
	}
	msg := err.Error()
	switch {
	case r == nil || r.Pid() == 0:
		return i.errorf("cannot start: %v", err)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return startTimeoutError{i.errorf("did not complete the go-plugin handshake within %s (expected %s)%s", timeout, k.expectation(), stderr)}
	}
	return i.errorf("handshake failed: the binary is not a corral %s plugin or speaks another protocol version (expected %s): %s%s",
		k.name, k.expectation(), firstLine(msg), stderr)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// setup dispenses the plugin and checks what it says about itself; with
// configure it also decodes the operator's config and applies it.
func (i *Instance) setup(ctx context.Context, k kind, rpc plugin.ClientProtocol, timeout time.Duration, configure bool) error {
	raw, err := rpc.Dispense(k.dispense)
	if err != nil {
		return i.errorf("dispense %q: %v", k.dispense, err)
	}
	bp, ok := raw.(base.Plugin)
	if !ok || !k.implements(raw) {
		return i.errorf("dispensed %T, which does not implement the %s interface", raw, k.name)
	}
	i.raw = raw

	call := func(what string, f func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := base.HandleRPCError(cctx, f(cctx)); err != nil {
			return i.errorf("%s: %w", what, err)
		}
		return nil
	}
	var info *base.Info
	if err := call("PluginInfo", func(ctx context.Context) (err error) { info, err = bp.PluginInfo(ctx); return err }); err != nil {
		return err
	}
	if info == nil {
		return i.errorf("PluginInfo returned nothing")
	}
	i.info = *info
	if info.Kind != i.spec.Kind {
		return i.errorf("says it is a %q plugin (name %q) but is configured as kind %q", info.Kind, info.Name, i.spec.Kind)
	}
	if i.apiVersion, err = base.NegotiateAPIVersion(k.apiVersions, info.APIVersions); err != nil {
		return i.errorf("%v", err)
	}
	if !configure {
		return nil
	}
	var schema *base.Schema
	if err := call("ConfigSchema", func(ctx context.Context) (err error) { schema, err = bp.ConfigSchema(ctx); return err }); err != nil {
		return err
	}
	if schema == nil {
		schema = &base.Schema{}
	}
	js, err := decodeConfig(i.spec.Config, schema)
	if err != nil {
		return i.errorf("config: %w", err)
	}
	return call("SetConfig", func(ctx context.Context) error { return bp.SetConfig(ctx, js, i.apiVersion) })
}

// Start starts, checks and configures the plugin spec describes. The
// plugin dies with the host (Pdeathsig), so use it for allocators and
// isolators; executors, which must outlive the host, use StartExecutor. Any
// failure kills the process and returns an error naming the plugin, its
// path and the problem.
func Start(ctx context.Context, spec Spec, opts Options) (*Instance, error) {
	return launch(ctx, spec, opts, runnerConfig{
		sysProc:     &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		spawnLocked: true,
	}, "")
}

// socketDirOf is the per-plugin socket directory go-plugin made for addr
// inside socketDir, or "" if addr is elsewhere.
func socketDirOf(socketDir, addr string) string {
	if socketDir == "" {
		return ""
	}
	dir := filepath.Dir(addr)
	if filepath.Dir(dir) != filepath.Clean(socketDir) {
		return ""
	}
	return dir
}
