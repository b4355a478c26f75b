// Package acl is corral's authorization model, after Mesos's local
// authorizer (acls.proto): for each action a list of rules, each naming
// the principals it applies to (the subject) and the objects they may act
// on. Rules are checked in order and the first whose subject and object
// both match decides; an object list of "NONE" matches everything and
// denies. A request no rule matches is allowed only when the ACLs are
// permissive.
//
// Principals are names taken from a client certificate (its common name)
// or from credentials (see Credentials). "ANY" in a list matches every
// authenticated principal or every object; an unauthenticated caller has
// the empty principal, which only a permissive default lets through.
//
// The package is pure: no I/O beyond reading a credentials file, no
// transport. The master enforces it (core/master); conf parses it.
package acl

import (
	"fmt"
	"slices"
	"strings"
)

// Action is what a principal asks to do.
type Action string

// The actions the master checks. The comment names the object the rule's
// object list is matched against.
const (
	// RegisterFrameworks: subscribe a framework in a role (object: role).
	RegisterFrameworks Action = "register_frameworks"
	// RunTasks: launch tasks as an OS user (object: user; the framework's
	// user, "" meaning the agent's own user).
	RunTasks Action = "run_tasks"
	// KillTasks: kill a task through the operator API (object: the
	// principal of the framework that owns it).
	KillTasks Action = "kill_tasks"
	// TeardownFrameworks: tear down a framework (object: its principal).
	TeardownFrameworks Action = "teardown_frameworks"
	// UpdateWeights: change a role's weight or priority (object: role).
	UpdateWeights Action = "update_weights"
	// UpdateQuotas: change a role's guarantee or limit (object: role).
	UpdateQuotas Action = "update_quotas"
	// UpdateAllocator: swap, promote or abort the allocator plugin
	// (object: the plugin name; promote and abort name the candidate).
	UpdateAllocator Action = "update_allocator"
	// DrainAgents: drain or undrain an agent (object: its hostname).
	DrainAgents Action = "drain_agents"
	// RegisterAgents: register as an agent (object: its hostname).
	RegisterAgents Action = "register_agents"
	// ViewFrameworks: see a framework in state (object: its principal).
	ViewFrameworks Action = "view_frameworks"
	// ViewTasks: see a framework's tasks in state (object: its principal).
	ViewTasks Action = "view_tasks"
	// ViewAgents: see an agent in state (object: its hostname).
	ViewAgents Action = "view_agents"
	// ViewRoles: see a role in state (object: role).
	ViewRoles Action = "view_roles"
	// AccessSandboxes: read a task's sandbox (object: the principal of the
	// framework that owns it).
	AccessSandboxes Action = "access_sandboxes"
	// ExecTasks: run a command beside a running task, in its cgroups,
	// namespaces and sandbox (corral task exec; Mesos's
	// launch_nested_container_sessions). Object: the principal of the
	// framework that owns the task.
	ExecTasks Action = "exec_tasks"
)

// Actions lists every action with the HCL name of its object list, in the
// order documentation shows them.
var Actions = []struct {
	Action Action
	Object string
}{
	{RegisterFrameworks, "roles"},
	{RunTasks, "users"},
	{KillTasks, "framework_principals"},
	{TeardownFrameworks, "framework_principals"},
	{UpdateWeights, "roles"},
	{UpdateQuotas, "roles"},
	{UpdateAllocator, "allocators"},
	{DrainAgents, "agents"},
	{RegisterAgents, "agents"},
	{ViewFrameworks, "framework_principals"},
	{ViewTasks, "framework_principals"},
	{ViewAgents, "agents"},
	{ViewRoles, "roles"},
	{AccessSandboxes, "framework_principals"},
	{ExecTasks, "framework_principals"},
}

// ObjectName is the HCL name of action's object list ("" for an unknown
// action).
func ObjectName(a Action) string {
	for _, x := range Actions {
		if x.Action == a {
			return x.Object
		}
	}
	return ""
}

// Special entity values, as Mesos's Entity types.
const (
	Any  = "ANY"
	None = "NONE"
)

// Entity is a list of names, or one of ANY and NONE.
type Entity struct {
	Values []string
	Any    bool
	None   bool
}

