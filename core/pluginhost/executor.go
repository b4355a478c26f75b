package pluginhost

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/corral-project/corral/sdk/procfs"
)

// ExecutorOptions configure StartExecutor and ReattachExecutor.
type ExecutorOptions struct {
	Logger hclog.Logger
	// LogPath receives the executor's stderr. A file, not the host's pipe:
	// the executor outlives the host, and writing to a dead host's pipe
	// would kill it with SIGPIPE (go-plugin #114).
	LogPath string
	// SocketDir holds the executor's unix socket. It is created 0700 and
	// must be durable (under the agent's work dir), not /tmp, which may be
	// cleaned while the executor runs.
	SocketDir    string
	StartTimeout time.Duration // 0 means DefaultStartTimeout
}

// ReattachInfo is what the agent checkpoints to find an executor again
// after it restarts.
type ReattachInfo struct {
	Pid int `json:"pid"`
	// StartTicks is field 22 of /proc/<pid>/stat at start: a pid with
	// another start time is a different process that reused the pid.
	StartTicks      uint64 `json:"start_ticks"`
	Network         string `json:"network"`
	Addr            string `json:"addr"`
	Protocol        string `json:"protocol"`
	ProtocolVersion int    `json:"protocol_version"`
	// TLS is the host's side of the mutual TLS with the executor (see
	// mtls.go); nil in reattach info written before host <-> plugin TLS,
	// which reattaches in plain text.
	TLS *ReattachTLS `json:"tls,omitempty"`
}

func (o ExecutorOptions) check() error {
	if o.LogPath == "" {
		return errors.New("ExecutorOptions.LogPath is required")
	}
	if o.SocketDir == "" {
		return errors.New("ExecutorOptions.SocketDir is required")
	}
	return nil
}

// StartExecutor starts an executor plugin in its own session, so that it
// survives the host, with its stderr going to opts.LogPath. The returned
// ReattachInfo lets a later host reattach with ReattachExecutor.
func StartExecutor(ctx context.Context, spec Spec, opts ExecutorOptions) (*Instance, *ReattachInfo, error) {
	if err := opts.check(); err != nil {
		return nil, nil, fmt.Errorf("%s plugin %q: %w", spec.Kind, spec.Name, err)
	}
	socketDir, err := usableSocketDir(opts.SocketDir)
	if err != nil {
		return nil, nil, fmt.Errorf("%s plugin %q: socket dir: %w", spec.Kind, spec.Name, err)
	}
	inst, err := launch(ctx, spec, Options{Logger: opts.Logger, StartTimeout: opts.StartTimeout}, runnerConfig{
		sysProc: &syscall.SysProcAttr{Setsid: true},
		logPath: opts.LogPath,
		noStdin: true,
	}, socketDir)
	if err != nil {
		return nil, nil, err
	}
	rc := inst.client.ReattachConfig()
	if rc == nil || rc.Addr == nil {
		inst.Kill()
		return nil, nil, inst.errorf("no reattach address after start")
	}
	_, ticks, err := procfs.Stat(inst.pid)
	if err != nil {
		inst.Kill()
		return nil, nil, inst.errorf("reading start time: %v", err)
	}
	var rtls *ReattachTLS
	if autoMTLS {
		serverCert, err := inst.proc.handshake.serverCert()
		if err != nil {
			inst.Kill()
			return nil, nil, inst.errorf("%v", err)
		}
		if rtls, err = reattachTLS(inst.tls, serverCert); err != nil {
			inst.Kill()
			return nil, nil, inst.errorf("%v", err)
		}
	}
	return inst, &ReattachInfo{
		TLS:             rtls,
		Pid:             inst.pid,
		StartTicks:      ticks,
		Network:         rc.Addr.Network(),
		Addr:            rc.Addr.String(),
		Protocol:        string(rc.Protocol),
		ProtocolVersion: inst.client.NegotiatedVersion(),
	}, nil
}

