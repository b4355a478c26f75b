package coord

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// ServiceSpec describes a corral process registered in Consul's catalog.
type ServiceSpec struct {
	ID, Name string
	Address  string // host:port
	Tags     []string
	Meta     map[string]string
	// TTL of the process's own health check, refreshed every TTL/4 while
	// the process lives. Default 1s.
	TTL time.Duration
	// MaxTTL, when above TTL, lets the check's TTL grow under load (see
	// Service.TTL): a refresh that takes more than a quarter of the TTL
	// doubles it, up to MaxTTL; after a minute of prompt refreshes it
	// halves back towards TTL. 0: fixed at TTL.
	MaxTTL time.Duration
}

// Service is a registered service whose TTL check this process keeps
// passing. A process killed with -9 stops refreshing, so its check goes
// critical TTL later (and Consul removes it 1 minute after that).
type Service struct {
	client  *api.Client
	spec    ServiceSpec
	checkID string
	log     hclog.Logger

	mu     sync.Mutex
	lastOK time.Time // when the last successful refresh was sent
	// ttl is the TTL this process goes by. It is never above the TTL
	// Consul holds for the check: a longer TTL is adopted only after
	// Consul confirmed it, a shorter one before it is asked for.
	ttl      time.Duration
	tags     []string
	lastSlow time.Time // when a refresh last took over ttl/4
	resizing bool
	cancel   context.CancelFunc
	done     chan struct{}

	// regMu orders registrations, so the TTL Consul ends up with is the
	// one of the last registration this process made.
	regMu sync.Mutex
}

