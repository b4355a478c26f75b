package agent

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/corral-project/corral/core/agent/sandbox"
	"github.com/corral-project/corral/sdk/acl"
	"github.com/corral-project/corral/sdk/resources"
)

// State is the JSON served at /api/v1/state.
type State struct {
	ID            string `json:"id"`
	Hostname      string `json:"hostname"`
	URL           string `json:"url"`
	Master        string `json:"master"`
	Connected     bool   `json:"connected"`
	Version       string `json:"version"`
	Resources     string `json:"resources"`
	UsedResources string `json:"used_resources"`
	// The same resources as objects ({"cpus":2,"ports":[[31000,32000]]}),
	// as the master's operator API serves them beside the string form.
	ResourcesStructured     map[string]any    `json:"resources_structured"`
	UsedResourcesStructured map[string]any    `json:"used_resources_structured"`
	Attributes              map[string]string `json:"attributes,omitempty"`
	PendingUpdates          int               `json:"pending_updates"`
	Tasks                   []TaskState       `json:"tasks"`
}

// TaskState is one task in State.
type TaskState struct {
	FrameworkID string `json:"framework_id"`
	TaskID      string `json:"task_id"`
	Name        string `json:"name,omitempty"`
	State       string `json:"state"`
	ContainerID string `json:"container_id"`
	Pid         int    `json:"pid,omitempty"`
	Resources   string `json:"resources"`
	// Resources as an object, beside the string form.
	ResourcesStructured map[string]any `json:"resources_structured"`
	Sandbox             string         `json:"sandbox,omitempty"`
	SandboxURL          string         `json:"sandbox_url"`
}

func (a *Agent) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	// State and usage list only the tasks the caller may view.
	mux.Handle("GET /api/v1/state", a.identified(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		may := a.viewer(r)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.state(func(owner string) bool { return may(owner) == nil }))
	})))
	mux.Handle("GET /api/v1/monitor", a.identified(http.HandlerFunc(a.serveMonitor)))
	mux.Handle("GET /metrics", a.metricsHandler())
	sb := sandbox.NewHandler(a.cfg.sandboxRoot(), a.logger.Named("sandbox"))
	mux.Handle(sandbox.Pattern, a.frameworkACL(acl.AccessSandboxes, sb))
	mux.Handle(sandbox.ListPattern, a.frameworkACL(acl.AccessSandboxes, sb.ListHandler()))
	mux.Handle(TaskExecPattern, a.frameworkACL(acl.ExecTasks, http.HandlerFunc(a.serveTaskExec)))
	a.mu.Lock()
	for pattern, h := range a.handlers {
		mux.Handle(pattern, h)
	}
	a.mu.Unlock()
	return mux
}

// State snapshots the agent for the operator API.
func (a *Agent) State() State { return a.state(nil) }

// state is State listing only the tasks whose framework principal visible
// accepts (every task when visible is nil). Resources in use count every
// task: the agent's totals are not the caller's to narrow.
func (a *Agent) state(visible func(owner string) bool) State {
	a.connMu.Lock()
	connected := a.out != nil
	a.connMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := State{
		ID:                  a.id,
		Hostname:            a.cfg.Hostname,
		URL:                 a.url,
		Master:              a.cfg.Master,
		Connected:           connected,
		Version:             Version,
		Resources:           a.resources.String(),
		ResourcesStructured: a.resources.Structured(),
		Attributes:          a.cfg.Attributes,
		PendingUpdates:      a.updates.Len(),
		Tasks:               []TaskState{},
	}
	var used resources.Resources
	for k, t := range a.tasks {
		if !t.terminal {
			used = used.Add(t.res)
		}
		if visible != nil && !visible(t.framework.GetPrincipal()) {
			continue
		}
		s.Tasks = append(s.Tasks, TaskState{
			FrameworkID:         k.framework,
			TaskID:              k.task,
			Name:                t.info.GetName(),
			State:               t.state.String(),
			ContainerID:         t.containerID,
			Pid:                 t.pid,
			Resources:           t.res.String(),
			ResourcesStructured: t.res.Structured(),
			Sandbox:             t.sandbox,
			SandboxURL:          a.sandboxURL(k),
		})
	}
	s.UsedResources = used.String()
	s.UsedResourcesStructured = used.Structured()
	sort.Slice(s.Tasks, func(i, j int) bool {
		if s.Tasks[i].FrameworkID != s.Tasks[j].FrameworkID {
			return s.Tasks[i].FrameworkID < s.Tasks[j].FrameworkID
		}
		return s.Tasks[i].TaskID < s.Tasks[j].TaskID
	})
	return s
}
