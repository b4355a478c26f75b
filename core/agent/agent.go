// Package agent is corral's agent: it registers its machine's resources with
// the master, runs the tasks the master sends through executor and isolator
// plugins, reports their status at least once, and serves their sandboxes.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/agent/checkpoint"
	"github.com/corral-project/corral/core/agent/detect"
	"github.com/corral-project/corral/core/agent/gc"
	"github.com/corral-project/corral/core/agent/statusupdate"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/resources"
)

// Version is reported to the master on registration.
const Version = "0.1.0"

// pluginCallTimeout bounds isolator calls made outside a task's own flow.
const pluginCallTimeout = 30 * time.Second

// Agent runs tasks on one machine.
type Agent struct {
	cfg       Config
	sec       *security // ACLs and credentials of the guarded endpoints
	logger    hclog.Logger
	plugins   Plugins
	resources resources.Resources
	updates   *statusupdate.Manager

	ready   chan struct{}
	url     string // set before ready is closed
	started bool   // guarded by mu; Run may be called once

	isos map[string]IsolatorHost // by name; set before ready is closed

	// taskCtx outlives Run's ctx until every task is torn down: executors
	// and their Wait calls must survive the shutdown they take part in.
	taskCtx    context.Context
	taskCancel context.CancelFunc
	taskWG     sync.WaitGroup

	// launchSlots bounds how many tasks launch at once.
	launchSlots chan struct{}

	// fwSaved is the FrameworkInfo last checkpointed per framework: a
	// burst of launches writes it once, not once per task.
	fwSavedMu sync.Mutex
	fwSaved   map[string][]byte

	// ckpt is the checkpoint store, open while Run runs; nil in an
	// agent that has not started.
	ckpt *checkpoint.Store

	mu sync.Mutex
	id string
	// secret binds id at the master; presented on every re-registration.
	secret string
	tasks  map[taskKey]*task
	// owners is the principal of each framework whose sandboxes the agent
	// still keeps, past its tasks' acknowledged ends: a framework reads its
	// finished task's output (corral exec does, racing its own automatic
	// acknowledgement). Entries go with the framework's sandbox directory.
	owners    map[string]string
	executors map[execKey]*customExecutor // custom executors (executors.go)
	stopping  bool                        // no new tasks once shutdown began
	detaching bool                        // stopping and leaving tasks running (on_shutdown = keep)

	connMu sync.Mutex
	out    chan<- *agentMessage // nil while disconnected

	// handlers are more HTTP endpoints (Handle), mounted when Run starts.
	handlers map[string]http.Handler
}

// Handle adds an HTTP endpoint to the agent's API (cmd wires the Mesos v1
// executor API this way). Call it before Run.
func (a *Agent) Handle(pattern string, h http.Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.handlers == nil {
		a.handlers = map[string]http.Handler{}
	}
	a.handlers[pattern] = h
}

// NewWithPlugins builds an agent that runs tasks through the given plugin
// seams. New wires them to the plugin host; tests may wire them to plugin
// code in-process.
func NewWithPlugins(cfg Config, plugins Plugins, logger hclog.Logger) (*Agent, error) {
	if plugins.Isolator == nil || plugins.Executors == nil {
		return nil, errors.New("agent: isolator and executor plugins are required")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	for _, dir := range []string{cfg.WorkDir, cfg.sandboxRoot(), cfg.pluginDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("agent work dir: %w", err)
		}
	}
	// Plugin sockets live here; keep them owner-only.
	if err := os.Chmod(cfg.pluginDir(), 0o700); err != nil {
		return nil, fmt.Errorf("agent plugin dir: %w", err)
	}
	detected, err := detect.Detect(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("agent resources: %w", err)
	}
	id, err := loadID(cfg.idFile())
	if err != nil {
		if cfg.Recover != RecoverCleanup {
			return nil, fmt.Errorf("%w (or start the agent with -recover=cleanup)", err)
		}
		logger.Warn("ignoring unusable agent ID file (-recover=cleanup)", "error", err)
		id = ""
	}
	secret, err := loadSecret(cfg.secretFile())
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:         cfg,
		sec:         newSecurity(cfg.ACLs, cfg.Credentials),
		logger:      logger,
		plugins:     plugins,
		resources:   detect.Override(detected, cfg.Resources),
		ready:       make(chan struct{}),
		launchSlots: make(chan struct{}, cfg.MaxConcurrentLaunches),
		id:          id,
		secret:      secret,
		tasks:       map[taskKey]*task{},
		owners:      map[string]string{},
		executors:   map[execKey]*customExecutor{},
	}
	a.taskCtx, a.taskCancel = context.WithCancel(context.Background())
	a.updates = statusupdate.New(statusupdate.Options{
		Send:           a.sendUpdate,
		OnTerminalAck:  a.forgetTask,
		InitialBackoff: cfg.StatusUpdateRetry,
		MaxBackoff:     statusupdate.DefaultMaxBackoff,
		Logger:         logger.Named("status-updates"),
	})
	logger.Info("agent configured", "work_dir", cfg.WorkDir, "resources", a.resources.String(), "agent_id", id)
	return a, nil
}

