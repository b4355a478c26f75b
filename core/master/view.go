package master

import (
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	corralpb "github.com/corral-project/corral/sdk/proto"

	"github.com/corral-project/corral/sdk/resources"
)

// State is the operator's view of the cluster, served as JSON.
type State struct {
	MasterID string `json:"master_id"`
	// Leader says whether this master leads; a standby's books are empty
	// and LeaderAddress names the master to ask (see SetLeadership).
	Leader        bool            `json:"leader"`
	LeaderAddress string          `json:"leader_address"`
	Allocator     AllocatorView   `json:"allocator"`
	Agents        []AgentView     `json:"agents"`
	Frameworks    []FrameworkView `json:"frameworks"`
	Roles         []RoleView      `json:"roles"`
	// CompletedFrameworks are the last frameworks torn down or timed out,
	// newest last (at most MaxCompletedFrameworks).
	CompletedFrameworks []FrameworkView `json:"completed_frameworks"`
}

// AllocatorView names the active allocator plugin.
type AllocatorView struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Path     string `json:"path"`
	Pid      int    `json:"pid,omitempty"`
	Restarts uint64 `json:"restarts"`
	// Generation counts the plugins made active (swaps and rollbacks).
	Generation uint64 `json:"generation"`
	Error      string `json:"error,omitempty"`
}

// AgentView is one agent.
type AgentView struct {
	ID        string `json:"id"`
	Hostname  string `json:"hostname"`
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
	// RegisteredUnixMs is when the agent (re-)registered.
	RegisteredUnixMs int64  `json:"registered_unix_ms,omitempty"`
	Total            string `json:"resources"`
	Used             string `json:"used"`
	// TotalStructured and UsedStructured are Total and Used as JSON
	// objects (resources.Structured): {"cpus":2,"ports":[[31000,32000]]}.
	TotalStructured map[string]any    `json:"resources_structured"`
	UsedStructured  map[string]any    `json:"used_structured"`
	Attributes      map[string]string `json:"attributes,omitempty"`
	// Drain is "draining" or "drained" while the operator drains the
	// agent, "" otherwise; DrainDeadline is when remaining tasks are killed.
	Drain         string     `json:"drain,omitempty"`
	DrainDeadline *time.Time `json:"drain_deadline,omitempty"`
}

// FrameworkView is one framework with its tasks. DominantShare is what
// the allocator plugin reported (share/framework/<id>), 0 if nothing.
type FrameworkView struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Roles        []string `json:"roles"`
	Suppressed   []string `json:"suppressed_roles,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	User         string   `json:"user,omitempty"`
	// Principal is the identity the framework registered as.
	Principal string `json:"principal,omitempty"`
	Hostname  string `json:"hostname,omitempty"`
	// FailoverTimeoutSeconds is how long the tasks outlive a disconnect.
	FailoverTimeoutSeconds float64 `json:"failover_timeout_seconds"`
	Checkpoint             bool    `json:"checkpoint,omitempty"`
	// StandbySchedulers are hot standbys waiting to take over.
	StandbySchedulers int     `json:"standby_schedulers"`
	Connected         bool    `json:"connected"`
	DominantShare     float64 `json:"dominant_share"`
	Allocated         string  `json:"allocated"`
	// AllocatedStructured is Allocated as a JSON object.
	AllocatedStructured map[string]any `json:"allocated_structured"`
	Offers              int            `json:"outstanding_offers"`
	// Demand is what the framework declared it still wants, by role.
	Demand    map[string][]ShapeView `json:"demand,omitempty"`
	Tasks     []TaskView             `json:"tasks"`
	Completed []TaskView             `json:"completed_tasks"`
	// Executors are the framework's custom executors, by agent.
	Executors []ExecutorView `json:"executors,omitempty"`
	// RegisteredAt is when the framework first subscribed; RemovedAt when
	// it was torn down (completed frameworks only).
	RegisteredAt time.Time  `json:"registered_at"`
	RemovedAt    *time.Time `json:"removed_at,omitempty"`
}

// ExecutorView is one custom executor of a framework on an agent.
type ExecutorView struct {
	ID        string `json:"executor_id"`
	Name      string `json:"name,omitempty"`
	AgentID   string `json:"agent_id"`
	Role      string `json:"role"`
	API       string `json:"api,omitempty"` // "corral" or "mesos"
	Resources string `json:"resources"`
	// ResourcesStructured is Resources as a JSON object.
	ResourcesStructured map[string]any `json:"resources_structured"`
	Command             string         `json:"command"`
	// Info is the ExecutorInfo the framework launched it with, for the
	// API adapters (Mesos's /state and GET_EXECUTORS); a copy.
	Info *corralpb.ExecutorInfo `json:"-"`
}

// ShapeView is Count pending tasks of one shape.
type ShapeView struct {
	Resources           string         `json:"resources"`
	ResourcesStructured map[string]any `json:"resources_structured"`
	Count               int            `json:"count"`
}

// TaskView is one task.
type TaskView struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	AgentID   string `json:"agent_id"`
	Role      string `json:"role"`
	State     string `json:"state"`
	Resources string `json:"resources"`
	// ExecutorID is the custom executor the task runs on; empty for the
	// agent's command executor.
	ExecutorID string `json:"executor_id,omitempty"`
	// ResourcesStructured is Resources as a JSON object.
	ResourcesStructured map[string]any `json:"resources_structured"`
	WithinGuarantee     bool           `json:"within_guarantee,omitempty"`
	Message             string         `json:"message,omitempty"`
	ExitCode            *int32         `json:"exit_code,omitempty"`
	Healthy             *bool          `json:"healthy,omitempty"` // set for tasks with a health check, once checked
	// UpdatedUnixMs is the time of the latest status.
	UpdatedUnixMs int64           `json:"updated_unix_ms,omitempty"`
	Revocation    *RevocationView `json:"revocation,omitempty"`
	// History is the task's states, oldest first, with when and why.
	History []TransitionView `json:"history"`
}

// TransitionView is one state a task entered.
type TransitionView struct {
	State   string    `json:"state"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Source  string    `json:"source,omitempty"`
}