// NewEntity builds an entity from an HCL list: ["ANY"], ["NONE"] or
// names. Mixing ANY or NONE with names, or an empty list, is an error.
func NewEntity(values []string) (Entity, error) {
	switch {
	case len(values) == 0:
		return Entity{}, fmt.Errorf("an empty list matches nothing; use [%q] or [%q] or names", Any, None)
	case len(values) == 1 && values[0] == Any:
		return Entity{Any: true}, nil
	case len(values) == 1 && values[0] == None:
		return Entity{None: true}, nil
	}
	for _, v := range values {
		if v == Any || v == None {
			return Entity{}, fmt.Errorf("%q cannot be mixed with names", v)
		}
		if strings.TrimSpace(v) == "" {
			return Entity{}, fmt.Errorf("an empty name matches nothing")
		}
	}
	return Entity{Values: slices.Clone(values)}, nil
}

func (e Entity) String() string {
	switch {
	case e.Any:
		return Any
	case e.None:
		return None
	}
	return strings.Join(e.Values, ",")
}

// matchSubject: does the rule's principal list cover principal? An
// unauthenticated caller ("") is matched by no rule.
func (e Entity) matchSubject(principal string) bool {
	if principal == "" {
		return false
	}
	return e.Any || slices.Contains(e.Values, principal)
}

// matchObject: does the rule's object list cover object? NONE covers
// everything (and the rule then denies). A role value "eng/*" covers every
// role below eng, as Mesos's nested roles.
func (e Entity) matchObject(object string) bool {
	if e.Any || e.None {
		return true
	}
	for _, v := range e.Values {
		if v == object {
			return true
		}
		if parent, ok := strings.CutSuffix(v, "/*"); ok && strings.HasPrefix(object, parent+"/") {
			return true
		}
	}
	return false
}

// Rule is one ACL entry: the principals it applies to and the objects
// they may act on (NONE: may not act on any).
type Rule struct {
	Principals Entity
	Objects    Entity
}

// ACLs are the rules of every action and the default for requests no rule
// matches.
type ACLs struct {
	// Permissive allows what no rule matches (Mesos's "permissive").
	// false, the default of an acl block, denies it.
	Permissive bool
	Rules      map[Action][]Rule
}

// Decision explains an authorization: whether it was allowed and which
// rule, if any, decided.
type Decision struct {
	Allowed bool
	// Rule is the index of the deciding rule in its action's list, -1 when
	// none matched and the default decided.
	Rule int
}

// Decide evaluates a request.
func (a *ACLs) Decide(principal string, action Action, object string) Decision {
	for i, r := range a.Rules[action] {
		if r.Principals.matchSubject(principal) && r.Objects.matchObject(object) {
			return Decision{Allowed: !r.Objects.None, Rule: i}
		}
	}
	return Decision{Allowed: a.Permissive, Rule: -1}
}

// Denied is a refused request. Its message names the principal, the
// missing permission and the object.
type Denied struct {
	Principal string
	Action    Action
	Object    string
	// ByRule is true when a NONE rule denied, false when no rule matched.
	ByRule bool
}

func (d *Denied) Error() string {
	who := fmt.Sprintf("principal %q", d.Principal)
	if d.Principal == "" {
		who = "an unauthenticated caller (no client certificate or credentials)"
	}
	what := ObjectName(d.Action)
	if what == "" {
		what = "object"
	}
	why := "no acl rule grants it"
	if d.ByRule {
		why = "an acl rule denies it"
	}
	return fmt.Sprintf("permission denied: %s may not %s on %s %q (%s: acl.%s)",
		who, strings.ReplaceAll(string(d.Action), "_", " "), strings.TrimSuffix(what, "s"), d.Object, why, d.Action)
}

// Authorize returns nil when principal may do action on object, else a
// *Denied. A nil *ACLs (no acl block) allows everything.
func (a *ACLs) Authorize(principal string, action Action, object string) error {
	if a == nil {
		return nil
	}
	d := a.Decide(principal, action, object)
	if d.Allowed {
		return nil
	}
	return &Denied{Principal: principal, Action: action, Object: object, ByRule: d.Rule >= 0}
}

// Enabled reports whether ACLs are in force (a nil *ACLs is "off").
func (a *ACLs) Enabled() bool { return a != nil }
