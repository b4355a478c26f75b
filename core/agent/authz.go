package agent

import (
	"encoding/json"
	"net/http"

	"github.com/corral-project/corral/sdk/acl"
)

// sandboxACL guards the agent's own sandbox endpoints with the cluster's
// ACLs (frameworkACL with access_sandboxes).
func (a *Agent) sandboxACL(next http.Handler) http.Handler {
	return a.frameworkACL(acl.AccessSandboxes, next)
}

// frameworkACL guards an agent endpoint on a framework's task (sandbox
// reads, task exec) with the cluster's ACLs, so that a client certificate
// does not get around the master's checks: the caller's certificate
// principal needs action on the principal of the framework that owns the
// task. The master's proxy authorizes the end user itself and then calls
// the agent with the master's certificate, so that name needs its own
// rules (`access_sandboxes { principals = ["<master cert name>"] }`, and
// the same under exec_tasks). A framework the agent no longer runs a task
// of is checked against the empty principal, which only an ANY rule
// covers.
func (a *Agent) frameworkACL(action acl.Action, next http.Handler) http.Handler {
	if a.cfg.ACLs == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal := acl.ConnPrincipal(r.TLS)
		owner := a.frameworkPrincipal(r.PathValue("framework"))
		if err := a.cfg.ACLs.Authorize(principal, action, owner); err != nil {
			a.logger.Warn("permission denied", "principal", principal, "action", action,
				"object", owner, "framework_id", r.PathValue("framework"))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// frameworkPrincipal is the principal of a framework the agent runs tasks
// of, "" when it runs none.
func (a *Agent) frameworkPrincipal(frameworkID string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, t := range a.tasks {
		if k.framework == frameworkID && t.framework != nil {
			return t.framework.Principal
		}
	}
	return ""
}
