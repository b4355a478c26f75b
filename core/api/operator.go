package api

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/acl"
)

// operatorRoutes are the operator's read-more and write endpoints: the
// cluster's history, killing a task, and reading sandboxes through the
// master (the web UI talks to the master only).
func operatorRoutes(mux *http.ServeMux, m *master.Master, agentTLS *tls.Config) {
	// One transport for every proxied sandbox read: connections to agents
	// are reused.
	agentTransport := &http.Transport{ResponseHeaderTimeout: 10 * time.Second, TLSClientConfig: agentTLS}
	mux.HandleFunc("GET /api/v1/history", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.History()) })
	mux.HandleFunc("POST /api/v1/tasks/{framework}/{task}/kill", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			GraceSeconds float64 `json:"grace_seconds"`
		}
		if !decodeOptional(w, r, &body, "grace_seconds") {
			return
		}
		if !allowFramework(w, r, m, acl.KillTasks, r.PathValue("framework")) {
			return
		}
		if err := m.KillTask(r.PathValue("framework"), r.PathValue("task"), body.GraceSeconds); err != nil {
			writeOperatorError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("{}\n"))
	})
	mux.HandleFunc("POST /api/v1/agents/{agent}/drain", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Deadline string `json:"deadline"`
		}
		if !decodeOptional(w, r, &body, "deadline") {
			return
		}
		if !allowAgent(w, r, m, acl.DrainAgents, r.PathValue("agent")) {
			return
		}
		var deadline time.Duration
		if body.Deadline != "" {
			d, err := time.ParseDuration(body.Deadline)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("deadline: %q is not a duration such as \"10m\"", body.Deadline))
				return
			}
			deadline = d
		}
		if err := m.DrainAgent(r.PathValue("agent"), deadline); err != nil {
			writeOperatorError(w, err)
			return
		}
		writeJSON(w, map[string]string{"agent_id": r.PathValue("agent"), "deadline": deadline.String()})
	})
	mux.HandleFunc("POST /api/v1/agents/{agent}/undrain", func(w http.ResponseWriter, r *http.Request) {
		if !allowAgent(w, r, m, acl.DrainAgents, r.PathValue("agent")) {
			return
		}
		if err := m.UndrainAgent(r.PathValue("agent")); err != nil {
			writeOperatorError(w, err)
			return
		}
		writeJSON(w, map[string]string{"agent_id": r.PathValue("agent")})
	})
	mux.HandleFunc("POST /api/v1/frameworks/{framework}/teardown", func(w http.ResponseWriter, r *http.Request) {
		if !allowFramework(w, r, m, acl.TeardownFrameworks, r.PathValue("framework")) {
			return
		}
		if err := m.TeardownFramework(r.PathValue("framework")); err != nil {
			writeOperatorError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("{}\n"))
	})
	// toAgent forwards r to the agent's own API at path: sandbox reads, and
	// task exec sessions (an HTTP upgrade, tunnelled both ways by the
	// reverse proxy), with the agent TLS settings of the master.
	toAgent := func(w http.ResponseWriter, r *http.Request, path string) {
		agentURL, err := m.AgentURL(r.PathValue("agent"))
		if err != nil {
			writeOperatorError(w, err)
			return
		}
		target, err := url.Parse(agentURL)
		if err != nil {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("agent %s has an unusable address %q: %v", r.PathValue("agent"), agentURL, err))
			return
		}
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
				pr.Out.URL.Path, pr.Out.URL.RawPath = "", ""
				pr.Out.URL.Opaque = path
				pr.Out.URL.RawQuery = r.URL.RawQuery
				pr.Out.Host = target.Host
			},
			Transport: agentTransport,
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				writeError(w, http.StatusBadGateway, fmt.Sprintf("agent %s at %s: %v", r.PathValue("agent"), agentURL, err))
			},
		}
		proxy.ServeHTTP(w, r)
	}
	sandbox := func(w http.ResponseWriter, r *http.Request) {
		if !allowFramework(w, r, m, acl.AccessSandboxes, r.PathValue("framework")) {
			return
		}
		path := "/api/v1/sandbox/" + url.PathEscape(r.PathValue("framework")) + "/" + url.PathEscape(r.PathValue("task"))
		if f := r.PathValue("file"); f != "" {
			path += "/" + url.PathEscape(f)
		}
		toAgent(w, r, path)
	}
	// corral task exec: run a command beside a running task (see
	// core/agent/taskexec.go for what the command shares with the task).
	mux.HandleFunc("POST /api/v1/agents/{agent}/exec/{framework}/{task}", func(w http.ResponseWriter, r *http.Request) {
		if !allowFramework(w, r, m, acl.ExecTasks, r.PathValue("framework")) {
			return
		}
		toAgent(w, r, "/api/v1/exec/"+url.PathEscape(r.PathValue("framework"))+"/"+url.PathEscape(r.PathValue("task")))
	})
	// A live task's measured usage (cpu time, memory, processes, limits):
	// the agent's /api/v1/monitor entry for that one task, so that a
	// principal sees the usage of the tasks view_tasks lets it see only.
	mux.HandleFunc("GET /api/v1/agents/{agent}/usage/{framework}/{task}", func(w http.ResponseWriter, r *http.Request) {
		if !allowFramework(w, r, m, acl.ViewTasks, r.PathValue("framework")) {
			return
		}
		agentURL, err := m.AgentURL(r.PathValue("agent"))
		if err != nil {
			writeOperatorError(w, err)
			return
		}
		// Narrowed to the task, so that the agent measures only its
		// container; an older agent ignores the query and sends every
		// task's, which the loop below still picks from.
		query := url.Values{"framework_id": {r.PathValue("framework")}, "task_id": {r.PathValue("task")}}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, agentURL+"/api/v1/monitor?"+query.Encode(), nil)
		if err != nil {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("agent %s has an unusable address %q: %v", r.PathValue("agent"), agentURL, err))
			return
		}
		resp, err := (&http.Client{Transport: agentTransport, Timeout: 15 * time.Second}).Do(req)
		if err != nil {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("agent %s at %s: %v", r.PathValue("agent"), agentURL, err))
			return
		}
		defer resp.Body.Close()
		var usage []map[string]any
		if resp.StatusCode != http.StatusOK {
			// Say why: a 403 names the permission the master's own
			// principal lacks on the agent (view_tasks).
			var e struct {
				Error string `json:"error"`
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if json.Unmarshal(body, &e) != nil || e.Error == "" {
				e.Error = strings.TrimSpace(string(body))
			}
			writeError(w, http.StatusBadGateway, fmt.Sprintf("agent %s monitor: %s: %s", r.PathValue("agent"), resp.Status, e.Error))
			return
		}
		if err := json.NewDecoder(resp.Body).Decode(&usage); err != nil {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("agent %s monitor: %v", r.PathValue("agent"), err))
			return
		}
		for _, u := range usage {
			if u["framework_id"] == r.PathValue("framework") && u["task_id"] == r.PathValue("task") {
				writeJSON(w, u)
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("agent %s runs no live task %s of framework %s", r.PathValue("agent"), r.PathValue("task"), r.PathValue("framework")))
	})
	mux.HandleFunc("GET /api/v1/agents/{agent}/sandbox/{framework}/{task}", sandbox)
	mux.HandleFunc("GET /api/v1/agents/{agent}/sandbox/{framework}/{task}/{file}", sandbox)
}

func writeOperatorError(w http.ResponseWriter, err error) {
	var nf *master.NotFoundError
	if errors.As(err, &nf) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeMasterError(w, err)
}

// decodeOptional decodes an optional small JSON body into v; on bad input
// it answers 400 naming the problem and returns false.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any, known string) bool {
	if r.ContentLength == 0 {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, describeJSONError(err, known).Error())
		return false
	}
	return true
}
