package agent

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/sdk/acl"
)

// frameworkACL guards an agent endpoint on a framework's task (sandbox
// reads, task exec) with the cluster's ACLs, so that calling the agent
// directly does not get around the master's checks: the caller's
// principal (its client certificate's, else that of HTTP basic
// credentials checked against the credentials file, as the master does)
// needs action on the principal of the framework that owns the task.
// Credentials that do not verify get 401 naming the problem. The
// master's proxy authorizes the end user itself and then calls the agent
// with the master's certificate, so that name needs its own
// rules (`access_sandboxes { principals = ["<master cert name>"] }`, and
// the same under exec_tasks). A finished task's sandbox keeps its
// framework's principal while the sandbox is kept (owners); a framework
// the agent does not know is checked against the empty principal, which
// only an ANY rule covers.
func (a *Agent) frameworkACL(action acl.Action, next http.Handler) http.Handler {
	return a.identified(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acls := a.sec.acls.Load()
		if acls == nil {
			next.ServeHTTP(w, r) // off, or turned off by a reload meanwhile
			return
		}
		owner := a.frameworkPrincipal(r.PathValue("framework"))
		if err := acls.Authorize(authn.Principal(r.Context()), action, owner); err != nil {
			a.deny(w, r, action, r.PathValue("framework"), owner, err)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// deny logs a refusal of action on framework frameworkID (whose principal
// is owner) and answers 403 with the error, which names the missing
// permission.
func (a *Agent) deny(w http.ResponseWriter, r *http.Request, action acl.Action, frameworkID, owner string, err error) {
	a.logger.Warn("permission denied", "principal", authn.Principal(r.Context()), "action", action,
		"object", owner, "framework_id", frameworkID)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// identified runs next with the caller's principal in the request context
// when ACLs are on (a wrong secret is 401, as on the guarded endpoints),
// for the read endpoints that filter by it (state, monitor).
func (a *Agent) identified(next http.Handler) http.Handler {
	withPrincipal := a.sec.authn.Middleware(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.sec.acls.Load() == nil {
			next.ServeHTTP(w, r)
			return
		}
		withPrincipal.ServeHTTP(w, r)
	})
}

// viewer is what the caller of r may see of the agent's tasks, by the
// principal of each task's framework: as on the master, view_frameworks
// and view_tasks must both allow it (the agent's state lists tasks; it
// has no framework entries to show without them). Everything when ACLs
// are off.
func (a *Agent) viewer(r *http.Request) func(owner string) error {
	acls := a.sec.acls.Load()
	if acls == nil {
		return func(string) error { return nil }
	}
	principal := authn.Principal(r.Context())
	return func(owner string) error {
		if err := acls.Authorize(principal, acl.ViewFrameworks, owner); err != nil {
			return err
		}
		return acls.Authorize(principal, acl.ViewTasks, owner)
	}
}

// security is what the agent's guarded endpoints check, replaced as a
// whole by a configuration reload (SIGHUP) while requests are served.
type security struct {
	acls  atomic.Pointer[acl.ACLs]
	authn authn.Authenticator
}

func newSecurity(acls *acl.ACLs, creds *acl.Credentials) *security {
	s := &security{authn: authn.Authenticator{Credentials: creds}}
	s.acls.Store(acls)
	return s
}

// SetSecurity replaces the ACLs and the credentials file's principals
// (a SIGHUP reload, as the master does). nil ACLs turn the checks off;
// nil credentials leave only client certificates to identify callers.
func (a *Agent) SetSecurity(acls *acl.ACLs, creds *acl.Credentials) {
	a.sec.acls.Store(acls)
	a.sec.authn.SetCredentials(creds)
}

// addTaskLocked tracks t and remembers its framework's principal (owners).
func (a *Agent) addTaskLocked(t *task) {
	a.tasks[t.key] = t
	if t.framework == nil {
		return
	}
	if a.owners == nil {
		a.owners = map[string]string{}
	}
	a.owners[t.key.framework] = t.framework.GetPrincipal()
}

// forgetOwner drops a framework's principal once the sandbox collector
// removed its last sandbox, unless a task of it arrived meanwhile.
func (a *Agent) forgetOwner(frameworkID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.tasks {
		if k.framework == frameworkID {
			return
		}
	}
	delete(a.owners, frameworkID)
}

// frameworkPrincipal is the principal of a framework whose tasks or
// sandboxes the agent holds; "" for one it does not know (including one
// whose tasks were all forgotten before this agent process started).
func (a *Agent) frameworkPrincipal(frameworkID string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.owners[frameworkID]
}
