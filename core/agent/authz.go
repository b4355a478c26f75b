package agent

import (
	"encoding/json"
	"net/http"

	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/sdk/acl"
)

// frameworkACL guards an agent endpoint on a framework's task (sandbox
// reads, task exec) with the cluster's ACLs, so that calling the agent
// directly does not get around the master's checks: the caller's
// principal (its client certificate's, else that of HTTP basic
// credentials checked against the credentials file, as the master does)
// needs action on the principal of the framework that owns the task.
// Credentials that do not verify get 401 naming the problem. The master's proxy authorizes the end user itself and then calls
// the agent with the master's certificate, so that name needs its own
// rules (`access_sandboxes { principals = ["<master cert name>"] }`, and
// the same under exec_tasks). A framework the agent no longer runs a task
// of is checked against the empty principal, which only an ANY rule
// covers.
func (a *Agent) frameworkACL(action acl.Action, next http.Handler) http.Handler {
	if a.cfg.ACLs == nil {
		return next
	}
	authenticator := &authn.Authenticator{Credentials: a.cfg.Credentials}
	return authenticator.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal := authn.Principal(r.Context())
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
	}))
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