// ID is the ID the master gave this agent, "" before the first registration.
func (a *Agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// Resources are the resources the agent offers (detected, then overridden).
func (a *Agent) Resources() resources.Resources { return a.resources }

// Ready is closed once the isolator runs and the HTTP API listens.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// URL is the agent's HTTP base URL; valid once Ready is closed.
func (a *Agent) URL() string {
	select {
	case <-a.ready:
		return a.url
	default:
		return ""
	}
}

// Run recovers what the checkpoint holds, starts the isolators, the HTTP
// API and the master connection, and blocks until ctx ends. It then either
// leaves its tasks running for the next run to reattach to
// (on_shutdown = "keep", the default) or kills every task (SIGTERM, grace,
// SIGKILL) and cleans up their containers ("kill"), and stops the plugins.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.started {
		a.mu.Unlock()
		return errors.New("agent: Run called twice")
	}
	a.started = true
	a.mu.Unlock()
	defer a.taskCancel()
	release, err := lockWorkDir(a.cfg.WorkDir)
	if err != nil {
		return err
	}
	defer release()

	st, err := a.openCheckpoint(ctx)
	if err != nil {
		return err
	}
	defer a.ckpt.Close()
	if err := a.restore(st); err != nil {
		return err
	}

	factories := map[string]IsolatorHostFactory{a.cfg.Isolator: a.plugins.Isolator}
	for name, f := range a.plugins.MoreIsolators {
		if name != a.cfg.Isolator {
			factories[name] = f
		}
	}
	a.isos = make(map[string]IsolatorHost, len(factories))
	for name, f := range factories {
		iso, err := f(func(ctx context.Context, iso isolator.Isolator) error { return a.recoverIsolator(ctx, name, iso) })
		if err != nil {
			return fmt.Errorf("agent isolator %q: %w", name, err)
		}
		// The isolator outlives ctx: tasks are torn down through it afterwards.
		if err := iso.Start(a.taskCtx); err != nil {
			return fmt.Errorf("start isolator %q: %w", name, err)
		}
		defer iso.Stop()
		a.isos[name] = iso
	}

	ln, err := net.Listen("tcp", a.cfg.Address)
	if err != nil {
		return fmt.Errorf("agent listen: %w", err)
	}
	serverTLS, err := a.cfg.TLS.Server()
	if err != nil {
		ln.Close()
		return fmt.Errorf("agent: %w", err)
	}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	srv := &http.Server{Handler: a.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	a.url = baseURL(a.cfg.TLS.Scheme(), ln.Addr(), a.cfg.Hostname)
	close(a.ready)
	a.logger.Info("agent ready", "url", a.url, "master", a.cfg.Master)

	// Reattach before registering: the master then hears of every live
	// task, and of the others' fates, in the first messages it gets.
	sweeper, sweeps := a.plugins.Executors.(executorSweeper)
	if sweeps {
		sweeper.SetRecorder(a.ckpt)
	}
	a.recoverTasks(ctx)
	if sweeps {
		sweeper.Sweep(ctx, st.Executors)
	}

	// The master connection outlives ctx a little, so that the updates of
	// the tasks killed on the way out can still reach it.
	connCtx, connCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer connCancel()
	var bg sync.WaitGroup
	bg.Go(func() { a.updates.Run(connCtx) })
	bg.Go(func() { a.connectLoop(connCtx) })
	bg.Go(func() { a.sandboxGC().Run(connCtx) })

	select {
	case <-ctx.Done():
	case err := <-serveDone:
		a.logger.Error("agent HTTP server stopped", "error", err)
	}
	if a.cfg.OnShutdown == ShutdownKill {
		a.shutdownTasks()
	} else {
		a.detachTasks()
	}
	a.stopExecutorServers()
	if c, ok := a.plugins.Executors.(executorCloser); ok {
		// Kept tasks keep their executor process for the next agent;
		// an executor with no task left goes.
		c.Close(a.cfg.OnShutdown != ShutdownKill)
	}
	a.flushUpdates(shutdownFlushTimeout)
	connCancel()
	bg.Wait()
	// Every executor is gone: drop the socket dir if pluginhost had to
	// move it out of a deep work dir.
	if err := pluginhost.ReleaseSocketDir(a.cfg.pluginDir()); err != nil {
		a.logger.Warn("could not remove executor socket dir", "error", err)
	}
	return nil
}

