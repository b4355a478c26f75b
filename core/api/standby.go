package api

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/corral-project/corral/sdk/discovery"
)

// Standby serves a master that does not lead. It answers the operator API's
// reads itself (its books are empty; /api/v1/state says "leader": false and
// names the leader) and redirects everything else to the leader with 307
// and a protocol-relative Location ("//host:port/path"), as Mesos masters
// redirect: writes, the Mesos v1 scheduler and operator APIs, sandboxes.
// local is the operator API of the standby's own (idle) master.
func Standby(local http.Handler, leader func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if servedByStandby(r) {
			local.ServeHTTP(w, r)
			return
		}
		l := leader()
		if l == "" {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "this master is not the leader and no leader is elected right now; retry shortly")
			return
		}
		w.Header().Set("Location", "//"+l+r.URL.RequestURI())
		writeError(w, http.StatusTemporaryRedirect, "this master is not the leader; the leader is at "+l)
	})
}

// servedByStandby: reads of corral's own operator API, health, metrics and
// the UI. Everything that acts, and the Mesos APIs, go to the leader.
func servedByStandby(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "/health" || p == "/metrics" || strings.HasPrefix(p, "/ui/"):
		return true
	case p == "/api/v1/scheduler" || strings.Contains(p, "/sandbox/"):
		return false
	}
	return strings.HasPrefix(p, "/api/v1/")
}

// StandbyGRPC is a gRPC server that answers every call (scheduler and agent
// APIs alike) with the redirect status naming the leader.
func StandbyGRPC(leader func() string) *grpc.Server {
	return grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
		return discovery.NotLeader(leader())
	}))
}

// Switch routes the port's traffic to the current role's servers: a
// master changes them when it is elected or steps down, without closing
// its listener. Serve (native.go) serves the port.
type Switch struct {
	cur atomic.Pointer[backends]
	// mu guards native, the gRPC servers that were handed connections.
	mu     sync.Mutex
	native map[*grpc.Server]*nativeServer
}

type backends struct {
	grpc           *grpc.Server
	grpcHTTP, http http.Handler
}

// Set makes g serve gRPC and h HTTP from now on. viaHTTP, when not nil,
// serves the gRPC calls that reach g through the HTTP server (over TLS):
// g wrapped, for example, to end its streams with a term; nil serves them
// with g. The connections the previous gRPC servers were serving are
// closed: their clients reconnect and reach g (a client of a standby that
// was elected would otherwise keep hearing "not the leader" from it).
func (s *Switch) Set(g *grpc.Server, viaHTTP, h http.Handler) {
	if viaHTTP == nil {
		viaHTTP = g
	}
	s.mu.Lock()
	s.cur.Store(&backends{grpc: g, grpcHTTP: viaHTTP, http: h})
	s.mu.Unlock()
	s.closeConns(g)
}

// GRPC and HTTP are handlers that forward to the current servers.
func (s *Switch) GRPC() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.cur.Load().grpcHTTP.ServeHTTP(w, r) })
}

func (s *Switch) HTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.cur.Load().http.ServeHTTP(w, r) })
}
