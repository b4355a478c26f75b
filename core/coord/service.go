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
	cancel context.CancelFunc
	done   chan struct{}
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
	s := &Service{client: client, spec: spec, checkID: "service:" + spec.ID, log: log, done: make(chan struct{})}
	if err := s.register(ctx, spec.Tags); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.refreshLoop(rctx)
	return s, nil
}

func (s *Service) register(ctx context.Context, tags []string) error {
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
			CheckID: s.checkID, Name: s.spec.Name + " process", TTL: s.spec.TTL.String(),
			Status: api.HealthPassing,
			// A dead process's entry is cleaned up after a while.
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	if err := s.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: register service %s: %w", s.spec.ID, err)
	}
	s.mu.Lock()
	s.lastOK = time.Now()
	s.mu.Unlock()
	return nil
}

// CheckID is the ID of the service's TTL check.
func (s *Service) CheckID() string { return s.checkID }

// refresh marks the check passing once.
func (s *Service) refresh(ctx context.Context) error {
	sent := time.Now()
	if err := s.client.Agent().UpdateTTLOpts(s.checkID, "alive", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: refresh check %s: %w", s.checkID, err)
	}
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
	tick := time.NewTicker(s.spec.TTL / 4)
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
		select {
		case slots <- struct{}{}:
		default:
			s.log.Debug("consul check refreshes unanswered; skipping one", "check", s.checkID, "in_flight", maxRefreshesInFlight)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			rctx, cancel := context.WithTimeout(ctx, s.spec.TTL)
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
		if err := s.register(ctx, tags); err != nil {
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