// sandboxGC removes the sandboxes of tasks the agent no longer tracks.
func (a *Agent) sandboxGC() *gc.Collector {
	return gc.New(gc.Options{
		Root:              a.cfg.sandboxRoot(),
		Delay:             a.cfg.GCDelay,
		DiskWatchInterval: a.cfg.DiskWatchInterval,
		Headroom:          a.cfg.GCDiskHeadroom,
		InUse: func(fw, task string) bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			_, ok := a.tasks[taskKey{fw, task}]
			return ok
		},
		FrameworkRemoved: a.forgetOwner,
		Logger:           a.logger.Named("sandbox-gc"),
	})
}

// shutdownFlushTimeout bounds how long a stopping agent waits for the
// master to acknowledge its last updates.
const shutdownFlushTimeout = 2 * time.Second

// flushUpdates waits, while connected, until every update is acknowledged.
func (a *Agent) flushUpdates(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for a.updates.Len() > 0 && time.Now().Before(deadline) {
		a.connMu.Lock()
		connected := a.out != nil
		a.connMu.Unlock()
		if !connected {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// baseURL turns the listen address into a URL others can reach: an
// unspecified host (0.0.0.0, ::) becomes the agent's hostname.
func baseURL(scheme string, addr net.Addr, hostname string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = hostname
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// recoverIsolator is an isolator host's onStart: it hands a fresh isolator
// instance the containers the agent knows it has and cleans up any it does
// not, then follows its limitations.
func (a *Agent) recoverIsolator(ctx context.Context, name string, iso isolator.Isolator) error {
	a.mu.Lock()
	var known []isolator.ContainerState
	for _, t := range a.tasks {
		if t.containerID != "" && !t.cleaned && t.isolator == name {
			known = append(known, isolator.ContainerState{ContainerID: t.containerID, Pid: t.pid, Resources: t.res})
		}
	}
	a.mu.Unlock()
	orphans, err := iso.Recover(ctx, a.ID(), known)
	if err != nil {
		return fmt.Errorf("isolator %q recover: %w", name, err)
	}
	go a.watchLimitations(name, iso)
	for _, id := range orphans {
		a.logger.Warn("cleaning up orphan container", "isolator", name, "container_id", id)
		if err := iso.Cleanup(ctx, id); err != nil {
			a.logger.Error("clean up orphan container", "container_id", id, "error", err)
		}
	}
	return nil
}

// shutdownTasks kills every task and waits until each is torn down.
func (a *Agent) shutdownTasks() {
	a.mu.Lock()
	a.stopping = true
	var live []*task
	for _, t := range a.tasks {
		if !t.terminal {
			live = append(live, t)
		}
	}
	a.mu.Unlock()
	if len(live) > 0 {
		a.logger.Info("agent stopping: killing tasks", "count", len(live))
	}
	for _, t := range live {
		a.killTask(t, a.graceFor(t, 0))
	}
	a.taskWG.Wait()
}
