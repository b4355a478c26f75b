package allocator

import (
	"fmt"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// Conversions between domain types and wire types. Wire-to-domain
// conversions validate resources and name what they could not convert.

func agentToProto(a *Agent) *allocatorpb.Agent {
	if a == nil {
		return nil
	}
	return &allocatorpb.Agent{
		Id:         a.ID,
		Hostname:   a.Hostname,
		Total:      a.Total.ToProto(),
		Attributes: a.Attributes,
		Active:     a.Active,
	}
}

func agentFromProto(p *allocatorpb.Agent) (*Agent, error) {
	if p == nil {
		return nil, fmt.Errorf("agent is missing")
	}
	total, err := resources.FromProto(p.GetTotal())
	if err != nil {
		return nil, fmt.Errorf("agent %q: %w", p.GetId(), err)
	}
	return &Agent{
		ID:         p.GetId(),
		Hostname:   p.GetHostname(),
		Total:      total,
		Attributes: p.GetAttributes(),
		Active:     p.GetActive(),
	}, nil
}

func frameworkToProto(f *Framework) *allocatorpb.Framework {
	if f == nil {
		return nil
	}
	p := &allocatorpb.Framework{
		Id:              f.ID,
		Roles:           f.Roles,
		Active:          f.Active,
		SuppressedRoles: f.SuppressedRoles,
		Capabilities:    f.Capabilities,
	}
	if len(f.MinAllocatable) > 0 {
		p.MinAllocatable = make(map[string]*corralpb.MinAllocatable, len(f.MinAllocatable))
		for role, alts := range f.MinAllocatable {
			p.MinAllocatable[role] = MinAllocatableToProto(alts)
		}
	}
	return p
}

// MinAllocatableToProto converts alternative minimum offers to the wire.
func MinAllocatableToProto(alts []resources.Resources) *corralpb.MinAllocatable {
	m := &corralpb.MinAllocatable{}
	for _, a := range alts {
		m.Alternatives = append(m.Alternatives, &corralpb.ResourceList{Resources: a.ToProto()})
	}
	return m
}

// MinAllocatableFromProto converts and validates alternative minimum
// offers; an empty alternative is an error (it would match everything).
func MinAllocatableFromProto(p *corralpb.MinAllocatable) ([]resources.Resources, error) {
	var out []resources.Resources
	for i, l := range p.GetAlternatives() {
		r, err := resources.FromProto(l.GetResources())
		if err != nil {
			return nil, fmt.Errorf("alternative %d: %w", i, err)
		}
		if r.IsEmpty() {
			return nil, fmt.Errorf("alternative %d is empty", i)
		}
		out = append(out, r)
	}
	return out, nil
}

func frameworkFromProto(p *allocatorpb.Framework) (*Framework, error) {
	if p == nil {
		return nil, fmt.Errorf("framework is missing")
	}
	f := &Framework{
		ID:              p.GetId(),
		Roles:           p.GetRoles(),
		Active:          p.GetActive(),
		SuppressedRoles: p.GetSuppressedRoles(),
		Capabilities:    p.GetCapabilities(),
	}
	for role, m := range p.GetMinAllocatable() {
		alts, err := MinAllocatableFromProto(m)
		if err != nil {
			return nil, fmt.Errorf("framework %q: min_allocatable of role %q: %w", p.GetId(), role, err)
		}
		if f.MinAllocatable == nil {
			f.MinAllocatable = map[string][]resources.Resources{}
		}
		f.MinAllocatable[role] = alts
	}
	return f, nil
}

func roleToProto(r *Role) *allocatorpb.Role {
	if r == nil {
		return nil
	}
	return &allocatorpb.Role{Name: r.Name, Weight: r.Weight, Priority: r.Priority,
		Guarantee: r.Guarantee.ToProto(), Limit: r.Limit.ToProto()}
}

func roleFromProto(p *allocatorpb.Role) (*Role, error) {
	if p == nil {
		return nil, fmt.Errorf("role is missing")
	}
	g, err := resources.FromProto(p.GetGuarantee())
	if err != nil {
		return nil, fmt.Errorf("role %q: guarantee: %w", p.GetName(), err)
	}
	l, err := resources.FromProto(p.GetLimit())
	if err != nil {
		return nil, fmt.Errorf("role %q: limit: %w", p.GetName(), err)
	}
	return &Role{Name: p.GetName(), Weight: p.GetWeight(), Priority: p.GetPriority(), Guarantee: g, Limit: l}, nil
}

func taskToProto(t *Task) *allocatorpb.Task {
	if t == nil {
		return nil
	}
	return &allocatorpb.Task{
		TaskId: t.ID, FrameworkId: t.FrameworkID, Role: t.Role, AgentId: t.AgentID,
		Resources: t.Resources.ToProto(), StartedAtMs: int64(t.StartedAt), WithinGuarantee: t.WithinGuarantee,
	}
}

func taskFromProto(p *allocatorpb.Task) (*Task, error) {
	if p == nil {
		return nil, fmt.Errorf("task is missing")
	}
	res, err := resources.FromProto(p.GetResources())
	if err != nil {
		return nil, fmt.Errorf("task %q of framework %q: %w", p.GetTaskId(), p.GetFrameworkId(), err)
	}
	return &Task{
		ID: p.GetTaskId(), FrameworkID: p.GetFrameworkId(), Role: p.GetRole(), AgentID: p.GetAgentId(),
		Resources: res, StartedAt: LogicalTime(p.GetStartedAtMs()), WithinGuarantee: p.GetWithinGuarantee(),
	}, nil
}

// TaskShapesToProto converts demand shapes to the wire.
func TaskShapesToProto(shapes []TaskShape) []*corralpb.TaskShape {
	out := make([]*corralpb.TaskShape, 0, len(shapes))
	for _, s := range shapes {
		out = append(out, &corralpb.TaskShape{Resources: s.Resources.ToProto(), Count: uint32(max(s.Count, 0))})
	}
	return out
}

// TaskShapesFromProto converts and validates demand shapes: each must ask
// for some resources and at least one task.
func TaskShapesFromProto(in []*corralpb.TaskShape) ([]TaskShape, error) {
	out := make([]TaskShape, 0, len(in))
	for i, p := range in {
		r, err := resources.FromProto(p.GetResources())
		if err != nil {
			return nil, fmt.Errorf("shape %d: %w", i, err)
		}
		if r.IsEmpty() {
			return nil, fmt.Errorf("shape %d asks for no resources", i)
		}
		if p.GetCount() == 0 {
			return nil, fmt.Errorf("shape %d has count 0", i)
		}
		out = append(out, TaskShape{Resources: r, Count: int(p.GetCount())})
	}
	return out, nil
}

func demandToProto(d *Demand) *allocatorpb.Demand {
	if d == nil {
		return nil
	}
	return &allocatorpb.Demand{FrameworkId: d.FrameworkID, Role: d.Role, Shapes: TaskShapesToProto(d.Shapes)}
}

func demandFromProto(p *allocatorpb.Demand) (*Demand, error) {
	if p == nil {
		return nil, fmt.Errorf("demand is missing")
	}
	shapes, err := TaskShapesFromProto(p.GetShapes())
	if err != nil {
		return nil, fmt.Errorf("demand of framework %q role %q: %w", p.GetFrameworkId(), p.GetRole(), err)
	}
	return &Demand{FrameworkID: p.GetFrameworkId(), Role: p.GetRole(), Shapes: shapes}, nil
}

func allocationToProto(a *Allocation, enc idEncoder) *allocatorpb.Allocation {
	if a == nil {
		return nil
	}
	p := &allocatorpb.Allocation{Resources: a.Resources.ToProto()}
	p.FrameworkId, p.FrameworkHandle = enc.encode(a.FrameworkID)
	p.Role, p.RoleHandle = enc.encode(a.Role)
	p.AgentId, p.AgentHandle = enc.encode(a.AgentID)
	return p
}

func allocationFromProto(p *allocatorpb.Allocation, tab idTable) (*Allocation, error) {
	if p == nil {
		return nil, fmt.Errorf("allocation is missing")
	}
	fw, err := tab.decode(p.GetFrameworkId(), p.GetFrameworkHandle(), "framework")
	if err != nil {
		return nil, fmt.Errorf("allocation: %w", err)
	}
	role, err := tab.decode(p.GetRole(), p.GetRoleHandle(), "role")
	if err != nil {
		return nil, fmt.Errorf("allocation of framework %q: %w", fw, err)
	}
	agent, err := tab.decode(p.GetAgentId(), p.GetAgentHandle(), "agent")
	if err != nil {
		return nil, fmt.Errorf("allocation of framework %q: %w", fw, err)
	}
	res, err := resources.FromProto(p.GetResources())
	if err != nil {
		return nil, fmt.Errorf("allocation of framework %q on agent %q: %w", fw, agent, err)
	}
	return &Allocation{FrameworkID: fw, Role: role, AgentID: agent, Resources: res}, nil
}

func filterToProto(f *Filter) *allocatorpb.Filter {
	return &allocatorpb.Filter{
		FrameworkId: f.FrameworkID,
		Role:        f.Role,
		AgentId:     f.AgentID,
		Resources:   f.Resources.ToProto(),
		ExpiresAtMs: int64(f.ExpiresAt),
	}
}

func filterFromProto(p *allocatorpb.Filter) (*Filter, error) {
	if p == nil {
		return nil, fmt.Errorf("filter is missing")
	}
	res, err := resources.FromProto(p.GetResources())
	if err != nil {
		return nil, fmt.Errorf("filter of framework %q on agent %q: %w", p.GetFrameworkId(), p.GetAgentId(), err)
	}
	return &Filter{
		FrameworkID: p.GetFrameworkId(),
		Role:        p.GetRole(),
		AgentID:     p.GetAgentId(),
		Resources:   res,
		ExpiresAt:   LogicalTime(p.GetExpiresAtMs()),
	}, nil
}

// mergeChunk adds one Init chunk to snap.
func mergeChunk(snap *Snapshot, c *allocatorpb.InitChunk) error {
	for _, p := range c.GetAgents() {
		a, err := agentFromProto(p)
		if err != nil {
			return err
		}
		snap.Agents = append(snap.Agents, *a)
	}
	for _, p := range c.GetFrameworks() {
		f, err := frameworkFromProto(p)
		if err != nil {
			return err
		}
		snap.Frameworks = append(snap.Frameworks, *f)
	}
	for _, p := range c.GetRoles() {
		r, err := roleFromProto(p)
		if err != nil {
			return err
		}
		snap.Roles = append(snap.Roles, *r)
	}
	for _, p := range c.GetAllocations() {
		a, err := allocationFromProto(p, nil)
		if err != nil {
			return err
		}
		snap.Allocations = append(snap.Allocations, *a)
	}
	for _, p := range c.GetFilters() {
		f, err := filterFromProto(p)
		if err != nil {
			return err
		}
		snap.Filters = append(snap.Filters, *f)
	}
	for _, p := range c.GetTasks() {
		t, err := taskFromProto(p)
		if err != nil {
			return err
		}
		snap.Tasks = append(snap.Tasks, *t)
	}
	for _, p := range c.GetDemands() {
		d, err := demandFromProto(p)
		if err != nil {
			return err
		}
		snap.Demands = append(snap.Demands, *d)
	}
	return nil
}

// InitChunkSize is the most entries (agents, frameworks, roles, allocations
// and filters together) one Init chunk carries, which keeps every message
// far below the gRPC size limit however large the cluster.
const InitChunkSize = 1000

// snapshotChunks splits snap into Init chunks of at most size entries. Every
// chunk carries the version and logical time; an empty snapshot is one
// empty chunk so that the plugin still learns the version.
func snapshotChunks(snap *Snapshot, size int) []*allocatorpb.InitChunk {
	var chunks []*allocatorpb.InitChunk
	var cur *allocatorpb.InitChunk
	n := 0
	next := func() *allocatorpb.InitChunk {
		if cur == nil || n == size {
			cur = &allocatorpb.InitChunk{Version: snap.Version, LogicalNowMs: int64(snap.Now)}
			chunks = append(chunks, cur)
			n = 0
		}
		n++
		return cur
	}
	for i := range snap.Agents {
		c := next()
		c.Agents = append(c.Agents, agentToProto(&snap.Agents[i]))
	}
	for i := range snap.Frameworks {
		c := next()
		c.Frameworks = append(c.Frameworks, frameworkToProto(&snap.Frameworks[i]))
	}
	for i := range snap.Roles {
		c := next()
		c.Roles = append(c.Roles, roleToProto(&snap.Roles[i]))
	}
	for i := range snap.Allocations {
		c := next()
		c.Allocations = append(c.Allocations, allocationToProto(&snap.Allocations[i], nil))
	}
	for i := range snap.Filters {
		c := next()
		c.Filters = append(c.Filters, filterToProto(&snap.Filters[i]))
	}
	for i := range snap.Tasks {
		c := next()
		c.Tasks = append(c.Tasks, taskToProto(&snap.Tasks[i]))
	}
	for i := range snap.Demands {
		c := next()
		c.Demands = append(c.Demands, demandToProto(&snap.Demands[i]))
	}
	if len(chunks) == 0 {
		chunks = append(chunks, &allocatorpb.InitChunk{Version: snap.Version, LogicalNowMs: int64(snap.Now)})
	}
	return chunks
}

func deltaToProto(d *Delta, enc idEncoder) (*allocatorpb.Delta, error) {
	p := &allocatorpb.Delta{Version: d.Version, AtMs: int64(d.At)}
	switch d.Kind {
	case AgentAdded:
		p.Change = &allocatorpb.Delta_AgentAdded{AgentAdded: agentToProto(d.Agent)}
	case AgentUpdated:
		p.Change = &allocatorpb.Delta_AgentUpdated{AgentUpdated: agentToProto(d.Agent)}
	case AgentRemoved:
		p.Change = &allocatorpb.Delta_AgentRemoved_{AgentRemoved: &allocatorpb.Delta_AgentRemoved{AgentId: d.AgentID}}
	case FrameworkAdded:
		p.Change = &allocatorpb.Delta_FrameworkAdded{FrameworkAdded: frameworkToProto(d.Framework)}
	case FrameworkUpdated:
		p.Change = &allocatorpb.Delta_FrameworkUpdated{FrameworkUpdated: frameworkToProto(d.Framework)}
	case FrameworkRemoved:
		p.Change = &allocatorpb.Delta_FrameworkRemoved_{FrameworkRemoved: &allocatorpb.Delta_FrameworkRemoved{FrameworkId: d.FrameworkID}}
	case RoleUpdated:
		p.Change = &allocatorpb.Delta_RoleUpdated{RoleUpdated: roleToProto(d.Role)}
	case Allocated:
		p.Change = &allocatorpb.Delta_Allocated{Allocated: allocationToProto(d.Allocation, enc)}
	case Recovered:
		p.Change = &allocatorpb.Delta_Recovered_{Recovered: &allocatorpb.Delta_Recovered{
			Allocation:    allocationToProto(d.Allocation, enc),
			RefuseSeconds: d.RefuseSeconds,
		}}
	case Suppressed:
		p.Change = &allocatorpb.Delta_Suppressed{Suppressed: &allocatorpb.Delta_Suppress{FrameworkId: d.FrameworkID, Roles: d.Roles}}
	case Revived:
		p.Change = &allocatorpb.Delta_Revived{Revived: &allocatorpb.Delta_Revive{FrameworkId: d.FrameworkID, Roles: d.Roles}}
	case TaskAdded:
		p.Change = &allocatorpb.Delta_TaskAdded{TaskAdded: taskToProto(d.Task)}
	case TaskUpdated:
		p.Change = &allocatorpb.Delta_TaskUpdated{TaskUpdated: taskToProto(d.Task)}
	case TaskRemoved:
		p.Change = &allocatorpb.Delta_TaskRemoved_{TaskRemoved: &allocatorpb.Delta_TaskRemoved{FrameworkId: d.FrameworkID, TaskId: d.TaskID}}
	case DemandUpdated:
		p.Change = &allocatorpb.Delta_DemandUpdated{DemandUpdated: demandToProto(d.Demand)}
	default:
		return nil, fmt.Errorf("delta version %d: unknown kind %v", d.Version, d.Kind)
	}
	return p, nil
}

// deltaFromProto converts one delta (offer reference runs are expanded by
// allocateRequestFromProto).
func deltaFromProto(p *allocatorpb.Delta, tab idTable) (*Delta, error) {
	d := &Delta{Version: p.GetVersion(), At: LogicalTime(p.GetAtMs())}
	var err error
	switch c := p.GetChange().(type) {
	case *allocatorpb.Delta_AgentAdded:
		d.Kind = AgentAdded
		d.Agent, err = agentFromProto(c.AgentAdded)
	case *allocatorpb.Delta_AgentUpdated:
		d.Kind = AgentUpdated
		d.Agent, err = agentFromProto(c.AgentUpdated)
	case *allocatorpb.Delta_AgentRemoved_:
		d.Kind = AgentRemoved
		d.AgentID = c.AgentRemoved.GetAgentId()
	case *allocatorpb.Delta_FrameworkAdded:
		d.Kind = FrameworkAdded
		d.Framework, err = frameworkFromProto(c.FrameworkAdded)
	case *allocatorpb.Delta_FrameworkUpdated:
		d.Kind = FrameworkUpdated
		d.Framework, err = frameworkFromProto(c.FrameworkUpdated)
	case *allocatorpb.Delta_FrameworkRemoved_:
		d.Kind = FrameworkRemoved
		d.FrameworkID = c.FrameworkRemoved.GetFrameworkId()
	case *allocatorpb.Delta_RoleUpdated:
		d.Kind = RoleUpdated
		d.Role, err = roleFromProto(c.RoleUpdated)
	case *allocatorpb.Delta_Allocated:
		d.Kind = Allocated
		d.Allocation, err = allocationFromProto(c.Allocated, tab)
	case *allocatorpb.Delta_Recovered_:
		d.Kind = Recovered
		d.Allocation, err = allocationFromProto(c.Recovered.GetAllocation(), tab)
		d.RefuseSeconds = c.Recovered.GetRefuseSeconds()
	case *allocatorpb.Delta_Suppressed:
		d.Kind = Suppressed
		d.FrameworkID = c.Suppressed.GetFrameworkId()
		d.Roles = c.Suppressed.GetRoles()
	case *allocatorpb.Delta_Revived:
		d.Kind = Revived
		d.FrameworkID = c.Revived.GetFrameworkId()
		d.Roles = c.Revived.GetRoles()
	case *allocatorpb.Delta_TaskAdded:
		d.Kind = TaskAdded
		d.Task, err = taskFromProto(c.TaskAdded)
	case *allocatorpb.Delta_TaskUpdated:
		d.Kind = TaskUpdated
		d.Task, err = taskFromProto(c.TaskUpdated)
	case *allocatorpb.Delta_TaskRemoved_:
		d.Kind = TaskRemoved
		d.FrameworkID = c.TaskRemoved.GetFrameworkId()
		d.TaskID = c.TaskRemoved.GetTaskId()
	case *allocatorpb.Delta_DemandUpdated:
		d.Kind = DemandUpdated
		d.Demand, err = demandFromProto(c.DemandUpdated)
	default:
		return nil, fmt.Errorf("delta version %d has no change", p.GetVersion())
	}
	if err != nil {
		return nil, fmt.Errorf("delta version %d (%v): %w", p.GetVersion(), d.Kind, err)
	}
	return d, nil
}

// allocateRequestToProto converts a request; refs (nil: none) turns runs
// of deltas that repeat recent offers into references, and enc (nil: none)
// sends the IDs it holds as handles.
func allocateRequestToProto(r *AllocateRequest, refs *offerMemory, enc idEncoder, note func(*Delta), reads uint64) (*allocatorpb.AllocateRequest, error) {
	p := &allocatorpb.AllocateRequest{
		BaseVersion:   r.BaseVersion,
		TargetVersion: r.TargetVersion,
		LogicalNowMs:  int64(r.Now),
		Trigger:       allocatorpb.AllocateRequest_Trigger(r.Trigger),
		MaxOffers:     uint32(max(r.MaxOffers, 0)),
		RevokeAfterMs: int64(r.RevokeAfter),
	}
	if refs != nil {
		refs.mu.Lock()
		defer refs.mu.Unlock()
	}
	var err error
	if p.Deltas, err = refs.compressDeltas(r.Deltas, enc, note, reads); err != nil {
		return nil, err
	}
	return p, nil
}

func allocateRequestFromProto(p *allocatorpb.AllocateRequest, refs *offerMemory) (*AllocateRequest, error) {
	return allocateRequestFromProtoInto(p, refs, nil, nil)
}

// allocateRequestFromProtoInto is allocateRequestFromProto expanding the
// deltas into buf when it is large enough, with handles resolved in tab.
func allocateRequestFromProtoInto(p *allocatorpb.AllocateRequest, refs *offerMemory, buf []Delta, tab idTable) (*AllocateRequest, error) {
	r := &AllocateRequest{
		BaseVersion:   p.GetBaseVersion(),
		TargetVersion: p.GetTargetVersion(),
		Now:           LogicalTime(p.GetLogicalNowMs()),
		Trigger:       Trigger(p.GetTrigger()),
		MaxOffers:     int(p.GetMaxOffers()),
		RevokeAfter:   LogicalTime(p.GetRevokeAfterMs()),
	}
	// Sized for the expanded runs up front: at scale a request carries a
	// few runs of thousands of offers each, and growing the slice while
	// expanding them copied every delta several times.
	n := 0
	for _, pd := range p.GetDeltas() {
		if run := pd.GetOfferRefs(); run != nil {
			n += runLen(run)
		} else {
			n++
		}
	}
	// A range's count is only checked against the offers it names while
	// it is expanded: no more room up front than a response can hold.
	n = min(n, maxRunOffers)
	if cap(buf) >= n {
		r.Deltas = buf[:0]
	} else {
		r.Deltas = make([]Delta, 0, n)
	}
	for _, pd := range p.GetDeltas() {
		if run := pd.GetOfferRefs(); run != nil {
			var err error
			if r.Deltas, err = refs.expandRun(r.Deltas, pd, run); err != nil {
				return nil, err
			}
			continue
		}
		d, err := deltaFromProto(pd, tab)
		if err != nil {
			return nil, err
		}
		r.Deltas = append(r.Deltas, *d)
	}
	return r, nil
}

func allocateResponseToProto(r *AllocateResponse, enc idEncoder) *allocatorpb.AllocateResponse {
	return allocateResponseToProtoIn(&allocatorpb.AllocateResponse{},
		make([]*allocatorpb.OfferProposal, 0, len(r.Offers)), make([]allocatorpb.OfferProposal, len(r.Offers)), r, enc)
}

// allocateResponseToProtoIn builds r's wire form in p, with offer messages
// in ops (len(r.Offers) zero messages) listed in ptrs (empty): one array
// backs every offer message, as a busy cycle has thousands. IDs enc holds
// go as handles.
// lastEncoded is the last ID an encoder encoded, and its wire form.
type lastEncoded struct {
	id, s string
	h     uint32
	set   bool
}

func (l *lastEncoded) encode(enc idEncoder, id string) (string, uint32) {
	if !l.set || l.id != id {
		l.s, l.h = enc.encode(id)
		l.id, l.set = id, true
	}
	return l.s, l.h
}

func allocateResponseToProtoIn(p *allocatorpb.AllocateResponse, ptrs []*allocatorpb.OfferProposal, ops []allocatorpb.OfferProposal, r *AllocateResponse, enc idEncoder) *allocatorpb.AllocateResponse {
	p.AppliedVersion, p.Metrics = r.AppliedVersion, r.Metrics
	var table resourceTable
	p.Offers = ptrs
	// Policies propose a framework's offers, and a role's, one after the
	// other: the previous offer's handles save most dictionary lookups.
	var fw, role lastEncoded
	for i, o := range r.Offers {
		op := &ops[i]
		op.FrameworkId, op.FrameworkHandle = fw.encode(enc, o.FrameworkID)
		op.Role, op.RoleHandle = role.encode(enc, o.Role)
		op.AgentId, op.AgentHandle = enc.encode(o.AgentID)
		op.ResourcesRef = table.ref(p, o.Resources)
		p.Offers = append(p.Offers, op)
	}
	revocationsToProto(p, r)
	return p
}

// allocateResponseToColumns builds r's wire form in p with the offers in
// cols (empty columns), when enc holds every ID they name; false
// otherwise, p and cols then half built.
func allocateResponseToColumns(p *allocatorpb.AllocateResponse, cols *allocatorpb.OfferColumns, r *AllocateResponse, enc idEncoder) bool {
	p.AppliedVersion, p.Metrics = r.AppliedVersion, r.Metrics
	var table resourceTable
	var fw, role lastEncoded
	for _, o := range r.Offers {
		_, fh := fw.encode(enc, o.FrameworkID)
		_, rh := role.encode(enc, o.Role)
		_, ah := enc.encode(o.AgentID)
		if fh == 0 || rh == 0 || ah == 0 {
			return false
		}
		cols.Framework = append(cols.Framework, fh)
		cols.Role = append(cols.Role, rh)
		cols.Agent = append(cols.Agent, ah)
		cols.ResourcesRef = append(cols.ResourcesRef, table.ref(p, o.Resources))
	}
	if len(r.Offers) > 0 {
		p.OfferColumns = cols
	}
	revocationsToProto(p, r)
	return true
}

// resourceTable builds a response's resource_table: each distinct
// resource list crosses the wire once; offers of identical free resources
// (identical agents) refer to it. A few recent lists are compared, which
// finds runs without hashing every offer.
type resourceTable struct {
	recent    []uint32 // 1 + indices into the table, most recent last
	recentRes []resources.Resources
}

// ref returns res's resources_ref, adding it to p's table if need be.
func (t *resourceTable) ref(p *allocatorpb.AllocateResponse, res resources.Resources) uint32 {
	for i := len(t.recentRes) - 1; i >= 0; i-- {
		if t.recentRes[i].Equal(res) {
			return t.recent[i]
		}
	}
	p.ResourceTable = append(p.ResourceTable, &corralpb.ResourceList{Resources: res.ToProto()})
	ref := uint32(len(p.ResourceTable))
	t.recent, t.recentRes = append(t.recent, ref), append(t.recentRes, res)
	if len(t.recent) > 8 {
		t.recent, t.recentRes = t.recent[1:], t.recentRes[1:]
	}
	return ref
}

func revocationsToProto(p *allocatorpb.AllocateResponse, r *AllocateResponse) {
	for _, rv := range r.Revocations {
		p.Revocations = append(p.Revocations, &allocatorpb.RevocationProposal{
			FrameworkId: rv.FrameworkID, TaskId: rv.TaskID, AgentId: rv.AgentID, Reason: rv.Reason,
		})
	}
}

// allocateResponseFromProto converts a response, resolving the handles of
// its offers in tab (nil: the offers must carry strings).
func allocateResponseFromProto(p *allocatorpb.AllocateResponse, tab idTable) (*AllocateResponse, error) {
	r := &AllocateResponse{AppliedVersion: p.GetAppliedVersion(), Metrics: p.GetMetrics()}
	table := make([]resources.Resources, len(p.GetResourceTable()))
	for i, l := range p.GetResourceTable() {
		res, err := resources.FromProto(l.GetResources())
		if err != nil {
			return nil, fmt.Errorf("resource table entry %d: %w", i, err)
		}
		table[i] = res
	}
	r.Offers = make([]Proposal, 0, len(p.GetOffers()))
	for i, o := range p.GetOffers() {
		var res resources.Resources
		switch ref := o.GetResourcesRef(); {
		case ref == 0:
			var err error
			if res, err = resources.FromProto(o.GetResources()); err != nil {
				return nil, fmt.Errorf("offer %d (framework %q, agent %q): %w", i, o.GetFrameworkId(), o.GetAgentId(), err)
			}
		case int(ref) > len(table):
			return nil, fmt.Errorf("offer %d (framework %q, agent %q) refers to resource list %d of %d", i, o.GetFrameworkId(), o.GetAgentId(), ref, len(table))
		default:
			res = table[ref-1]
		}
		fw, err := tab.decode(o.GetFrameworkId(), o.GetFrameworkHandle(), "framework")
		if err == nil {
			var role, agent string
			if role, err = tab.decode(o.GetRole(), o.GetRoleHandle(), "role"); err == nil {
				if agent, err = tab.decode(o.GetAgentId(), o.GetAgentHandle(), "agent"); err == nil {
					r.Offers = append(r.Offers, Proposal{FrameworkID: fw, Role: role, AgentID: agent, Resources: res})
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("offer %d: %w", i, err)
		}
	}
	var err error
	if r.Offers, err = columnOffers(r.Offers, p.GetOfferColumns(), tab, table); err != nil {
		return nil, err
	}
	for _, rv := range p.GetRevocations() {
		r.Revocations = append(r.Revocations, Revocation{
			FrameworkID: rv.GetFrameworkId(), TaskID: rv.GetTaskId(), AgentID: rv.GetAgentId(), Reason: rv.GetReason(),
		})
	}
	return r, nil
}
