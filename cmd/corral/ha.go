package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/agent/emulate"
	"github.com/corral-project/corral/core/api"
	"github.com/corral-project/corral/core/api/mesos"
	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/core/pluginhost"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// registryPath is the standalone registry file; with Consul the registry
// lives in KV instead.
func registryPath(cfg *conf.Config) string {
	if cfg.Consul != nil {
		return ""
	}
	return filepath.Join(cfg.Master.WorkDir, "registry.json")
}

func consulConfig(c *conf.Consul) coord.ConsulConfig {
	return coord.ConsulConfig{Address: c.Address, Scheme: c.Scheme, Prefix: c.Prefix, Token: c.Token,
		CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, TLSServerName: c.TLSServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, CheckTTL: c.CheckTTL, LockDelay: c.LockDelay}
}

// newCoordinator is standalone without a consul block, else a Consul
// candidate registered as a service (ID from its address, unique per
// cluster since two masters cannot share a port).
func newCoordinator(ctx context.Context, cfg *conf.Config, addr string, log hclog.Logger) (coord.Coordinator, error) {
	if cfg.Consul == nil {
		return &coord.Standalone{Address: addr, Store: coord.FileStore{Path: registryPath(cfg)}}, nil
	}
	cc := consulConfig(cfg.Consul)
	id := coord.ServiceName(cc.Prefix, "master") + "-" + strings.NewReplacer(":", "-", ".", "-").Replace(addr)
	co, err := coord.NewConsul(ctx, cc, id, addr, map[string]string{"version": version}, log.Named("coord"))
	if err != nil {
		return nil, fmt.Errorf("master: consul at %s: %w", cc.Address, err)
	}
	return co, nil
}

// haMaster is one master process: a standby until elected, then the
// leader until its term ends, then a standby again with fresh books.
type haMaster struct {
	cfg        *conf.Config
	reload     func() (*conf.Config, error)
	log        hclog.Logger
	co         coord.Coordinator
	addr       string
	ready      chan<- string
	standalone bool
	// announce prints the address and tells `corral dev` where to point
	// its agent, once.
	announce func()
	// authn authenticates callers on every master this process runs
	// (see authz.go).
	authnOnce sync.Once
	authn     *authn.Authenticator

	leaderMu   sync.Mutex
	leaderAt   time.Time
	leaderAddr string
}

// leader is the current leader's address for redirects, cached briefly so
// that a storm of redirected calls does not become a storm of Consul reads.
func (h *haMaster) leader() string {
	h.leaderMu.Lock()
	defer h.leaderMu.Unlock()
	if time.Since(h.leaderAt) < 200*time.Millisecond {
		return h.leaderAddr
	}
	// Short: redirects and /api/v1/state wait on it, and an unreachable
	// Consul must not stall them; the last answer stands meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if l, err := h.co.Leader(ctx); err == nil {
		h.leaderAddr = l
	} else {
		h.log.Debug("reading the leader", "error", err)
	}
	if h.leaderAddr == h.addr {
		// Our own stale lock: we are not leading, so do not redirect to us.
		h.leaderAddr = ""
	}
	h.leaderAt = time.Now()
	return h.leaderAddr
}

// standby is a standby's answer to "who leads?".
func (h *haMaster) standby() (bool, string) { return false, h.leader() }

// newMaster builds a master with empty books and starts its allocator
// plugin, so a standby is warm when elected. It returns the registry it
// was built from.
func (h *haMaster) newMaster(ctx context.Context) (*master.Master, *master.PluginLauncher, []byte, error) {
	cfg := h.cfg
	reg, err := h.co.Registry().Load(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("master: %w", err)
	}
	launcher := master.NewPluginLauncher(cfg.PluginDir, cfg.Plugins, pluginhost.Options{Logger: h.log.Named("pluginhost")})
	mcfg := masterConfig(cfg)
	if !h.standalone {
		mcfg.Registry = h.co.Registry()
	}
	m, err := master.New(mcfg, master.Deps{Logger: h.log, Launcher: launcher})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("master: %w", err)
	}
	if err := m.StartAllocator(ctx); err != nil {
		m.Close()
		return nil, nil, nil, err
	}
	return m, launcher, reg, nil
}

