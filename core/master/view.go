package master

import (
	"sort"

	"github.com/corral-project/corral/sdk/resources"
)

// State is the operator's view of the cluster, served as JSON.
type State struct {
	MasterID   string          `json:"master_id"`
	Allocator  AllocatorView   `json:"allocator"`
	Agents     []AgentView     `json:"agents"`
	Frameworks []FrameworkView `json:"frameworks"`
	Roles      []RoleView      `json:"roles"`
}

// AllocatorView names the active allocator plugin.
type AllocatorView struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Path     string `json:"path"`
	Pid      int    `json:"pid,omitempty"`
	Restarts uint64 `json:"restarts"`
	Error    string `json:"error,omitempty"`
}

// AgentView is one agent.
type AgentView struct {
	ID         string            `json:"id"`
	Hostname   string            `json:"hostname"`
	URL        string            `json:"url"`
	Connected  bool              `json:"connected"`
	Total      string            `json:"resources"`
	Used       string            `json:"used"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// FrameworkView is one framework with its tasks.
type FrameworkView struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Roles         []string   `json:"roles"`
	Suppressed    []string   `json:"suppressed_roles,omitempty"`
	Connected     bool       `json:"connected"`
	DominantShare float64    `json:"dominant_share"`
	Allocated     string     `json:"allocated"`
	Offers        int        `json:"outstanding_offers"`
	Tasks         []TaskView `json:"tasks"`
	Completed     []TaskView `json:"completed_tasks"`
}

// TaskView is one task.
type TaskView struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	AgentID   string `json:"agent_id"`
	State     string `json:"state"`
	Resources string `json:"resources"`
	Message   string `json:"message,omitempty"`
	ExitCode  *int32 `json:"exit_code,omitempty"`
}

// RoleView is one role with its weight and DRF dominant share.
type RoleView struct {
	Name          string   `json:"name"`
	Weight        float64  `json:"weight"`
	DominantShare float64  `json:"dominant_share"`
	Allocated     string   `json:"allocated"`
	Frameworks    []string `json:"frameworks"`
}

// Snapshot returns the operator's view now. Dominant shares are computed
// from the ledger (allocated / cluster total, max over scalars), which is
// fact rather than policy; weighted role shares divide by the weight.
func (m *Master) Snapshot() State {
	var av AllocatorView
	if m.alloc != nil {
		_, info, err := m.alloc.Current()
		av = AllocatorView{Name: info.Name, Version: info.Version, Path: info.Path, Pid: info.Pid, Restarts: info.Generation}
		if av.Restarts > 0 {
			av.Restarts-- // generation 1 is the first start
		}
		if err != nil {
			av.Error = err.Error()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := State{MasterID: m.id, Allocator: av}
	var cluster resources.Resources
	for _, id := range sortedAgentIDs(m.agents) {
		a := m.agents[id]
		cluster = cluster.Add(a.total)
		st.Agents = append(st.Agents, AgentView{ID: id, Hostname: a.info.Hostname, URL: a.info.Url, Connected: a.connected,
			Total: a.total.String(), Used: a.used.String(), Attributes: a.info.Attributes})
	}
	roleAlloc := map[string]resources.Resources{}
	roleFws := map[string][]string{}
	fids := make([]string, 0, len(m.frameworks))
	for id := range m.frameworks {
		fids = append(fids, id)
	}
	sort.Strings(fids)
	for _, id := range fids {
		f := m.frameworks[id]
		var alloc resources.Resources
		fv := FrameworkView{ID: id, Name: f.info.Name, Roles: sortedKeys(f.roles), Suppressed: sortedKeys(f.suppressed),
			Connected: f.connected, Offers: len(f.offers)}
		for _, t := range f.tasks {
			alloc = alloc.Add(t.resources)
			roleAlloc[t.role] = roleAlloc[t.role].Add(t.resources)
			fv.Tasks = append(fv.Tasks, taskView(t))
		}
		for _, o := range f.offers {
			alloc = alloc.Add(o.resources)
			roleAlloc[o.role] = roleAlloc[o.role].Add(o.resources)
		}
		for _, t := range f.completed {
			fv.Completed = append(fv.Completed, taskView(t))
		}
		sort.Slice(fv.Tasks, func(i, j int) bool { return fv.Tasks[i].ID < fv.Tasks[j].ID })
		fv.DominantShare = DominantShare(alloc, cluster)
		fv.Allocated = alloc.String()
		st.Frameworks = append(st.Frameworks, fv)
		for r := range f.roles {
			roleFws[r] = append(roleFws[r], id)
		}
	}
	names := make([]string, 0, len(m.roles))
	for r := range m.roles {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, r := range names {
		w := m.roles[r]
		if w <= 0 {
			w = 1
		}
		st.Roles = append(st.Roles, RoleView{Name: r, Weight: w, DominantShare: DominantShare(roleAlloc[r], cluster) / w,
			Allocated: roleAlloc[r].String(), Frameworks: roleFws[r]})
	}
	return st
}

func taskView(t *taskEntry) TaskView {
	tv := TaskView{ID: t.info.TaskId, Name: t.info.Name, AgentID: t.agentID, State: t.state.String(), Resources: t.resources.String()}
	if t.status != nil {
		tv.Message = t.status.Message
		if t.status.HasExitCode {
			c := t.status.ExitCode
			tv.ExitCode = &c
		}
	}
	return tv
}

// DominantShare is max over scalar resources of alloc/total.
func DominantShare(alloc, total resources.Resources) float64 {
	var share float64
	for _, n := range alloc.ScalarNames() {
		if t := total.Scalar(n); t > 0 {
			if s := alloc.Scalar(n) / t; s > share {
				share = s
			}
		}
	}
	return share
}
