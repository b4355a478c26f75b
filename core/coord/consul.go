package coord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/sdk/discovery"
)

// ConsulConfig is the HCL `consul { ... }` block.
type ConsulConfig struct {
	Address string // host:port of a Consul agent's HTTP API; default 127.0.0.1:8500
	Scheme  string // http or https; default http
	// Prefix is the KV prefix and service-name stem shared by the masters
	// of one cluster ("corral": lock at corral/leader, registry at
	// corral/registry, services corral-master and corral-agent).
	Prefix string
	Token  string // ACL token
	// TLS settings passed through to the Consul client.
	CAFile, CertFile, KeyFile, TLSServerName string
	InsecureSkipVerify                       bool
	// CheckTTL is the TTL of the master's own health check, which the
	// master refreshes every CheckTTL/4. A master killed with -9 loses its
	// session (and the lock) CheckTTL after its last refresh (standbys
	// see it sooner: they probe the leader's listener, see probe.go).
	// Default 1s.
	CheckTTL time.Duration
	// MaxCheckTTL bounds how far the check's TTL grows while refreshes are
	// slow (a starved machine or a busy Consul: a healthy leader would
	// otherwise step down over and over); it shrinks back once they are
	// prompt (see Service.TTL). Default 5 x CheckTTL; equal to CheckTTL:
	// fixed.
	MaxCheckTTL time.Duration
	// LockDelay is Consul's lock-delay of the session: after the session is
	// invalidated, nobody can take the lock for this long. Default 100ms.
	LockDelay time.Duration
	// NoLeaderProbe turns off the standbys' probe of the leader's
	// listener (see probe.go), leaving failure detection to CheckTTL. For
	// deployments where a refused connection to a master's address does
	// not mean its process is gone (a proxy in front of the masters).
	NoLeaderProbe bool
}

func (c ConsulConfig) withDefaults() ConsulConfig {
	if c.Address == "" {
		c.Address = "127.0.0.1:8500"
	}
	if c.Prefix == "" {
		c.Prefix = "corral"
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	if c.CheckTTL <= 0 {
		c.CheckTTL = time.Second
	}
	if c.MaxCheckTTL < c.CheckTTL {
		c.MaxCheckTTL = 5 * c.CheckTTL
	}
	if c.LockDelay <= 0 {
		c.LockDelay = 100 * time.Millisecond
	}
	return c
}

// Client returns a Consul API client for c.
func (c ConsulConfig) Client() (*api.Client, error) {
	c = c.withDefaults()
	// Pooled: the check refreshes reuse kept-alive connections instead of
	// opening one per request, which a loaded machine makes slow.
	cfg := api.DefaultConfig()
	cfg.Address = c.Address
	if c.Scheme != "" {
		cfg.Scheme = c.Scheme
	}
	cfg.Token = c.Token
	cfg.TLSConfig = api.TLSConfig{Address: c.TLSServerName, CAFile: c.CAFile, CertFile: c.CertFile,
		KeyFile: c.KeyFile, InsecureSkipVerify: c.InsecureSkipVerify}
	// A Consul that stops answering must not wedge the refresher: each
	// call is bounded by its context, and this bounds the rest.
	cfg.WaitTime = 5 * time.Second
	cl, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", c.Address, err)
	}
	return cl, nil
}

// ServiceName is the Consul service name of a kind ("master", "agent")
// under prefix.
func ServiceName(prefix, kind string) string {
	return strings.ReplaceAll(strings.Trim(prefix, "/"), "/", "-") + "-" + kind
}

// LeaderKey is the KV key of the leader lock; its value is the leader's
// address. Clients read it through sdk/discovery.
func LeaderKey(prefix string) string { return discovery.LeaderKey(prefix) }

// Consul elects a master through a Consul lock and keeps the registry in
// Consul KV.
type Consul struct {
	cfg    ConsulConfig
	client *api.Client
	log    hclog.Logger
	id     string // this master's service ID
	addr   string // this master's address, the lock's value

	checkID string
	svc     *Service

	mu      sync.Mutex
	session string // "" until Campaign creates one
	term    *consulTerm
	closing bool   // Close is deregistering: no more tag updates
	probe   *probe // the probe of the lock holder while campaigning
}

// NewConsul registers this master (ID id, serving at addr) as a Consul
// service with a TTL check it keeps refreshing, ready to Campaign.
func NewConsul(ctx context.Context, cfg ConsulConfig, id, addr string, meta map[string]string, log hclog.Logger) (*Consul, error) {
	cfg = cfg.withDefaults()
	cl, err := cfg.Client()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	c := &Consul{cfg: cfg, client: cl, log: log, id: id, addr: addr}
	svc, err := RegisterService(ctx, cl, ServiceSpec{
		ID: id, Name: ServiceName(cfg.Prefix, "master"), Address: addr, Tags: []string{"standby"},
		Meta: meta, TTL: cfg.CheckTTL, MaxTTL: cfg.MaxCheckTTL,
	}, log)
	if err != nil {
		return nil, err
	}
	c.svc = svc
	c.checkID = svc.CheckID()
	return c, nil
}