// RevocationView is the allocator's revocation of a task: the framework
// got an inverse offer and the task is killed at the deadline.
type RevocationView struct {
	InverseOfferID string  `json:"inverse_offer_id"`
	Reason         string  `json:"reason"`
	GraceSeconds   float64 `json:"grace_seconds"`
	DeadlineUnixMs int64   `json:"deadline_unix_ms"`
	Killed         bool    `json:"killed"`
}

// RoleView is one role: its settings, what it holds and the share the
// allocator plugin reported for it (share/role/<name>, 0 if nothing).
// Guarantee, Limit and Allocated are resource strings, "" when empty.
type RoleView struct {
	Name          string   `json:"name"`
	Weight        float64  `json:"weight"`
	Priority      int64    `json:"priority"`
	Guarantee     string   `json:"guarantee"`
	Limit         string   `json:"limit"`
	Allocated     string   `json:"allocated"`
	DominantShare float64  `json:"dominant_share"`
	Frameworks    []string `json:"frameworks"`
	// The resource fields as JSON objects ({} when empty).
	GuaranteeStructured map[string]any `json:"guarantee_structured"`
	LimitStructured     map[string]any `json:"limit_structured"`
	AllocatedStructured map[string]any `json:"allocated_structured"`
}

// Metric keys of AllocateResponse.Metrics the operator view shows. They
// are the policies' convention (see plugins/allocator/drf), repeated here
// because the core does not import plugins.
const (
	metricRoleShare      = "share/role/"
	metricFrameworkShare = "share/framework/"
)

// Snapshot returns the operator's view now. Shares are those the allocator
// plugin last reported: fairness is policy, and a second computation in
// the core would disagree with policies that exclude resources or weigh
// differently.
func (m *Master) Snapshot() State {
	var av AllocatorView
	m.slot.mu.Lock()
	if p := m.slot.active; p != nil {
		_, info, err := p.handle.Current()
		av = AllocatorView{Name: p.choice.Name, Version: info.Version, Path: info.Path, Pid: info.Pid,
			Restarts: uint64(p.handle.Restarts()), Generation: m.slot.generation}
		if err != nil {
			av.Error = err.Error()
		}
	}
	m.slot.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := State{MasterID: m.id, Allocator: av, Agents: []AgentView{}, Frameworks: []FrameworkView{}}
	st.Leader, st.LeaderAddress = m.Leadership()
	for _, id := range sortedAgentIDs(m.agents) {
		a := m.agents[id]
		drain, deadline := m.drainViewLocked(a)
		st.Agents = append(st.Agents, AgentView{ID: id, Hostname: a.info.Hostname, URL: a.info.Url, Connected: a.connected,
			RegisteredUnixMs: a.registeredAt.UnixMilli(), Total: a.total.String(), Used: a.used.String(),
			TotalStructured: a.total.Structured(), UsedStructured: a.used.Structured(), Attributes: a.info.Attributes, Drain: drain, DrainDeadline: deadline})
	}
	for _, id := range sortedMapKeys(m.frameworks) {
		st.Frameworks = append(st.Frameworks, m.frameworkViewLocked(m.frameworks[id]))
	}
	st.CompletedFrameworks = append([]FrameworkView{}, m.completedFrameworks...)
	st.Roles = m.roleViewsLocked()
	return st
}