// newMasterRetry is newMaster for a running process: an unreachable
// Consul (the reason a leader often steps down) is waited out, not fatal.
// It fails only when ctx ends.
func (h *haMaster) newMasterRetry(ctx context.Context) (*master.Master, *master.PluginLauncher, []byte, error) {
	backoff := 100 * time.Millisecond
	for {
		m, l, reg, err := h.newMaster(ctx)
		if err == nil || ctx.Err() != nil {
			return m, l, reg, err
		}
		h.log.Warn("preparing the standby master failed; retrying", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func runHA(ctx context.Context, h *haMaster, l net.Listener) error {
	var sw api.Switch
	standbyGRPC := api.StandbyGRPC(h.leader)
	defer standbyGRPC.Stop()
	serverTLS, err := h.cfg.TLS.Server()
	if err != nil {
		l.Close()
		return fmt.Errorf("master: %w", err)
	}
	// The master reaches agents (sandbox proxy) with the same identity.
	clientTLS, err := h.cfg.TLS.Client()
	if err != nil {
		l.Close()
		return fmt.Errorf("master: %w", err)
	}
	mesosOpts := api.Options{Mesos: mesos.Options{Logger: h.log.Named("mesos"), Version: version}, AgentTLS: clientTLS,
		Authn: h.authenticator()}

	m, launcher, reg, err := h.newMaster(ctx)
	if err != nil {
		l.Close()
		return err
	}
	m.SetLeadership(h.standby)
	sw.Set(standbyGRPC, nil, api.Standby(api.HandlerWith(m, mesosOpts), h.leader))

	serveErr := make(chan error, 1)
	go func() { serveErr <- sw.Serve(ctx, l, serverTLS, h.log) }()
	h.announce = sync.OnceFunc(func() {
		active := m.AllocatorStatus().Active
		scheme := h.cfg.TLS.Scheme()
		h.log.Info("master listening", "operator_api", scheme+"://"+h.addr, "allocator", active.Name, "plugin", active.Path,
			"tls", serverTLS != nil, "verify_incoming", h.cfg.TLS.VerifyIncoming)
		fmt.Fprintf(os.Stderr, "corral master: operator API at %s://%s (allocator %q)\n", scheme, h.addr, active.Name)
		h.ready <- h.addr
	})
	if !h.standalone {
		// A standby is useful at once (reads, redirects); a standalone
		// master is announced when it leads, a moment later.
		h.announce()
	}

	for {
		if !h.standalone {
			h.log.Info("standing by; campaigning for leadership")
		}
		release := h.warmStandby(ctx)
		term, err := h.co.Campaign(ctx)
		won := time.Now()
		release()
		released := time.Since(won)
		if err != nil {
			m.Close()
			if ctx.Err() != nil {
				return <-serveErr
			}
			return fmt.Errorf("master: campaign: %w", err)
		}
		// A registry changed while we stood by (an operator's swap on the
		// old leader) makes the warm master stale: rebuild it.
		if now, err := h.co.Registry().Load(ctx); err != nil || !bytes.Equal(now, reg) {
			h.log.Info("the registry changed while standing by; rebuilding the master from it")
			m.Close()
			if m, launcher, reg, err = h.newMasterRetry(ctx); err != nil {
				term.Resign()
				return <-serveErr
			}
		}
		// How long leading took to begin after the election, and what of
		// it went to freeing the warm memory: the gap between the lock
		// and serving in make bench-ha.
		h.lead(ctx, term, m, launcher, mesosOpts, &sw, "since_elected", time.Since(won), "warm_release", released)
		if ctx.Err() != nil {
			term.Resign()
			return <-serveErr
		}
		// Stepped down: a standby again, with fresh books (soft state: the
		// next leader rebuilds them from agents and schedulers).
		if m, launcher, reg, err = h.newMasterRetry(ctx); err != nil {
			return <-serveErr
		}
		m.SetLeadership(h.standby)
		sw.Set(standbyGRPC, nil, api.Standby(api.HandlerWith(m, mesosOpts), h.leader))
	}
}

// warmStandby keeps memory warm for the failover burst while this master
// stands by (see master.HeapWarmer: sized from the agents in the
// registry); the function returned frees it, at once, when the campaign
// ends. A standalone master has no standby time to warm anything.
func (h *haMaster) warmStandby(ctx context.Context) (release func()) {
	if h.standalone {
		return func() {}
	}
	var w master.HeapWarmer
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		master.WarmStandby(ctx, h.co.Registry(), &w, 10*time.Second, h.log.Named("standby"))
	}()
	return func() {
		cancel()
		<-done
		w.Release()
	}
}

// lead serves m as the leader until the term ends or ctx does. When the
// term is lost the port switches to standby answers first (no call is
// accepted any more), then the master stops allocating and its streams
// close.
func (h *haMaster) lead(ctx context.Context, term coord.Term, m *master.Master, launcher *master.PluginLauncher,
	mo api.Options, sw *api.Switch, logArgs ...any) {
	termCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.SetLeadership(func() (bool, string) { return true, h.addr })
	g := grpc.NewServer(append(h.authenticator().ServerOptions(), grpc.MaxRecvMsgSize(h.cfg.Master.MaxMessageBytes+64<<10))...)
	corralpb.RegisterSchedulerServer(g, m.SchedulerAPI())
	agentproto.RegisterAgentGatewayServer(g, m.AgentGateway())
	standbyGRPC := api.StandbyGRPC(h.leader)
	defer standbyGRPC.Stop()
	sw.Set(g, termBound(termCtx, g), api.HandlerWith(m, mo))
	if !h.standalone {
		h.log.Info("leading", append([]any{"address", h.addr}, logArgs...)...)
	}
	h.announce()
	go profileTerm(termCtx, h.addr, h.log)

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = m.Run(termCtx) }()
	go func() { defer wg.Done(); reloadOnHUP(termCtx, m, launcher, h.reloadSecurity(m), h.log) }()
	go func() {
		defer wg.Done()
		select {
		case <-term.Lost():
			m.SetLeadership(h.standby)
			sw.Set(standbyGRPC, nil, api.Standby(api.HandlerWith(m, mo), h.leader))
			cancel()
		case <-termCtx.Done():
		}
	}()
	<-termCtx.Done()
	m.SetLeadership(h.standby)
	sw.Set(standbyGRPC, nil, api.Standby(api.HandlerWith(m, mo), h.leader))
	// Cut every stream of this term: agents and schedulers reconnect and
	// find the next leader. (termBound already ended them; Stop is
	// bounded all the same, so a stream gRPC still counts cannot keep this
	// master from standing by again.)
	stopped := make(chan struct{})
	go func() { g.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		h.log.Warn("the leader's gRPC server did not stop within 10s; standing by anyway")
	}
	wg.Wait()
}

// profileTerm writes a CPU profile of the first seconds of a term when
// CORRAL_MASTER_CPUPROFILE names a directory: where a new leader spends
// its time while the cluster re-registers (the failover benchmark).
// CORRAL_MASTER_CPUPROFILE_SECONDS sets the length (default 10).
func profileTerm(ctx context.Context, addr string, log hclog.Logger) {
	dir := os.Getenv("CORRAL_MASTER_CPUPROFILE")
	if dir == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv("CORRAL_MASTER_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 10
	}
	path := filepath.Join(dir, fmt.Sprintf("master-%s-%d.pprof", strings.ReplaceAll(addr, ":", "_"), time.Now().UnixMilli()))
	f, err := os.Create(path)
	if err != nil {
		log.Warn("cpu profile", "error", err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Warn("cpu profile", "error", err)
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(secs) * time.Second):
	}
	pprof.StopCPUProfile()
	log.Info("cpu profile of the term written", "path", path)
}

// termBound serves g's calls with contexts that end with the term when g
// is served through ServeHTTP (over TLS: one port for gRPC and HTTPS), where
// grpc.Server.Stop does not end streams in progress: an agent caught
// registering as the leader stepped down kept a stream to a master that no
// longer led, and Stop waited for it forever (seen with 10k agents).
func termBound(term context.Context, g http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, stop := context.WithCancel(r.Context())
		defer stop()
		defer context.AfterFunc(term, stop)()
		g.ServeHTTP(w, r.WithContext(ctx))
	})
}