// RegisterService registers spec with the local Consul agent and keeps its
// check passing until Deregister.
func RegisterService(ctx context.Context, client *api.Client, spec ServiceSpec, log hclog.Logger) (*Service, error) {
	if spec.TTL <= 0 {
		spec.TTL = time.Second
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Service{client: client, spec: spec, checkID: "service:" + spec.ID, log: log, done: make(chan struct{}),
		ttl: spec.TTL, tags: spec.Tags}
	if err := s.register(ctx, spec.Tags, spec.TTL); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.refreshLoop(rctx)
	return s, nil
}

// register (re-)registers the service with tags and a check TTL, and
// adopts ttl as described on Service.ttl.
// nil tags keep the current ones.
func (s *Service) register(ctx context.Context, tags []string, ttl time.Duration) error {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if tags == nil {
		s.mu.Lock()
		tags = s.tags
		s.mu.Unlock()
	}
	host, portStr, err := net.SplitHostPort(s.spec.Address)
	if err != nil {
		return fmt.Errorf("consul service %s: address %q: %w", s.spec.ID, s.spec.Address, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("consul service %s: address %q: port: %w", s.spec.ID, s.spec.Address, err)
	}
	reg := &api.AgentServiceRegistration{
		ID: s.spec.ID, Name: s.spec.Name, Address: host, Port: port, Tags: tags, Meta: s.spec.Meta,
		Check: &api.AgentServiceCheck{
			CheckID: s.checkID, Name: s.spec.Name + " process", TTL: ttl.String(),
			Status: api.HealthPassing,
			// A dead process's entry is cleaned up after a while.
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	s.mu.Lock()
	if ttl < s.ttl {
		s.ttl = ttl // shorter: go by it before Consul does
	}
	s.mu.Unlock()
	// The registration passes the check: Consul's TTL runs from when it
	// handled it, which is no earlier than when it was sent.
	sent := time.Now()
	if err := s.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: register service %s: %w", s.spec.ID, err)
	}
	s.mu.Lock()
	if sent.After(s.lastOK) {
		s.lastOK = sent
	}
	if ttl > s.ttl {
		s.ttl = ttl // longer: go by it once Consul has it
	}
	s.tags = tags
	s.mu.Unlock()
	return nil
}

// TTL is the check TTL this process goes by now: Consul cannot mark the
// check critical before LastRefresh + TTL.
func (s *Service) TTL() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttl
}

// slowRefresh notes a refresh that took rtt and grows the TTL when rtt
// is over a quarter of it: on a starved machine (or a busy Consul) a
// fixed short TTL makes a healthy leader step down over and over. Growing
// costs nothing in failover time when the leader is killed (standbys
// probe its listener, see probe.go); it delays only the detection of a
// hung or cut-off leader.
func (s *Service) slowRefresh(rtt time.Duration) {
	s.mu.Lock()
	if rtt <= s.ttl/4 {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.grow(fmt.Sprintf("a check refresh took %s", rtt.Round(time.Millisecond)))
}

// grow doubles the TTL (up to MaxTTL) in the background, and holds off
// shrinking it for a minute.
func (s *Service) grow(why string) {
	s.mu.Lock()
	s.lastSlow = time.Now()
	grow := s.spec.MaxTTL > s.ttl && !s.resizing
	ttl := min(2*s.ttl, s.spec.MaxTTL)
	if grow {
		s.resizing = true
	}
	s.mu.Unlock()
	if grow {
		go s.resize(ttl, why)
	}
}

// maybeShrink halves a grown TTL after a minute of prompt refreshes.
func (s *Service) maybeShrink() {
	s.mu.Lock()
	shrink := s.ttl > s.spec.TTL && !s.resizing && time.Since(s.lastSlow) > time.Minute
	ttl := max(s.ttl/2, s.spec.TTL)
	if shrink {
		s.resizing = true
	}
	s.mu.Unlock()
	if shrink {
		go s.resize(ttl, "check refreshes prompt for a minute")
	}
}

func (s *Service) resize(ttl time.Duration, why string) {
	defer func() {
		s.mu.Lock()
		s.resizing = false
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.register(ctx, nil, ttl); err != nil {
		s.log.Warn("changing the check TTL failed", "check", s.checkID, "ttl", ttl, "error", err)
		return
	}
	s.log.Info("check TTL changed", "check", s.checkID, "ttl", ttl, "reason", why)
}

// CheckID is the ID of the service's TTL check.
func (s *Service) CheckID() string { return s.checkID }

// refresh marks the check passing once.
func (s *Service) refresh(ctx context.Context) error {
	sent := time.Now()
	if err := s.client.Agent().UpdateTTLOpts(s.checkID, "alive", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		s.slowRefresh(time.Since(sent))
		return fmt.Errorf("consul: refresh check %s: %w", s.checkID, err)
	}
	s.slowRefresh(time.Since(sent))
	s.mu.Lock()
	if sent.After(s.lastOK) {
		s.lastOK = sent
	}
	s.mu.Unlock()
	return nil
}

// LastRefresh is when the last successful refresh was sent: Consul cannot
// have marked the check critical before LastRefresh + TTL.
func (s *Service) LastRefresh() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastOK
}

// refreshLoop sends a refresh every TTL/4 without waiting for the previous
// one to be answered: on a loaded machine one slow answer (Consul busy, a
// GC pause) must not delay the next refresh, or a healthy leader misses
// its TTL and steps down. At most maxRefreshesInFlight are outstanding.
func (s *Service) refreshLoop(ctx context.Context) {
	defer close(s.done)
	const maxRefreshesInFlight = 4
	tick := time.NewTimer(s.TTL() / 4)
	defer tick.Stop()
	slots := make(chan struct{}, maxRefreshesInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ttl := s.TTL()
		tick.Reset(ttl / 4)
		s.maybeShrink()
		select {
		case slots <- struct{}{}:
		default:
			s.log.Debug("consul check refreshes unanswered; skipping one", "check", s.checkID, "in_flight", maxRefreshesInFlight)
			s.slowRefresh(ttl)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			rctx, cancel := context.WithTimeout(ctx, ttl)
			err := s.refresh(rctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.log.Debug("consul check refresh failed", "check", s.checkID, "error", err)
			}
		}()
	}
}

// setTags re-registers the service with new tags (leader/standby), in the
// background: tags are for people and dashboards, not for correctness.
func (s *Service) setTags(tags []string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.register(ctx, tags, s.TTL()); err != nil {
			s.log.Warn("updating the service tags failed", "tags", tags, "error", err)
		}
	}()
}

// Deregister stops refreshing and removes the service and its check.
func (s *Service) Deregister(ctx context.Context) error {
	s.cancel()
	<-s.done
	if err := s.client.Agent().ServiceDeregisterOpts(s.spec.ID, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: deregister service %s: %w", s.spec.ID, err)
	}
	return nil
}
