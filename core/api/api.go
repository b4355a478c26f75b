// Package api serves the master's operator HTTP API (JSON state, Prometheus
// metrics, health, web UI) and multiplexes it with the gRPC APIs on one
// port, the way Mesos serves everything on 5050.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/corral-project/corral/core/master"
)

//go:embed ui/index.html
var indexHTML []byte

// Handler returns the operator API for m.
func Handler(m *master.Master) http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	mux.HandleFunc("GET /api/v1/state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.Snapshot()) })
	mux.HandleFunc("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.Snapshot().Agents) })
	mux.HandleFunc("GET /api/v1/frameworks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.Snapshot().Frameworks) })
	mux.HandleFunc("GET /api/v1/roles", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.Snapshot().Roles) })
	mux.HandleFunc("GET /api/v1/allocator", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.Snapshot().Allocator) })
	mux.HandleFunc("GET /api/v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		type task struct {
			FrameworkID string `json:"framework_id"`
			master.TaskView
		}
		var out []task
		for _, f := range m.Snapshot().Frameworks {
			for _, t := range f.Tasks {
				out = append(out, task{f.ID, t})
			}
			for _, t := range f.Completed {
				out = append(out, task{f.ID, t})
			}
		}
		writeJSON(w, out)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(indexHTML)
	})
	return mux
}

// Serve serves gRPC (HTTP/2 without TLS, as gRPC clients speak it) and the
// HTTP handler on one listener until ctx ends.
func Serve(ctx context.Context, l net.Listener, g *grpc.Server, h http.Handler, log hclog.Logger) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				g.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		}),
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Streams (scheduler subscriptions, agent connections) never finish on
	// their own, so give them a moment and then cut them.
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	_ = srv.Close()
	return nil
}