// stepDownMargin is how long before the session could expire on Consul's
// side a leader gives up when its refreshes are not getting through. The
// check goes critical its TTL after Consul last heard from us, which is
// no earlier than when we sent our last successful refresh.
func stepDownMargin(ttl time.Duration) time.Duration { return ttl / 4 }

// Campaign implements Coordinator.
func (c *Consul) Campaign(ctx context.Context) (Term, error) {
	key := LeaderKey(c.cfg.Prefix)
	defer c.stopProbe()
	backoff := 50 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, retryAfter, err := c.tryAcquire(ctx, key)
		if t != nil {
			return t, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.log.Warn("campaign: consul error; retrying", "error", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return nil, ctx.Err()
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if retryAfter > 0 && !sleep(ctx, retryAfter) {
			return nil, ctx.Err()
		}
	}
}

// tryAcquire makes one attempt at the lock. With the lock held by another
// session it waits (a blocking query) until the lock changes, and returns
// to let Campaign try again.
func (c *Consul) tryAcquire(ctx context.Context, key string) (*consulTerm, time.Duration, error) {
	sid, err := c.ensureSession(ctx)
	if err != nil {
		return nil, 0, err
	}
	if err := c.svc.refresh(ctx); err != nil {
		return nil, 0, err
	}
	ok, _, err := c.client.KV().Acquire(&api.KVPair{Key: key, Value: []byte(c.addr), Session: sid},
		(&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("acquire %s: %w", key, err)
	}
	if ok {
		t := c.startTerm(sid, key)
		c.log.Info("elected leader", "session", sid, "key", key)
		return t, 0, nil
	}
	// Someone holds it, or it is in its lock-delay: wait for a change.
	pair, meta, err := c.client.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if pair == nil || pair.Session == "" {
		// Free but refused: the lock-delay of a dead leader's session.
		return nil, c.cfg.LockDelay / 2, nil
	}
	if pair.Session == sid {
		// Already ours (a previous acquire whose answer we lost).
		return c.startTerm(sid, key), 0, nil
	}
	// Held by another master: watch its process (probe.go) while we wait.
	c.probeHolder(pair.Session, string(pair.Value))
	// Block until the key changes; the refresher keeps our check alive
	// meanwhile. The wait is short so a lost session is noticed.
	_, _, err = c.client.KV().Get(key, (&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 2 * time.Second}).WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: %w", key, err)
	}
	return nil, 0, nil
}

// ensureSession returns a live session tied to the master's TTL check and
// the node's serf health, creating one if needed.
func (c *Consul) ensureSession(ctx context.Context) (string, error) {
	c.mu.Lock()
	sid := c.session
	c.mu.Unlock()
	if sid != "" {
		se, _, err := c.client.Session().Info(sid, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return "", fmt.Errorf("session info: %w", err)
		}
		if se != nil {
			return sid, nil
		}
	}
	if err := c.svc.refresh(ctx); err != nil {
		return "", err
	}
	sid, _, err := c.client.Session().Create(&api.SessionEntry{
		Name:      ServiceName(c.cfg.Prefix, "master") + " " + c.id,
		Checks:    []string{"serfHealth", c.checkID},
		LockDelay: c.cfg.LockDelay,
		Behavior:  api.SessionBehaviorRelease,
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	c.mu.Lock()
	c.session = sid
	c.mu.Unlock()
	return sid, nil
}

func (c *Consul) startTerm(sid, key string) *consulTerm {
	ctx, cancel := context.WithCancel(context.Background())
	t := &consulTerm{c: c, sid: sid, key: key, lost: make(chan struct{}), cancel: cancel}
	c.mu.Lock()
	c.term = t
	c.mu.Unlock()
	c.svc.setTags([]string{"leader"})
	// A new leader is about to take the whole cluster back (every agent
	// and scheduler re-registers at once), the moment its refreshes are
	// most likely to be starved: it does not wait for a slow one to grow
	// its TTL. (Failover does not wait for the TTL: standbys probe the
	// leader's listener.)
	c.svc.grow("a new term: the cluster is re-registering")
	go t.keep(ctx)
	go t.watch(ctx)
	return t
}

// Leader implements Coordinator.
func (c *Consul) Leader(ctx context.Context) (string, error) {
	pair, _, err := c.client.KV().Get(LeaderKey(c.cfg.Prefix), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("read the leader key: %w", err)
	}
	if pair == nil || pair.Session == "" {
		return "", nil
	}
	return string(pair.Value), nil
}

// Registry implements Coordinator.
func (c *Consul) Registry() Store { return consulStore{c} }

// Close implements Coordinator: resign, destroy the session, deregister.
func (c *Consul) Close() error {
	c.mu.Lock()
	t, sid := c.term, c.session
	c.session = ""
	c.closing = true
	c.mu.Unlock()
	if t != nil {
		t.Resign()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if sid != "" {
		if _, err := c.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			errs = append(errs, fmt.Errorf("destroy session: %w", err))
		}
	}
	if err := c.svc.Deregister(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type consulTerm struct {
	c        *Consul
	sid      string
	key      string
	once     sync.Once
	stopOnce sync.Once
	lost     chan struct{}
	cancel   context.CancelFunc
}

func (t *consulTerm) Lost() <-chan struct{} { return t.lost }

// end closes the term once: the master steps down.
func (t *consulTerm) end(why string, kv ...any) {
	t.once.Do(func() {
		t.c.log.Warn("stepping down: "+why, kv...)
		t.stop()
		t.c.mu.Lock()
		if t.c.term == t {
			t.c.term = nil
		}
		// The session goes with the term: a master that stepped down
		// because Consul was unreachable must not find itself holding the
		// lock again when Consul comes back (its queued refreshes could
		// keep the session alive), leaderless.
		if t.c.session == t.sid {
			t.c.session = ""
		}
		closing := t.c.closing
		t.c.mu.Unlock()
		go t.c.destroySession(t.sid)
		if !closing {
			t.c.svc.setTags([]string{"standby"})
		}
	})
}

// destroySession retries until Consul confirms the session is gone; the
// lock it held is released (after the lock-delay, which keeps the old
// leader's in-flight actions from overlapping the next leader's).
func (c *Consul) destroySession(sid string) {
	backoff := 50 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx))
		cancel()
		if err == nil {
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
	c.log.Warn("could not destroy the old session; Consul expires it with the check", "session", sid)
}

// Resign releases the lock at once: a release (unlike an invalidated
// session) has no lock-delay, so a standby takes over immediately.
func (t *consulTerm) Resign() {
	select {
	case <-t.lost:
		return
	default:
	}
	// Stop acting first, then release: a release (unlike an invalidated
	// session) has no lock-delay, so a standby takes over at once.
	t.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := t.c.client.KV().Release(&api.KVPair{Key: t.key, Session: t.sid}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.c.log.Warn("releasing the leader lock failed; it goes with the session", "error", err)
	}
	t.end("resigned")
}

// stop closes Lost without touching Consul (Resign releases first).
func (t *consulTerm) stop() {
	t.stopOnce.Do(func() {
		t.cancel()
		close(t.lost)
	})
}

// keep ends the term when no check refresh has succeeded for long enough
// that the session could expire soon. The service's own loop refreshes
// every TTL/4; Consul cannot mark the check critical before
// LastRefresh + TTL (the TTL this process goes by is never above the one
// Consul holds), and we leave a margin before that.
func (t *consulTerm) keep(ctx context.Context) {
	tick := time.NewTicker(t.c.cfg.CheckTTL / 16)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ttl := t.c.svc.TTL()
		if last := t.c.svc.LastRefresh(); time.Since(last) > ttl-stepDownMargin(ttl) {
			t.end("no successful check refresh in time; the session may expire", "ttl", ttl, "last_refresh", last)
			return
		}
	}
}

// watch ends the term as soon as the lock is no longer held by our session
// (invalidated by Consul, released by an operator).
func (t *consulTerm) watch(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		pair, meta, err := t.c.client.KV().Get(t.key, (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Second,
			RequireConsistent: true}).WithContext(ctx))
		if err != nil {
			if !sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		if pair == nil || pair.Session != t.sid {
			holder := ""
			if pair != nil {
				holder = pair.Session
			}
			t.c.mu.Lock()
			if t.c.session == t.sid {
				t.c.session = "" // invalidated: Campaign creates a new one
			}
			t.c.mu.Unlock()
			t.end("the leader lock is no longer ours", "holder_session", holder)
			return
		}
		index = meta.LastIndex
	}
}

// consulStore is the registry in KV at <prefix>/registry. Writes are a
// transaction that first checks the leader lock is held by this master's
// session, so a deposed leader's write fails.
type consulStore struct{ c *Consul }

func (s consulStore) key() string { return s.c.cfg.Prefix + "/registry" }

func (s consulStore) String() string { return "consul:" + s.key() }

func (s consulStore) Load(ctx context.Context) ([]byte, error) {
	pair, _, err := s.c.client.KV().Get(s.key(), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("master registry %s: %w", s, err)
	}
	if pair == nil {
		return nil, nil
	}
	return pair.Value, nil
}

func (s consulStore) Store(ctx context.Context, data []byte) error {
	s.c.mu.Lock()
	t := s.c.term
	s.c.mu.Unlock()
	if t == nil {
		return fmt.Errorf("master registry %s: %w", s, ErrNotLeader)
	}
	ok, resp, _, err := s.c.client.Txn().Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: t.key, Session: t.sid}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: s.key(), Value: data}},
	}, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("master registry %s: %w", s, err)
	}
	if !ok {
		var why []string
		if resp != nil {
			for _, e := range resp.Errors {
				why = append(why, e.What)
			}
		}
		return fmt.Errorf("master registry %s: the leader lock is not held by this master (%s): %w",
			s, strings.Join(why, "; "), ErrNotLeader)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
