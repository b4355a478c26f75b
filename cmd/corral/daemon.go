package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/agent"
	"github.com/corral-project/corral/core/api/mesos"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/sdk/resources"
)

// daemonFlags override the config file for the common cases, so that
// several agents can run on one machine without a file each.
type daemonFlags struct {
	config, pluginDir, logLevel             string
	logJSON                                 bool
	masterAddr, agentAddr, workDir, resList string
	recoverMode, onShutdown                 string // agent: -recover, -on-shutdown
	allowRootTasks                          *bool  // agent: -allow-root-tasks; nil when not given
	// role is the daemon's mode: master, agent or dev.
	role string
	// emulate > 0 runs that many emulated agents instead of a real one.
	emulate int
}

// daemonFlagSet declares the flags of corral ROLE (master, agent, dev).
func daemonFlagSet(role string) (*flag.FlagSet, *daemonFlags) {
	fs := flag.NewFlagSet("corral "+role, flag.ContinueOnError)
	f := &daemonFlags{role: role}
	fs.StringVar(&f.config, "config", "", "HCL config file (default: embedded defaults)")
	fs.StringVar(&f.pluginDir, "plugin-dir", "", "directory of plugin binaries (overrides plugin_dir)")
	fs.StringVar(&f.logLevel, "log-level", "", "trace|debug|info|warn|error (overrides log_level)")
	fs.BoolVar(&f.logJSON, "log-json", false, "log JSON instead of text")
	fs.StringVar(&f.masterAddr, "master", "", "master address host:port (master: listen; agent: connect)")
	switch role {
	case "master":
		fs.StringVar(&f.workDir, "work-dir", "", "master work dir, holding registry.json (overrides master.work_dir)")
	case "dev":
		fs.StringVar(&f.workDir, "work-dir", "", "work dir of the agent; the master's is its master/ subdirectory (overrides agent.work_dir and master.work_dir)")
	default:
		fs.StringVar(&f.workDir, "work-dir", "", "agent work dir (overrides agent.work_dir)")
	}
	if role == "agent" {
		fs.IntVar(&f.emulate, "emulate", 0, "run N emulated agents in this process (tasks are timers; see core/agent/emulate)")
	}
	if role != "master" {
		fs.StringVar(&f.recoverMode, "recover", "reconnect", "reconnect: reattach to the tasks the agent's checkpoint names; cleanup: kill them, discard the checkpoint and start under a new agent ID")
		fs.StringVar(&f.onShutdown, "on-shutdown", "", `keep|kill: leave tasks running or kill them when the agent stops (overrides agent.on_shutdown; default keep, kill for dev)`)
		fs.StringVar(&f.agentAddr, "address", "", "agent HTTP address host:port (overrides agent.address)")
		fs.Var(optionalBool{&f.allowRootTasks}, "allow-root-tasks", "run tasks as root (uid 0), asked for or by naming no user on a root agent (overrides agent.allow_root_tasks; default: allowed without an acl block and for dev, refused with one)")
		fs.StringVar(&f.resList, "resources", "", `agent resources, e.g. "cpus:4;mem:4096" (overrides agent.resources)`)
	}
	return fs, f
}

// daemonCmd is corral dev and corral master (corral agent is agentCmd).
func daemonCmd(ctx context.Context, role, short string) *cobra.Command {
	fs, f := daemonFlagSet(role)
	c := command(role, short, "usage: corral "+role+" [flags]\n", fs, func(cmd *cobra.Command, args []string) int {
		if len(args) > 0 {
			return failUsage(cmd, usagef("%s takes no arguments, got %q", role, args))
		}
		return startDaemon(ctx, *f, cmd.ErrOrStderr())
	})
	c.Flags().SortFlags = false
	return c
}

// runDaemon parses args and runs the daemon (tests and callers that have
// a command line).
func runDaemon(ctx context.Context, role string, args []string, stderr io.Writer) int {
	fs, f := daemonFlagSet(role)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return startDaemon(ctx, *f, stderr)
}

// startDaemon runs a master, an agent or both until ctx ends.
func startDaemon(ctx context.Context, f daemonFlags, stderr io.Writer) int {
	role := f.role
	cfg, err := loadConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "corral %s: %v\n", role, err)
		return 2
	}
	if role == "dev" && f.workDir == "" && f.config == "" {
		// A fresh cluster each time: two checkouts (or two runs) must not
		// share an agent ID, sandboxes or a registry in a fixed /tmp path.
		dir, err := os.MkdirTemp("", "corral-dev-")
		if err != nil {
			fmt.Fprintf(stderr, "corral dev: creating a work dir: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		cfg.Agent.WorkDir, cfg.Master.WorkDir = dir, filepath.Join(dir, "master")
		fmt.Fprintf(stderr, "corral dev: work dir %s (removed on exit; -work-dir keeps one)\n", dir)
	}
	log := conf.NewLogger(cfg, "corral")
	catalog := pluginhost.NewCatalog(cfg.PluginDir, cfg.Plugins)
	reload := func() (*conf.Config, error) { return loadConfig(f) }

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	// ready carries the master's real address: in dev mode the agent dials
	// it, which makes "-master 127.0.0.1:0" work.
	ready := make(chan string, 1)
	announceACLs(cfg, role, stderr, log)
	if role == "dev" || role == "master" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- runMaster(ctx, cfg, reload, log.Named("master"), ready)
		}()
	} else {
		ready <- cfg.Agent.Master
	}
	if role == "dev" || role == "agent" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case addr := <-ready:
				cfg.Agent.Master = addr
			case <-ctx.Done():
				errc <- nil
				return
			}
			if f.emulate > 0 {
				errc <- runEmulated(ctx, cfg, f.emulate, log.Named("agent"))
				return
			}
			errc <- runAgent(ctx, cfg, catalog, reload, log.Named("agent"), f.recoverMode)
		}()
	}
	err = <-errc
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped", "error", err)
		fmt.Fprintf(stderr, "corral %s: %v\n", role, err)
		return 1
	}
	return 0
}

