package api

import (
	"net/http"
	"slices"

	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/acl"
)

// allow checks that the request's principal may do action on object; if
// not it answers 403 naming the principal, action and object and returns
// false.
func allow(w http.ResponseWriter, r *http.Request, m *master.Master, action acl.Action, object string) bool {
	if err := m.Authorize(authn.Principal(r.Context()), action, object); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return false
	}
	return true
}

// allowFramework is allow for an action on a framework's work, whose
// object is the framework's principal. An unknown framework passes kill
// and teardown (which answer 404 themselves); a sandbox of a framework
// the master does not know (forgotten after a failover) is checked with
// the empty principal, which only an ANY rule covers.
func allowFramework(w http.ResponseWriter, r *http.Request, m *master.Master, action acl.Action, frameworkID string) bool {
	owner, ok := m.FrameworkPrincipal(frameworkID)
	if !ok && action != acl.AccessSandboxes {
		return true
	}
	return allow(w, r, m, action, owner)
}

// allowAgent is allow for an action on an agent, whose object is its
// hostname (the ID when the agent is unknown).
func allowAgent(w http.ResponseWriter, r *http.Request, m *master.Master, action acl.Action, agentID string) bool {
	host, ok := m.AgentHostname(agentID)
	if !ok {
		host = agentID
	}
	return allow(w, r, m, action, host)
}

// visibleRoles filters roles by view_roles.
func visibleRoles(r *http.Request, m *master.Master, roles []master.RoleView) []master.RoleView {
	if !m.ACLsEnabled() {
		return roles
	}
	p := authn.Principal(r.Context())
	return slices.DeleteFunc(roles, func(v master.RoleView) bool { return m.Authorize(p, acl.ViewRoles, v.Name) != nil })
}

func state(r *http.Request, m *master.Master) master.State {
	return m.SnapshotFor(authn.Principal(r.Context()))
}