// frameworkViewLocked is the operator's view of one framework.
func (m *Master) frameworkViewLocked(f *frameworkEntry) FrameworkView {
	id := f.info.Id
	var alloc resources.Resources
	fv := FrameworkView{ID: id, Name: f.info.Name, Roles: sortedKeys(f.roles), Suppressed: sortedKeys(f.suppressed),
		Capabilities: append([]string(nil), f.info.Capabilities...), Connected: f.connected, StandbySchedulers: len(f.standbys), Offers: len(f.offers),
		User: f.info.User, Principal: f.info.Principal, Hostname: f.info.Hostname, FailoverTimeoutSeconds: f.info.FailoverTimeoutSeconds, Checkpoint: f.info.Checkpoint,
		DominantShare: m.pluginMetrics[metricFrameworkShare+id], RegisteredAt: f.registeredAt, Tasks: []TaskView{},
		Completed: []TaskView{}}
	for role, shapes := range f.demands {
		if fv.Demand == nil {
			fv.Demand = map[string][]ShapeView{}
		}
		for _, sh := range shapes {
			fv.Demand[role] = append(fv.Demand[role], ShapeView{Resources: sh.Resources.String(),
				ResourcesStructured: sh.Resources.Structured(), Count: sh.Count})
		}
	}
	for _, t := range f.tasks {
		alloc = alloc.Add(t.resources)
		fv.Tasks = append(fv.Tasks, taskView(t))
	}
	for _, o := range f.offers {
		alloc = alloc.Add(o.resources)
	}
	for _, t := range f.completed {
		fv.Completed = append(fv.Completed, taskView(t))
	}
	sort.Slice(fv.Tasks, func(i, j int) bool { return fv.Tasks[i].ID < fv.Tasks[j].ID })
	for _, e := range f.executors {
		fv.Executors = append(fv.Executors, ExecutorView{ID: e.info.GetExecutorId(), Name: e.info.GetName(), AgentID: e.agentID,
			Role: e.role, API: e.info.GetApi(), Resources: e.resources.String(), ResourcesStructured: e.resources.Structured(),
			Command: e.info.GetCommand().GetValue(), Info: proto.Clone(e.info).(*corralpb.ExecutorInfo)})
	}
	sort.Slice(fv.Executors, func(i, j int) bool {
		a, b := fv.Executors[i], fv.Executors[j]
		return a.AgentID < b.AgentID || (a.AgentID == b.AgentID && a.ID < b.ID)
	})
	fv.Allocated = alloc.String()
	fv.AllocatedStructured = alloc.Structured()
	return fv
}

// roleViewsLocked returns the views of the named roles, or of every known
// role when none is named, in name order. Allocated counts the tasks and
// outstanding offers under exactly that role.
func (m *Master) roleViewsLocked(names ...string) []RoleView {
	if len(names) == 0 {
		names = sortedMapKeys(m.roles)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	// Summed in place (resources.Sum): this walks every live task under
	// the books' lock on each metrics scrape, and folding Add allocated
	// once per task.
	sums := map[string]*resources.Sum{}
	sum := func(role string) *resources.Sum {
		s := sums[role]
		if s == nil {
			s = &resources.Sum{}
			sums[role] = s
		}
		return s
	}
	fws := map[string][]string{}
	for _, id := range sortedMapKeys(m.frameworks) {
		f := m.frameworks[id]
		for _, t := range f.tasks {
			if want[t.role] {
				sum(t.role).Add(t.resources)
			}
		}
		for _, o := range f.offers {
			if want[o.role] {
				sum(o.role).Add(o.resources)
			}
		}
		for _, r := range sortedKeys(f.roles) {
			if want[r] {
				fws[r] = append(fws[r], id)
			}
		}
	}
	alloc := make(map[string]resources.Resources, len(sums))
	for role, s := range sums {
		alloc[role] = s.Resources()
	}
	out := make([]RoleView, 0, len(names))
	for _, n := range names {
		rc := m.roles[n]
		v := RoleView{Name: n, Weight: effectiveWeight(rc.Weight), Priority: rc.Priority, Guarantee: rc.Guarantee.String(),
			Limit: rc.Limit.String(), Allocated: alloc[n].String(), DominantShare: m.pluginMetrics[metricRoleShare+n],
			Frameworks: fws[n], GuaranteeStructured: rc.Guarantee.Structured(), LimitStructured: rc.Limit.Structured(),
			AllocatedStructured: alloc[n].Structured()}
		if v.Frameworks == nil {
			v.Frameworks = []string{}
		}
		out = append(out, v)
	}
	return out
}

func taskView(t *taskEntry) TaskView {
	tv := TaskView{ID: t.info.TaskId, Name: t.info.Name, AgentID: t.agentID, Role: t.role, State: t.state.String(),
		Resources: t.resources.String(), ResourcesStructured: t.resources.Structured(), WithinGuarantee: t.withinGuarantee,
		ExecutorID: t.info.GetExecutor().GetExecutorId()}
	if t.status != nil {
		tv.Message = t.status.Message
		tv.UpdatedUnixMs = t.status.TimestampUnixMs
		if t.status.HasExitCode {
			c := t.status.ExitCode
			tv.ExitCode = &c
		}
		tv.Healthy = t.status.Healthy
	}
	tv.History = make([]TransitionView, 0, max(len(t.history), 1))
	if len(t.history) == 0 {
		tv.History = append(tv.History, TransitionView{State: t.state.String(), At: t.createdAt})
	}
	for _, h := range t.history {
		tv.History = append(tv.History, TransitionView{State: h.state.String(), At: h.at, Reason: h.reason, Message: h.message, Source: h.source})
	}
	if rv := t.revocation; rv != nil {
		tv.Revocation = &RevocationView{InverseOfferID: rv.id, Reason: rv.reason, GraceSeconds: rv.grace.Seconds(),
			DeadlineUnixMs: rv.deadline.UnixMilli(), Killed: rv.killSent}
	}
	return tv
}