func loadConfig(f daemonFlags) (*conf.Config, error) {
	cfg := conf.Default()
	if f.config != "" {
		var err error
		if cfg, err = conf.Load(f.config); err != nil {
			return nil, err
		}
	}
	if f.pluginDir != "" {
		cfg.PluginDir = f.pluginDir
	} else if _, err := os.Stat(cfg.PluginDir); err != nil {
		// Fall back to the plugins built next to this binary (bin/plugins).
		if exe, err := os.Executable(); err == nil {
			if dir := filepath.Join(filepath.Dir(exe), "plugins"); dirExists(dir) {
				cfg.PluginDir = dir
			}
		}
	}
	if f.logLevel != "" {
		cfg.LogLevel = f.logLevel
	}
	if f.logJSON {
		cfg.LogJSON = true
	}
	if f.masterAddr != "" {
		cfg.Master.Address = f.masterAddr
		cfg.Agent.Master = f.masterAddr
	}
	if f.agentAddr != "" {
		cfg.Agent.Address = f.agentAddr
	}
	if f.workDir != "" {
		switch f.role {
		case "master":
			cfg.Master.WorkDir = f.workDir
		case "dev":
			// The master's registry must follow the work dir too: separate
			// dev clusters (tests start many) must never share registry.json.
			// master/ does not collide with the agent's own entries
			// (sandboxes/, plugins/, agent_id, its checkpoint store).
			cfg.Agent.WorkDir = f.workDir
			cfg.Master.WorkDir = filepath.Join(f.workDir, "master")
		default:
			cfg.Agent.WorkDir = f.workDir
		}
	}
	if f.onShutdown != "" {
		cfg.Agent.OnShutdown = f.onShutdown
	}
	if cfg.Agent.OnShutdown == "" && f.role == "dev" {
		cfg.Agent.OnShutdown = agent.ShutdownKill
	}
	if f.allowRootTasks != nil {
		cfg.Agent.AllowRootTasks = f.allowRootTasks
	}
	if cfg.Agent.AllowRootTasks == nil && f.role == "dev" {
		allow := true // a throwaway cluster on one's own machine
		cfg.Agent.AllowRootTasks = &allow
	}
	if f.resList != "" {
		if _, err := resources.Parse(f.resList); err != nil {
			return nil, fmt.Errorf("-resources: %w", err)
		}
		cfg.Agent.Resources = f.resList
	}
	if abs, err := filepath.Abs(cfg.PluginDir); err == nil {
		cfg.PluginDir = abs
	}
	return cfg, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// runMaster serves a master until ctx ends. SIGHUP re-reads the
// configuration (reload) and applies a changed allocator, plugin config or
// roles without a restart. With a consul block the master is one of
// several: see runHA.
func runMaster(ctx context.Context, cfg *conf.Config, reload func() (*conf.Config, error), log hclog.Logger, ready chan<- string) error {
	mc := cfg.Master
	l, err := net.Listen("tcp", mc.Address)
	if err != nil {
		return fmt.Errorf("master: listen on %s: %w", mc.Address, err)
	}
	addr := l.Addr().String()
	co, err := newCoordinator(ctx, cfg, addr, log)
	if err != nil {
		l.Close()
		return err
	}
	defer func() {
		if err := co.Close(); err != nil {
			log.Warn("leaving the coordination service", "error", err)
		}
	}()
	return runHA(ctx, &haMaster{cfg: cfg, reload: reload, log: log, co: co, addr: addr, ready: ready,
		standalone: cfg.Consul == nil}, l)
}

// masterConfig maps the HCL master block to the master's settings.
func masterConfig(cfg *conf.Config) master.Config {
	mc := cfg.Master
	return master.Config{
		AllocationInterval:           mc.AllocationInterval,
		AllocatorTimeout:             mc.AllocatorTimeout,
		AllocatorInitTimeout:         mc.AllocatorInitTimeout,
		OfferTimeout:                 mc.OfferTimeout,
		HeartbeatInterval:            mc.HeartbeatInterval,
		AgentReregisterTimeout:       mc.AgentReregisterTimeout,
		MaxMessageBytes:              mc.MaxMessageBytes,
		Roles:                        masterRoles(cfg),
		RegistryPath:                 registryPath(cfg),
		RevokeAfter:                  mc.RevokeAfter,
		RevokeGrace:                  mc.RevokeGrace,
		FrameworkCallRate:            mc.FrameworkCallRate,
		FrameworkCallBurst:           mc.FrameworkCallBurst,
		MaxSubscriptionsPerPrincipal: mc.MaxSubscriptionsPerPrincipal,
		Allocator:                    master.AllocatorChoice{Name: mc.Allocator},
		ACLs:                         cfg.ACL,
	}
}

func masterRoles(cfg *conf.Config) map[string]master.RoleConfig {
	roles := map[string]master.RoleConfig{}
	for _, r := range cfg.Master.Roles {
		roles[r.Name] = master.RoleConfig{Weight: r.Weight, Priority: r.Priority, Guarantee: r.Guarantee, Limit: r.Limit}
	}
	return roles
}

// reloadOnHUP applies the re-read configuration on every SIGHUP. A file
// with errors is reported and changes nothing.
func reloadOnHUP(ctx context.Context, m *master.Master, launcher *master.PluginLauncher, reload func() (*conf.Config, error), log hclog.Logger) {
	onHUP(ctx, reload, log, "nothing changed", func(cfg *conf.Config) {
		launcher.SetPlugins(cfg.PluginDir, cfg.Plugins)
		res, err := m.Reload(ctx, master.Reload{Allocator: master.AllocatorChoice{Name: cfg.Master.Allocator}, Roles: masterRoles(cfg)})
		if err != nil {
			log.Error("SIGHUP: reload refused", "error", err)
			return
		}
		log.Info("SIGHUP: configuration reloaded", "roles_changed", res.Roles, "roles_kept_runtime", res.Kept,
			"allocator_swap", res.Swap != nil)
	})
}

// onHUP re-reads the configuration on every SIGHUP until ctx ends and
// hands a file that parses to apply; one with errors is logged, saying
// that unchanged is what stays so, and applies nothing.
func onHUP(ctx context.Context, reload func() (*conf.Config, error), log hclog.Logger, unchanged string, apply func(*conf.Config)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := reload()
		if err != nil {
			log.Error("SIGHUP: the configuration has errors; "+unchanged, "error", err)
			continue
		}
		apply(cfg)
	}
}

