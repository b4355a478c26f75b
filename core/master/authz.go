package master

import (
	"errors"
	"slices"

	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Authorization: the transports authenticate the caller (core/authn) and
// ask the master, which holds the ACLs (Config.ACLs) and the books the
// objects are looked up in (a framework's principal, an agent's hostname).
// Frameworks are authorized at subscription for their roles and their
// principal is fixed from then on: every later call on the framework must
// come from that principal, and the tasks it launches are authorized
// against it (run_tasks). With no ACLs every check passes, as before ACLs
// existed, except that an authenticated framework still cannot claim
// another principal.

// ACLsEnabled reports whether ACLs are in force.
func (m *Master) ACLsEnabled() bool { return m.acls.Load().Enabled() }

// SetACLs replaces the ACLs (a SIGHUP reload); nil turns them off. Calls
// already authorized are not revisited: a framework keeps the roles it
// subscribed with until it re-subscribes.
func (m *Master) SetACLs(a *acl.ACLs) {
	m.acls.Store(a)
	m.log.Info("ACLs replaced", "enabled", a.Enabled())
}

// Authorize checks that principal may do action on object. A refusal is
// logged with principal, action and object, counted in
// corral_master_authorization_denied_total and returned as a CodeDenied
// error whose message names the missing permission.
func (m *Master) Authorize(principal string, action acl.Action, object string) error {
	err := m.acls.Load().Authorize(principal, action, object)
	if err == nil {
		return nil
	}
	m.metrics.authzDenied.WithLabelValues(string(action)).Inc()
	m.log.Warn("permission denied", "principal", principal, "action", action, "object", object)
	return &Error{Code: CodeDenied, Msg: err.Error()}
}

// IsDenied reports whether err is an ACL refusal.
func IsDenied(err error) bool {
	var d *acl.Denied
	return ErrorCode(err) == CodeDenied || errors.As(err, &d)
}

// AuthorizeSubscribe checks a subscription by principal (the
// authenticated caller, "" for anonymous): the declared principal must be
// the authenticated one (an empty declaration takes it), an existing
// framework may only be re-subscribed by the principal that registered
// it, and the principal must be allowed to register frameworks in each of
// its roles. It fills fi.Principal.
func (m *Master) AuthorizeSubscribe(principal string, fi *corralpb.FrameworkInfo) error {
	if fi == nil {
		return nil // validation names the missing info
	}
	switch {
	case principal != "" && fi.Principal == "":
		fi.Principal = principal
	case principal != "" && fi.Principal != principal:
		m.metrics.authzDenied.WithLabelValues(string(acl.RegisterFrameworks)).Inc()
		m.log.Warn("permission denied: declared principal differs", "principal", principal, "declared", fi.Principal)
		return callErr(CodeDenied, "permission denied: the framework declares principal %q but the caller authenticated as %q",
			fi.Principal, principal)
	case principal == "" && fi.Principal != "" && m.ACLsEnabled():
		m.metrics.authzDenied.WithLabelValues(string(acl.RegisterFrameworks)).Inc()
		return callErr(CodeDenied, "permission denied: the framework declares principal %q but the connection is not authenticated "+
			"(present a client certificate or credentials for it)", fi.Principal)
	}
	if fi.Id != "" {
		if owner, ok := m.FrameworkPrincipal(fi.Id); ok && owner != fi.Principal && (m.ACLsEnabled() || principal != "") {
			m.metrics.authzDenied.WithLabelValues(string(acl.RegisterFrameworks)).Inc()
			return callErr(CodeDenied, "permission denied: framework %s was registered by principal %q; principal %q may not subscribe as it",
				fi.Id, owner, fi.Principal)
		}
	}
	roles := slices.Clone(fi.Roles)
	if len(roles) == 0 {
		roles = []string{"*"}
	}
	for _, r := range roles {
		if err := m.Authorize(fi.Principal, acl.RegisterFrameworks, r); err != nil {
			return err
		}
	}
	return nil
}

// AuthorizeFrameworkCall checks that a scheduler call on frameworkID
// comes from the principal the framework subscribed as. An unknown
// framework passes (the call itself reports it).
func (m *Master) AuthorizeFrameworkCall(principal, frameworkID string) error {
	if principal == "" && !m.ACLsEnabled() {
		return nil
	}
	owner, ok := m.FrameworkPrincipal(frameworkID)
	if !ok || owner == principal {
		return nil
	}
	m.metrics.authzDenied.WithLabelValues("framework_call").Inc()
	m.log.Warn("permission denied: call on another principal's framework", "principal", principal, "framework_id", frameworkID, "owner", owner)
	who := "an unauthenticated caller"
	if principal != "" {
		who = "principal \"" + principal + "\""
	}
	return callErr(CodeDenied, "permission denied: framework %s belongs to principal %q; %s may not call on its behalf",
		frameworkID, owner, who)
}

// FrameworkPrincipal is the principal a framework (live or completed)
// registered as.
func (m *Master) FrameworkPrincipal(frameworkID string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.frameworks[frameworkID]; f != nil {
		return f.info.Principal, true
	}
	if f := m.removedFrameworkLocked(frameworkID); f != nil {
		return f.Principal, true
	}
	return "", false
}

// AgentHostname is a registered agent's hostname.
func (m *Master) AgentHostname(agentID string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.agents[agentID]; a != nil {
		return a.info.Hostname, true
	}
	return "", false
}

// SnapshotFor is Snapshot filtered by what principal may view: agents
// (view_agents), frameworks (view_frameworks), their tasks (view_tasks)
// and roles (view_roles). Without ACLs it is Snapshot.
func (m *Master) SnapshotFor(principal string) State {
	st := m.Snapshot()
	a := m.acls.Load()
	if !a.Enabled() {
		return st
	}
	allowed := func(action acl.Action, object string) bool { return a.Decide(principal, action, object).Allowed }
	st.Agents = slices.DeleteFunc(st.Agents, func(v AgentView) bool { return !allowed(acl.ViewAgents, v.Hostname) })
	frameworks := func(in []FrameworkView) []FrameworkView {
		out := in[:0]
		for _, f := range in {
			if !allowed(acl.ViewFrameworks, f.Principal) {
				continue
			}
			if !allowed(acl.ViewTasks, f.Principal) {
				f.Tasks, f.Completed, f.Executors = []TaskView{}, []TaskView{}, nil // executors go with their tasks
			}
			out = append(out, f)
		}
		return out
	}
	st.Frameworks = frameworks(st.Frameworks)
	st.CompletedFrameworks = frameworks(st.CompletedFrameworks)
	st.Roles = slices.DeleteFunc(st.Roles, func(v RoleView) bool { return !allowed(acl.ViewRoles, v.Name) })
	return st
}

// authorizeLaunchLocked checks that f's principal may run a task as its
// user: the command's user, else the framework's ("" is the agent's own
// user, checked as "").
func (m *Master) authorizeLaunchLocked(f *frameworkEntry, t *corralpb.TaskInfo) error {
	if !m.ACLsEnabled() {
		return nil
	}
	user := f.info.User
	if u := t.GetCommand().GetUser(); u != "" {
		user = u
	}
	return m.Authorize(f.info.Principal, acl.RunTasks, user)
}
