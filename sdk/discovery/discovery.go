// Package discovery finds the leading corral master. A master address is
// given in one of three forms:
//
//	127.0.0.1:5050                      one master
//	10.0.0.1:5050,10.0.0.2:5050         several masters; any of them redirects to the leader
//	consul://127.0.0.1:8500/corral      ask Consul: the leader lock under the prefix "corral"
//
// Masters that do not lead answer gRPC calls with a redirect status naming
// the leader (NotLeader, LeaderFrom) and HTTP requests with 307. A Finder
// turns a spec into the next address to try and follows redirects, so that
// agents, schedulers and the CLI follow leader changes without a restart.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReasonNotLeader is the ErrorInfo reason of the redirect status.
const ReasonNotLeader = "NOT_LEADER"

// NotLeader is the gRPC error a non-leading master answers with. leader is
// the leader's host:port, "" while none is elected. The code is
// Unavailable, which clients retry.
func NotLeader(leader string) error {
	msg := "this master is not the leader; no leader is elected right now"
	if leader != "" {
		msg = "this master is not the leader; the leader is at " + leader
	}
	st := status.New(codes.Unavailable, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonNotLeader, Domain: "corral",
		Metadata: map[string]string{"leader": leader}}); err == nil {
		st = d
	}
	return st.Err()
}

// LeaderFrom reports whether err is a NotLeader redirect, and the leader it
// names ("" when none was elected).
func LeaderFrom(err error) (leader string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.Unavailable {
		return "", false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.GetReason() == ReasonNotLeader {
			return info.GetMetadata()["leader"], true
		}
	}
	return "", false
}

// Finder yields master addresses to try, leader first when it is known.
// It is safe for concurrent use.
type Finder struct {
	spec   string
	static []string
	consul *api.Client
	prefix string

	mu   sync.Mutex
	hint string // a leader a redirect named, tried next
	next int    // round-robin position in static
	// inflight coalesces concurrent Consul lookups (thousands of emulated
	// agents lose their master at once): one query per failed address.
	inflight map[string]*lookup
}

type lookup struct {
	done chan struct{}
	addr string
	err  error
}

// Parse reads a master spec (see the package doc).
func Parse(spec string) (*Finder, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("master address is empty")
	}
	f := &Finder{spec: spec}
	if strings.HasPrefix(spec, "consul://") {
		u, err := url.Parse(spec)
		if err != nil {
			return nil, fmt.Errorf("master %q: %w", spec, err)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("master %q: want consul://host:port/prefix", spec)
		}
		f.prefix = strings.Trim(u.Path, "/")
		if f.prefix == "" {
			f.prefix = "corral"
		}
		// Pooled: many goroutines (emulated agents) share the client.
		cfg := api.DefaultConfig()
		cfg.Address = u.Host
		if tok := u.Query().Get("token"); tok != "" {
			cfg.Token = tok
		}
		if u.Query().Get("tls") == "1" || u.Query().Get("scheme") == "https" {
			cfg.Scheme = "https"
		}
		cl, err := api.NewClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("master %q: %w", spec, err)
		}
		f.consul = cl
		return f, nil
	}
	for _, a := range strings.Split(spec, ",") {
		a = strings.TrimPrefix(strings.TrimSpace(a), "http://")
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("master %q: %q is not host:port: %w", spec, a, err)
		}
		f.static = append(f.static, a)
	}
	if len(f.static) == 0 {
		return nil, fmt.Errorf("master %q names no address", spec)
	}
	return f, nil
}

// String is the spec.
func (f *Finder) String() string { return f.spec }

// Watches reports whether the spec is Consul's: Pick(failed) then waits
// for the leader key to name another master, so a different address it
// returns is worth trying at once.
func (f *Finder) Watches() bool { return f.consul != nil }

// Single reports whether the spec is one fixed address (nothing to follow).
func (f *Finder) Single() bool { return f.consul == nil && len(f.static) == 1 }

// Redirected records a redirect: when err is NotLeader naming a leader,
// the next Pick returns it. It reports whether err was a redirect.
func (f *Finder) Redirected(err error) bool {
	leader, ok := LeaderFrom(err)
	if ok && leader != "" {
		f.Hint(leader)
	}
	return ok
}

// Hint makes addr the next address Pick returns.
func (f *Finder) Hint(addr string) {
	f.mu.Lock()
	f.hint = addr
	f.mu.Unlock()
}

// Pick returns the address to try next. failed is the address that just
// failed ("" if none): with Consul, when the leader key still names it,
// Pick waits (up to a few seconds, or ctx) for the key to change, so a
// client follows a failover as soon as the new leader is elected.
func (f *Finder) Pick(ctx context.Context, failed string) (string, error) {
	f.mu.Lock()
	if h := f.hint; h != "" {
		f.hint = ""
		f.mu.Unlock()
		return h, nil
	}
	if f.consul == nil {
		a := f.static[f.next%len(f.static)]
		f.next++
		f.mu.Unlock()
		return a, nil
	}
	if l := f.inflight[failed]; l != nil {
		f.mu.Unlock()
		select {
		case <-l.done:
			return l.addr, l.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	l := &lookup{done: make(chan struct{})}
	if f.inflight == nil {
		f.inflight = map[string]*lookup{}
	}
	f.inflight[failed] = l
	f.mu.Unlock()
	// The shared lookup must not end with the first caller's context.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	l.addr, l.err = f.consulLeader(lctx, failed)
	cancel()
	f.mu.Lock()
	delete(f.inflight, failed)
	f.mu.Unlock()
	close(l.done)
	return l.addr, l.err
}

// LeaderKey is where the masters' lock lives under prefix; its value is the
// leader's address (core/coord writes it).
func LeaderKey(prefix string) string { return strings.Trim(prefix, "/") + "/leader" }

func (f *Finder) consulLeader(ctx context.Context, failed string) (string, error) {
	kv := f.consul.KV()
	key := LeaderKey(f.prefix)
	var index uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			if failed != "" {
				return failed, nil // no change seen: try it again
			}
			return "", fmt.Errorf("consul %s: no leader elected under %q", f.consulAddr(), f.prefix)
		}
		pair, meta, err := kv.Get(key, (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx))
		if err != nil {
			return "", fmt.Errorf("consul %s: reading %s: %w", f.consulAddr(), key, err)
		}
		if pair != nil && pair.Session != "" && len(pair.Value) > 0 && string(pair.Value) != failed {
			return string(pair.Value), nil
		}
		if meta.LastIndex == index {
			continue // the wait ran out without a change
		}
		index = meta.LastIndex
	}
}

func (f *Finder) consulAddr() string {
	u, err := url.Parse(f.spec)
	if err != nil {
		return f.spec
	}
	return u.Host
}