// reloadAgentOnHUP gives the agent the ACLs and credentials of the
// re-read configuration on every SIGHUP, as the master takes its own, so
// that a revoked secret stops opening sandboxes on the agent too. A file
// with errors changes nothing; other agent settings need a restart.
func reloadAgentOnHUP(ctx context.Context, a *agent.Agent, reload func() (*conf.Config, error), log hclog.Logger) {
	onHUP(ctx, reload, log, "the agent's ACLs and credentials are unchanged", func(cfg *conf.Config) {
		a.SetSecurity(cfg.ACL, cfg.Credentials)
		log.Info("SIGHUP: agent ACLs and credentials replaced", "acls", cfg.ACL != nil, "credentials", cfg.Credentials.Len())
	})
}

// runAgent runs an agent until ctx ends; the agent cleans up its tasks.
func runAgent(ctx context.Context, cfg *conf.Config, catalog *pluginhost.Catalog, reload func() (*conf.Config, error), log hclog.Logger, recoverMode string) error {
	ac := cfg.Agent
	res, err := resources.Parse(ac.Resources)
	if err != nil {
		return fmt.Errorf("agent resources: %w", err)
	}
	a, err := agent.New(agent.Config{
		Master: ac.Master, Address: ac.Address, WorkDir: ac.WorkDir, Hostname: ac.Hostname, Resources: res,
		Attributes: ac.Attributes, Isolator: ac.Isolator, Isolators: ac.Isolators, Executor: ac.Executor,
		ExecutorShutdownGrace: ac.ExecutorShutdownGrace, StatusUpdateRetry: ac.StatusUpdateRetry,
		ExecutorIdleTimeout: ac.ExecutorIdleTimeout, ExecutorReregisterTimeout: ac.ExecutorReregisterTimeout,
		TLS: cfg.TLS, ACLs: cfg.ACL, Credentials: cfg.Credentials, AllowRootTasks: ac.AllowRootTasks, Credential: agentCredential(ac),
		OnShutdown: ac.OnShutdown, Recover: recoverMode,
		GCDelay: ac.GCDelay, DiskWatchInterval: ac.DiskWatchInterval, GCDiskHeadroom: ac.GCDiskHeadroom,
	}, catalog, log)
	if err != nil {
		return err
	}
	// Executors written for Mesos talk to the agent's /api/v1/executor.
	mesos.NewExecutorHandler(a, log.Named("mesos-executor")).Register(a)
	go reloadAgentOnHUP(ctx, a, reload, log)
	go func() {
		select {
		case <-a.Ready():
			fmt.Fprintf(os.Stderr, "corral agent: ready at %s (master %s)\n", a.URL(), ac.Master)
			if cfg.Consul != nil {
				registerAgentService(ctx, cfg, a.URL(), log)
			}
		case <-ctx.Done():
		}
	}()
	return a.Run(ctx)
}
