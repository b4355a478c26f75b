package scheduler

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/corral-project/corral/sdk/discovery"
)

// fakeLeaderKey serves the one Consul read the SDK's discovery makes: the
// masters' leader key, naming addr under a session. A blocking read (one
// with a wait index: "tell me when the key changes") is counted and held
// until the test ends, since the key never changes here.
type fakeLeaderKey struct{ blocking atomic.Int32 }

func newFakeLeaderKey(t *testing.T, prefix, addr string) (spec string, f *fakeLeaderKey) {
	t.Helper()
	f = &fakeLeaderKey{}
	done := make(chan struct{})
	key := discovery.LeaderKey(prefix)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/kv/"+key {
			http.NotFound(w, r)
			return
		}
		if idx := r.URL.Query().Get("index"); idx != "" && idx != "0" {
			f.blocking.Add(1)
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		w.Header().Set("X-Consul-Index", "7")
		_ = json.NewEncoder(w).Encode([]map[string]any{{"Key": key, "Value": []byte(addr), "Session": "s1",
			"LockIndex": 1, "CreateIndex": 1, "ModifyIndex": 7}})
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return "consul://" + strings.TrimPrefix(srv.URL, "http://") + "/" + prefix, f
}

// A master the leader key names may answer "no leader is elected right
// now" for the few milliseconds between winning the lock and serving as
// leader. The scheduler tries it again after its backoff; it must not
// wait for the leader key to name another master first (with Consul that
// wait lasts up to 5 s, and the key names this master all along).
func TestNewLeaderNotServingYetIsRetried(t *testing.T) {
	m := newFakeMaster(t, func(m *fakeMaster) { m.subscribeErrOnce = discovery.NotLeader("") })
	spec, consul := newFakeLeaderKey(t, "corral", m.addr)
	rec := &recorder{m: m}
	startRun(t, m, rec, func(c *Config) { c.Master = spec })
	m.nextSession(t)
	if n := consul.blocking.Load(); n != 0 {
		t.Fatalf("the scheduler waited %d time(s) for the leader key to change before subscribing again", n)
	}
	m.mu.Lock()
	subs := len(m.subs)
	m.mu.Unlock()
	if subs != 2 {
		t.Fatalf("%d subscribe calls, want 2 (the refused one and the next)", subs)
	}
}