// ReattachExecutor connects to an executor a previous host started. It
// fails, without touching the process, if the pid is gone or now belongs to
// another process, or if nothing answers at the address. The plugin's
// identity and API version are checked again; its config is not re-sent
// (it kept it).
func ReattachExecutor(ctx context.Context, spec Spec, info *ReattachInfo, opts ExecutorOptions) (*Instance, error) {
	o := Options{Logger: opts.Logger, StartTimeout: opts.StartTimeout}.withDefaults()
	k, err := lookupKind(spec.Kind)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	inst := &Instance{spec: spec}
	if info == nil {
		return nil, inst.errorf("reattach: no reattach info")
	}
	state, ticks, err := procfs.Stat(info.Pid)
	switch {
	case err != nil:
		return nil, inst.errorf("reattach: process %d is not running: %v", info.Pid, err)
	case state == 'Z' || state == 'X':
		return nil, inst.errorf("reattach: process %d has exited", info.Pid)
	case info.StartTicks != 0 && ticks != info.StartTicks:
		return nil, inst.errorf("reattach: pid %d now belongs to another process (start time %d, executor started at %d)", info.Pid, ticks, info.StartTicks)
	}
	var addr net.Addr
	switch info.Network {
	case "unix":
		addr, err = net.ResolveUnixAddr("unix", info.Addr)
	case "tcp":
		addr, err = net.ResolveTCPAddr("tcp", info.Addr)
	default:
		err = fmt.Errorf("unknown network %q", info.Network)
	}
	if err != nil {
		return nil, inst.errorf("reattach: address: %v", err)
	}
	var tc *tls.Config
	if info.TLS != nil {
		if tc, err = info.TLS.config(); err != nil {
			return nil, inst.errorf("reattach: %v", err)
		}
	}
	ar := &attachedRunner{pid: info.Pid, startTicks: info.StartTicks, done: make(chan struct{}), detach: make(chan struct{})}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  k.handshake,
		Plugins:          k.plugins,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           o.Logger.Named("plugin"),
		TLSConfig:        tc,
		Reattach: &plugin.ReattachConfig{
			Protocol:        plugin.Protocol(info.Protocol),
			ProtocolVersion: info.ProtocolVersion,
			Addr:            addr,
			Pid:             info.Pid,
			ReattachFunc: func() (runner.AttachedRunner, error) {
				if err := dialCheck(addr.Network(), addr.String()); err != nil {
					return nil, fmt.Errorf("%w: nothing answers at %s: %v", plugin.ErrProcessNotFound, addr, err)
				}
				return ar, nil
			},
		},
	})
	inst.client, inst.pid, inst.done, inst.attached = client, info.Pid, ar.done, ar
	inst.socketDir = socketDirOf(socketDirFor(opts.SocketDir), info.Addr)
	rpc, err := client.Client()
	if err != nil {
		// Not Kill: a failed reattach must not touch the process.
		ar.stopWaiting()
		return nil, inst.errorf("reattach to pid %d at %s: %v", info.Pid, info.Addr, err)
	}
	if err := inst.setup(ctx, k, rpc, o.StartTimeout, false); err != nil {
		inst.Detach()
		return nil, err
	}
	return inst, nil
}

// maxSocketDir leaves room under a socket dir for go-plugin's own
// "plugin<random>/plugin<random>" inside the 108-byte sun_path limit.
const maxSocketDir = 107 - 40

// usableSocketDir returns dir, created owner-only, or, when dir is too
// long for a unix socket path, a short owner-only directory derived from
// it under the system temp dir. Without this a deep work_dir makes every
// executor fail its handshake with nothing but an empty message.
func usableSocketDir(dir string) (string, error) {
	dir = socketDirFor(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	// A short directory in a shared temp dir must be ours and private.
	if sys, ok := st.Sys().(*syscall.Stat_t); !st.IsDir() || (ok && int(sys.Uid) != os.Getuid()) {
		return "", fmt.Errorf("%s is not a directory owned by uid %d", dir, os.Getuid())
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// socketDirFor is where sockets for dir really go; see usableSocketDir.
func socketDirFor(dir string) string {
	if dir == "" || len(dir) <= maxSocketDir {
		return dir
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "corral-sock-"+hex.EncodeToString(sum[:6]))
}

// ReleaseSocketDir removes the short directory usableSocketDir made for a
// deep dir, once no executor uses it. The caller's own dir is left alone.
func ReleaseSocketDir(dir string) error {
	short := socketDirFor(dir)
	if short == dir {
		return nil
	}
	if err := os.Remove(short); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