// defaultEmulatedResources are an emulated agent's when neither -resources
// nor agent.resources names any.
const defaultEmulatedResources = "cpus:4;mem:8192;disk:10240;ports:[31000-32000]"

// runEmulated runs n emulated agents against the configured master(s).
func runEmulated(ctx context.Context, cfg *conf.Config, n int, log hclog.Logger) error {
	spec := cfg.Agent.Resources
	if spec == "" {
		spec = defaultEmulatedResources
	}
	res, err := resources.Parse(spec)
	if err != nil {
		return fmt.Errorf("agent resources: %w", err)
	}
	fl, err := emulate.New(emulate.Options{Master: cfg.Agent.Master, N: n, Resources: res,
		HostnamePrefix: cfg.Agent.Hostname, Attributes: cfg.Agent.Attributes,
		StatusRetry: cfg.Agent.StatusUpdateRetry, Logger: log})
	if err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if fl.Registered() == n {
				fmt.Fprintf(os.Stderr, "corral agent: %d emulated agents registered (master %s)\n", n, cfg.Agent.Master)
				return
			}
		}
	}()
	return fl.Run(ctx)
}

// registerAgentService registers the agent as a Consul service (name
// <prefix>-agent) with a TTL check this process refreshes, its resources
// and attributes as service metadata, until ctx ends. Discovery does not
// depend on it (agents find the master, not the reverse); it is for
// operators and their tools.
func registerAgentService(ctx context.Context, cfg *conf.Config, agentURL string, log hclog.Logger) {
	cc := consulConfig(cfg.Consul)
	client, err := cc.Client()
	if err != nil {
		log.Warn("not registered in consul", "error", err)
		return
	}
	addr := strings.TrimPrefix(agentURL, "http://")
	meta := map[string]string{"resources": cfg.Agent.Resources, "version": version}
	for k, v := range cfg.Agent.Attributes {
		meta["attr_"+metaKey.ReplaceAllString(k, "_")] = v
	}
	svc, err := coord.RegisterService(ctx, client, coord.ServiceSpec{
		ID:   coord.ServiceName(cc.Prefix, "agent") + "-" + strings.NewReplacer(":", "-", ".", "-").Replace(addr),
		Name: coord.ServiceName(cc.Prefix, "agent"), Address: addr, Meta: meta, TTL: cc.CheckTTL,
	}, log.Named("consul"))
	if err != nil {
		log.Warn("not registered in consul", "error", err)
		return
	}
	go func() {
		<-ctx.Done()
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = svc.Deregister(dctx)
	}()
}

// metaKey matches what Consul refuses in service metadata keys.
var metaKey = regexp.MustCompile(`[^A-Za-z0-9_-]`)
