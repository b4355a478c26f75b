package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/agent"
	"github.com/corral-project/corral/core/api"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// daemonFlags override the config file for the common cases, so that
// several agents can run on one machine without a file each.
type daemonFlags struct {
	config, pluginDir, logLevel             string
	logJSON                                 bool
	masterAddr, agentAddr, workDir, resList string
	// role is the daemon's mode: master, agent or dev.
	role string
}

func runDaemon(ctx context.Context, role string, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("corral "+role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := daemonFlags{role: role}
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
	if role != "master" {
		fs.StringVar(&f.agentAddr, "address", "", "agent HTTP address host:port (overrides agent.address)")
		fs.StringVar(&f.resList, "resources", "", `agent resources, e.g. "cpus:4;mem:4096" (overrides agent.resources)`)
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "corral %s: %v\n", role, err)
		return 2
	}
	log := conf.NewLogger(cfg, "corral")
	catalog := pluginhost.NewCatalog(cfg.PluginDir, cfg.Plugins)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	// ready carries the master's real address: in dev mode the agent dials
	// it, which makes "-master 127.0.0.1:0" work.
	ready := make(chan string, 1)
	if role == "dev" || role == "master" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- runMaster(ctx, cfg, catalog, log.Named("master"), ready)
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
			errc <- runAgent(ctx, cfg, catalog, log.Named("agent"))
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

// runMaster starts the allocator plugin and serves the master until ctx ends.
func runMaster(ctx context.Context, cfg *conf.Config, catalog *pluginhost.Catalog, log hclog.Logger, ready chan<- string) error {
	mc := cfg.Master
	spec, err := catalog.Resolve(base.KindAllocator, mc.Allocator)
	if err != nil {
		return fmt.Errorf("allocator plugin: %w", err)
	}
	source := &supervisedAllocator{spec: spec}
	// The master re-Inits a new plugin process by itself: it notices the
	// generation change on its next cycle.
	sup := pluginhost.NewSupervisor(spec, pluginhost.Options{Logger: log.Named("pluginhost")}, nil)
	if err := sup.Start(ctx); err != nil {
		return fmt.Errorf("allocator plugin: %w", err)
	}
	defer sup.Stop()
	source.sup = sup

	roles := map[string]master.RoleConfig{}
	for _, r := range mc.Roles {
		roles[r.Name] = master.RoleConfig{Weight: r.Weight, Priority: r.Priority, Guarantee: r.Guarantee, Limit: r.Limit}
	}
	m, err := master.New(master.Config{
		AllocationInterval:     mc.AllocationInterval,
		AllocatorTimeout:       mc.AllocatorTimeout,
		OfferTimeout:           mc.OfferTimeout,
		HeartbeatInterval:      mc.HeartbeatInterval,
		AgentReregisterTimeout: mc.AgentReregisterTimeout,
		MaxMessageBytes:        mc.MaxMessageBytes,
		Roles:                  roles,
		RegistryPath:           filepath.Join(mc.WorkDir, "registry.json"),
		RevokeAfter:            mc.RevokeAfter,
		RevokeGrace:            mc.RevokeGrace,
	}, master.Deps{Logger: log, Allocator: source})
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}

	l, err := net.Listen("tcp", mc.Address)
	if err != nil {
		return fmt.Errorf("master: listen on %s: %w", mc.Address, err)
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(mc.MaxMessageBytes + 64<<10))
	corralpb.RegisterSchedulerServer(g, m.SchedulerAPI())
	agentproto.RegisterAgentGatewayServer(g, m.AgentGateway())

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	log.Info("master listening", "operator_api", "http://"+l.Addr().String(), "allocator", spec.Name, "plugin", spec.Path)
	fmt.Fprintf(os.Stderr, "corral master: operator API at http://%s (allocator %q)\n", l.Addr(), spec.Name)
	ready <- l.Addr().String()
	err = api.Serve(ctx, l, g, api.Handler(m), log)
	g.Stop()
	wg.Wait()
	return err
}

// runAgent runs an agent until ctx ends; the agent cleans up its tasks.
func runAgent(ctx context.Context, cfg *conf.Config, catalog *pluginhost.Catalog, log hclog.Logger) error {
	ac := cfg.Agent
	res, err := resources.Parse(ac.Resources)
	if err != nil {
		return fmt.Errorf("agent resources: %w", err)
	}
	a, err := agent.New(agent.Config{
		Master: ac.Master, Address: ac.Address, WorkDir: ac.WorkDir, Hostname: ac.Hostname, Resources: res,
		Attributes: ac.Attributes, Isolator: ac.Isolator, Isolators: ac.Isolators, Executor: ac.Executor,
		ExecutorShutdownGrace: ac.ExecutorShutdownGrace, StatusUpdateRetry: ac.StatusUpdateRetry,
	}, catalog, log)
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-a.Ready():
			fmt.Fprintf(os.Stderr, "corral agent: ready at %s (master %s)\n", a.URL(), ac.Master)
		case <-ctx.Done():
		}
	}()
	return a.Run(ctx)
}

// supervisedAllocator adapts the plugin supervisor to the master: every
// new plugin process gets a new generation, which makes the master re-Init.
type supervisedAllocator struct {
	spec pluginhost.Spec
	sup  *pluginhost.Supervisor

	mu   sync.Mutex
	last *pluginhost.Instance
	gen  uint64
}

func (s *supervisedAllocator) Current() (allocator.Allocator, master.PluginInfo, error) {
	info := master.PluginInfo{Name: s.spec.Name, Path: s.spec.Path}
	inst, err := s.sup.Current()
	s.mu.Lock()
	defer s.mu.Unlock()
	info.Generation = s.gen
	if err != nil {
		return nil, info, err
	}
	if inst != s.last {
		s.last = inst
		s.gen++
		info.Generation = s.gen
	}
	info.Version = inst.Info().Version
	info.Pid = inst.Pid()
	a, ok := inst.Raw().(allocator.Allocator)
	if !ok {
		return nil, info, fmt.Errorf("plugin %s does not implement the allocator interface", s.spec.Path)
	}
	return a, info, nil
}
