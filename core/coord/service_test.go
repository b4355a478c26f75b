package coord_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/coord/consultest"
)

// A process whose check refreshes are slow (a starved machine, a busy
// Consul: here a proxy that holds every refresh back) grows its check's
// TTL by doubling, never past MaxTTL, and Consul holds the grown TTL: with
// refreshes cut off, the check stays passing past the configured TTL and
// goes critical only later. Without growth a healthy but loaded leader
// would miss its TTL and step down over and over.
func TestServiceCheckTTLGrowsUnderSlowRefreshes(t *testing.T) {
	ag := consultest.Start(t)
	target, err := url.Parse("http://" + ag.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	// delay holds back check refreshes; block drops them (the process
	// still runs but can no longer reach Consul).
	var delay atomic.Int64
	var block atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/agent/check/update/") {
			if block.Load() {
				http.Error(w, "blocked by the test", http.StatusServiceUnavailable)
				return
			}
			time.Sleep(time.Duration(delay.Load()))
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()

	viaProxy, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(srv.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := api.NewClient(&api.Config{Address: ag.HTTPAddr})
	if err != nil {
		t.Fatal(err)
	}
	const ttl, maxTTL = 400 * time.Millisecond, 1600 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	svc, err := coord.RegisterService(ctx, viaProxy, coord.ServiceSpec{ID: "ttl-1", Name: "ttl", Address: "127.0.0.1:1",
		TTL: ttl, MaxTTL: maxTTL}, hclog.New(&hclog.LoggerOptions{Name: "ttl", Level: hclog.Warn}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), waitFor)
		defer dcancel()
		_ = svc.Deregister(dctx)
	}()
	if got := svc.TTL(); got != ttl {
		t.Fatalf("TTL before any slow refresh = %v, want %v", got, ttl)
	}

	// Refreshes taking half the TTL (over the quarter that counts as
	// slow): the TTL doubles step by step up to MaxTTL.
	delay.Store(int64(ttl / 2))
	seen := []time.Duration{ttl}
	for deadline := time.Now().Add(waitFor); ; time.Sleep(5 * time.Millisecond) {
		got := svc.TTL()
		if got > maxTTL {
			t.Fatalf("TTL grew to %v, past MaxTTL %v", got, maxTTL)
		}
		if got != seen[len(seen)-1] {
			seen = append(seen, got)
		}
		if got == maxTTL {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TTL did not reach MaxTTL %v within %v; went %v", maxTTL, waitFor, seen)
		}
	}
	want := []time.Duration{ttl, 2 * ttl, 4 * ttl}
	if len(seen) != len(want) {
		t.Fatalf("TTL went %v, want doubling %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("TTL went %v, want doubling %v", seen, want)
		}
	}
	// Slow refreshes at MaxTTL keep it there.
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got := svc.TTL(); got != maxTTL {
			t.Fatalf("TTL left MaxTTL under slow refreshes: %v", got)
		}
	}

	// Consul holds the grown TTL: refreshes cut off, the check is still
	// passing at any moment before LastRefresh+MaxTTL that we observe it
	// (checked only when the answer came back in time: a late answer on a
	// loaded machine proves nothing), and critical some time after.
	checkStatus := func() string {
		checks, err := direct.Agent().Checks()
		if err != nil {
			t.Fatal(err)
		}
		c := checks[svc.CheckID()]
		if c == nil {
			t.Fatalf("check %s not registered", svc.CheckID())
		}
		return c.Status
	}
	// Let refreshes in flight (delayed) land before cutting them off.
	delay.Store(0)
	for deadline := time.Now().Add(waitFor); time.Since(svc.LastRefresh()) > ttl/2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no prompt refresh after the delay was lifted")
		}
	}
	block.Store(true)
	last := svc.LastRefresh()
	observed := false
	for time.Since(last) < maxTTL-ttl/2 {
		st := checkStatus()
		if time.Since(last) < 2*ttl && st != api.HealthPassing {
			t.Fatalf("check %s %v after the last refresh (TTL %v at Consul?): want passing", st, time.Since(last), maxTTL)
		}
		if time.Since(last) > ttl+ttl/2 && time.Since(last) < 2*ttl {
			observed = true // past the configured TTL, still passing
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !observed {
		t.Log("the machine was too slow to observe the check between TTL and 2xTTL; only the end is checked")
	}
	for deadline := time.Now().Add(waitFor); checkStatus() != api.HealthCritical; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("check still %s %v after refreshes were cut off", checkStatus(), time.Since(last))
		}
	}
}
