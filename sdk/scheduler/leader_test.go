package scheduler

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/sdk/discovery"
)

// fakeLeaderKey serves the one Consul read the SDK's discovery makes: the
// masters' leader key, naming addr under a session. A blocking read (one
// with a wait index: "tell me when the key changes") is counted and held
// until the test ends, since the key never changes here.
type fakeLeaderKey struct {
	blocking atomic.Int32
	// release ends the blocking reads held (also done at cleanup).
	release func()
}

func newFakeLeaderKey(t *testing.T, prefix, addr string) (spec string, f *fakeLeaderKey) {
	t.Helper()
	f = &fakeLeaderKey{}
	done := make(chan struct{})
	var once sync.Once
	f.release = func() { once.Do(func() { close(done) }) }
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
	t.Cleanup(func() { f.release(); srv.Close() })
	return "consul://" + strings.TrimPrefix(srv.URL, "http://") + "/" + prefix, f
}

// A master the leader key names may, for the few milliseconds between
// winning the lock and serving as leader, answer "no leader is elected
// right now" or reset the connection as it switches servers. The
// scheduler tries it again after its backoff; it must not wait for the
// leader key to name another master first (with Consul that wait lasts up
// to 5 s, and the key names this master all along).
func TestNewLeaderNotServingYetIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"knows of no leader", discovery.NotLeader("")},
		{"connection reset", status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: connection reset by peer"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeMaster(t, func(m *fakeMaster) { m.subscribeErrOnce = tc.err })
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
		})
	}
}

// A subscribed session that breaks is most likely a dead leader, which the
// leader key names until Consul ends its session: the scheduler waits for
// the key to name another master rather than dial the dead one again.
func TestBrokenSessionWaitsForANewLeader(t *testing.T) {
	m := newFakeMaster(t, nil)
	spec, consul := newFakeLeaderKey(t, "corral", m.addr)
	rec := &recorder{m: m}
	startRun(t, m, rec, func(c *Config) { c.Master = spec })
	m.nextSession(t).end <- status.Error(codes.Unavailable, "master died")
	waitFor(t, "a wait for the leader key to change", func() bool { return consul.blocking.Load() > 0 })
	consul.release() // before the scheduler stops: its lookup outlives its context
}
