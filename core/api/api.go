// Package api serves the master's operator HTTP API (JSON state, Prometheus
// metrics, health, web UI) and multiplexes it with the gRPC APIs on one
// port, the way Mesos serves everything on 5050.
package api

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/corral-project/corral/core/api/mesos"
	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/acl"
	"github.com/corral-project/corral/sdk/resources"
)

//go:embed ui
var uiFiles embed.FS

// Handler returns the operator API for m, with the Mesos v1 APIs beside it.
func Handler(m *master.Master) http.Handler { return HandlerWith(m, Options{}) }

// Options are the operator API's settings beyond the master itself.
type Options struct {
	// Mesos are the Mesos adapter's options (logger, version).
	Mesos mesos.Options
	// Authn authenticates callers (client certificates, credentials);
	// nil trusts client certificates only.
	Authn *authn.Authenticator
	// AgentTLS is the client configuration for reaching agents' HTTP APIs
	// (the sandbox proxy) when the cluster runs TLS; nil for plain text.
	AgentTLS *tls.Config
}

// HandlerWith is Handler with options.
func HandlerWith(m *master.Master, opts Options) http.Handler {
	mo := opts.Mesos
	mux := http.NewServeMux()
	// The Mesos v1 scheduler and operator APIs on the same port, as Mesos
	// serves them on 5050: /api/v1/scheduler, POST /api/v1, /state,
	// /metrics/snapshot, /version (core/api/mesos).
	mesos.New(m, mo).Register(mux)
	// Reads are filtered by the view_* ACLs of the caller's principal.
	mux.HandleFunc("GET /api/v1/state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, state(r, m)) })
	mux.HandleFunc("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, state(r, m).Agents) })
	mux.HandleFunc("GET /api/v1/frameworks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, state(r, m).Frameworks) })
	mux.HandleFunc("GET /api/v1/roles", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, visibleRoles(r, m, m.Roles())) })
	// {name...}: role names are /-separated paths ("eng/ml").
	mux.HandleFunc("GET /api/v1/roles/{name...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !allow(w, r, m, acl.ViewRoles, name) {
			return
		}
		v, ok := m.Role(name)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("role %q is not known to the master", name))
			return
		}
		writeJSON(w, v)
	})
	mux.HandleFunc("PUT /api/v1/roles/{name...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		patch, err := decodeRolePatch(w, r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if (patch.Weight != nil || patch.Priority != nil) && !allow(w, r, m, acl.UpdateWeights, name) {
			return
		}
		if (patch.Guarantee != nil || patch.Limit != nil) && !allow(w, r, m, acl.UpdateQuotas, name) {
			return
		}
		v, err := m.SetRole(name, patch)
		var verr *master.ValidationError
		switch {
		case errors.As(err, &verr):
			writeError(w, http.StatusBadRequest, verr.Error())
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, v)
	})
	allocatorRoutes(mux, m)
	operatorRoutes(mux, m, opts.AgentTLS)
	mux.HandleFunc("GET /api/v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		type task struct {
			FrameworkID string `json:"framework_id"`
			master.TaskView
		}
		var out []task
		for _, f := range state(r, m).Frameworks {
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
	// The web UI: a page and its script and style, embedded in the
	// binary, so it works offline and matches the API it talks to.
	ui, _ := fs.Sub(uiFiles, "ui")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, ui, "index.html")
	})
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServerFS(ui)))
	a := opts.Authn
	if a == nil {
		a = &authn.Authenticator{}
	}
	return a.Middleware(mux)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers {"error": msg}, the one error shape of the API.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// RoleUpdate is the body of PUT /api/v1/roles/{name}. Every field is
// optional: absent (or null) leaves the setting unchanged, and "" clears a
// guarantee or limit. Resources use the sdk/resources syntax
// ("cpus:8;mem:16384").
type RoleUpdate struct {
	Weight    *float64 `json:"weight"`
	Priority  *int64   `json:"priority"`
	Guarantee *string  `json:"guarantee"`
	Limit     *string  `json:"limit"`
}

// maxRoleBody bounds a role update; real ones are a few hundred bytes.
const maxRoleBody = 64 << 10

func decodeRolePatch(w http.ResponseWriter, r *http.Request) (master.RolePatch, error) {
	var u RoleUpdate
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRoleBody))
	// A misspelt field would otherwise be a silent no-op.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return master.RolePatch{}, describeJSONError(err, "weight, priority, guarantee, limit")
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return master.RolePatch{}, errors.New("request body: want one JSON object, found more data after it")
	}
	p := master.RolePatch{Weight: u.Weight, Priority: u.Priority}
	for _, f := range []struct {
		name string
		in   *string
		out  **resources.Resources
	}{{"guarantee", u.Guarantee, &p.Guarantee}, {"limit", u.Limit, &p.Limit}} {
		if f.in == nil {
			continue
		}
		res, err := resources.Parse(*f.in)
		if err != nil {
			return master.RolePatch{}, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.out = &res
	}
	return p, nil
}

// describeJSONError turns encoding/json's errors into messages that name
// the field, the way the rest of the API reports problems.
func describeJSONError(err error, known string) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("request body is empty; want a JSON object with %s", known)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Errorf("%s: want %s, got a JSON %s", typeErr.Field, jsonKind(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &typeErr):
		return fmt.Errorf("request body: want a JSON object, got a JSON %s", typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("request body is not valid JSON: %v", err)
	case errors.As(err, &maxErr):
		return fmt.Errorf("request body is larger than %d bytes", maxErr.Limit)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("request body: unknown field %s (known: %s)",
			strings.TrimPrefix(err.Error(), "json: unknown field "), known)
	}
	return fmt.Errorf("request body: %v", err)
}

func jsonKind(goType string) string {
	switch goType {
	case "float64":
		return "a number"
	case "int64":
		return "an integer"
	case "string":
		return "a string"
	}
	return goType
}

// Serve serves gRPC (HTTP/2: over TLS when tc is set, else h2c) and the
// HTTP handler on one listener until ctx ends.
// g is a *grpc.Server or a Switch's GRPC handler.
func Serve(ctx context.Context, l net.Listener, tc *tls.Config, g http.Handler, h http.Handler, log hclog.Logger) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if tc != nil {
		// gRPC and HTTPS on one port, told apart by ALPN and Content-Type.
		protocols.SetHTTP2(true)
		l = tls.NewListener(l, tc)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
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
