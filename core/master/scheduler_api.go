package master

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// defaultRefuseSeconds is Mesos' Filters.refuse_seconds default.
const defaultRefuseSeconds = 5.0

// maxRefuseSeconds caps filters at a year, as Mesos does.
const maxRefuseSeconds = 365 * 24 * 3600.0

// Subscription is one open event stream of a framework. A transport pops
// events with Next and calls Close when its connection ends.
type Subscription struct {
	m           *Master
	sub         *subscription
	frameworkID string
}

// FrameworkID is the ID of the subscribed framework (assigned when new).
func (s *Subscription) FrameworkID() string { return s.frameworkID }

// StreamID identifies this stream; calls must carry it.
func (s *Subscription) StreamID() string { return s.sub.streamID }

// Next blocks for the next event. It returns false when the stream ended:
// the framework failed over to another stream, tore down or was removed,
// the master stopped, or ctx ended.
func (s *Subscription) Next(ctx context.Context) (*corralpb.Event, bool) {
	return s.sub.events.pop(ctx)
}

// Close ends the stream from the transport's side (the connection broke):
// the framework is disconnected and its failover timeout starts. Closing a
// stream that was already replaced does nothing.
func (s *Subscription) Close() { s.m.frameworkDisconnected(s.frameworkID, s.sub) }

// Subscribe registers or re-registers a framework and opens its event
// stream, whose first event is SUBSCRIBED. A framework that is already
// subscribed fails over: its old stream gets an ERROR event and ends.
func (m *Master) Subscribe(req *corralpb.SubscribeRequest) (*Subscription, error) {
	fi := req.GetFramework()
	roles, suppressed, minAlloc, err := validateFramework("subscribe", fi, req.SuppressedRoles)
	if err != nil {
		return nil, err
	}

	sub := &subscription{streamID: newID("stream"), events: newQueue[*corralpb.Event]()}
	m.mu.Lock()
	if err := m.checkSubscriptionLimitLocked(req); err != nil { // sublimit.go
		m.mu.Unlock()
		return nil, err
	}
	if f := m.frameworks[fi.Id]; req.GetStandby() && f != nil && f.sub != nil {
		// A hot standby: parked, without events, until the active
		// scheduler's stream ends (frameworkDisconnected promotes it).
		f.standbys = append(f.standbys, &standby{req: req, sub: sub, roles: roles, suppressed: suppressed, minAlloc: minAlloc})
		n := len(f.standbys)
		m.mu.Unlock()
		m.log.Info("framework standby scheduler waiting", "framework_id", fi.Id, "standbys", n)
		return &Subscription{m: m, sub: sub, frameworkID: fi.Id}, nil
	}
	fid, err := m.subscribeLocked(fi, roles, suppressed, minAlloc, sub)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m.log.Info("framework subscribed", "framework_id", fid, "name", fi.Name, "roles", sortedKeys(roles), "reregistered", fi.Id != "")
	m.requestAllocation(allocator.TriggerEvent)

	return &Subscription{m: m, sub: sub, frameworkID: fid}, nil
}

// standby is a hot-standby subscription waiting for the active one to end.
type standby struct {
	req               *corralpb.SubscribeRequest
	sub               *subscription
	roles, suppressed map[string]bool
	minAlloc          map[string][]resources.Resources
}

// subscribeLocked registers or re-registers a framework on the stream sub
// and sends it SUBSCRIBED (see Subscribe).
func (m *Master) subscribeLocked(fi *corralpb.FrameworkInfo, roles, suppressed map[string]bool,
	minAlloc map[string][]resources.Resources, sub *subscription) (string, error) {
	f, reregister := m.frameworks[fi.Id], fi.Id != ""
	if reregister && f == nil {
		if removed := m.removedFrameworkLocked(fi.Id); removed != nil {
			// As Mesos: a framework torn down on this master cannot come
			// back under its old ID.
			return "", callErr(CodePrecondition,
				"subscribe: framework %s was removed at %s (torn down or failed over too late); subscribe without an ID to register a new framework",
				fi.Id, removed.RemovedAt.Format(time.RFC3339))
		}
		// Unknown ID: the master failed over, or the framework was torn
		// down. Mesos re-admits the ID (soft state); so do we.
		m.log.Info("re-admitting framework not known to this master", "framework_id", fi.Id)
	}
	if f == nil {
		info := cloneFramework(fi)
		if info.Id == "" {
			info.Id = newID("fw")
		}
		f = &frameworkEntry{info: info, tasks: map[string]*taskEntry{}, offers: map[string]*offerEntry{},
			demands: map[string][]allocator.TaskShape{}, registeredAt: m.now()}
		m.frameworks[info.Id] = f
		f.roles, f.suppressed, f.minAllocatable = roles, suppressed, minAlloc
		f.connected, f.sub, f.streamID = true, sub, sub.streamID
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.FrameworkAdded, Framework: frameworkView(f)})
	} else {
		// A new stream replaces the old one (scheduler failover).
		if f.sub != nil {
			f.sub.send(&corralpb.Event{Event: &corralpb.Event_Error_{Error: &corralpb.Event_Error{
				Message: "Framework failed over"}}})
			f.sub.events.close()
		}
		for _, o := range f.offers {
			m.rescindLocked(o, 0)
		}
		m.dropDemandsLocked(f)
		info := cloneFramework(fi)
		info.Id = f.info.Id
		f.info, f.recovered = info, false
		f.roles, f.suppressed, f.minAllocatable = roles, suppressed, minAlloc
		f.connected, f.sub, f.streamID = true, sub, sub.streamID
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.FrameworkUpdated, Framework: frameworkView(f)})
	}
	m.addRolesLocked(roles)
	m.recordFrameworkLocked(f)
	fid := f.info.Id
	sub.send(&corralpb.Event{Event: &corralpb.Event_Subscribed_{Subscribed: &corralpb.Event_Subscribed{
		FrameworkId: fid, StreamId: sub.streamID, HeartbeatIntervalSeconds: m.cfg.HeartbeatInterval.Seconds(), MasterId: m.id,
	}}})
	if pending := m.inverseOffersForLocked(f); len(pending) > 0 {
		// A scheduler that failed over during a grace period learns again
		// which of its tasks are about to be preempted.
		sub.send(&corralpb.Event{Event: &corralpb.Event_InverseOffers_{InverseOffers: &corralpb.Event_InverseOffers{InverseOffers: pending}}})
	}
	m.metrics.frameworks.Set(float64(len(m.frameworks)))
	return fid, nil
}

// validateFramework checks a framework's info and suppressed roles and
// returns its roles (default "*"), suppressed roles and minimum offers.
func validateFramework(call string, fi *corralpb.FrameworkInfo, suppressedRoles []string) (roles, suppressed map[string]bool, minAlloc map[string][]resources.Resources, err error) {
	if fi == nil {
		return nil, nil, nil, invalid("%s: framework info is required", call)
	}
	if strings.TrimSpace(fi.Name) == "" {
		return nil, nil, nil, invalid("%s: framework name is required", call)
	}
	if math.IsNaN(fi.FailoverTimeoutSeconds) || fi.FailoverTimeoutSeconds < 0 {
		return nil, nil, nil, invalid("%s: failover_timeout_seconds must be a non-negative number, got %v", call, fi.FailoverTimeoutSeconds)
	}
	roles = map[string]bool{}
	for _, r := range fi.Roles {
		if err := validateRole(r); err != nil {
			return nil, nil, nil, invalid("%s: %v", call, err)
		}
		roles[r] = true
	}
	if len(roles) == 0 {
		roles["*"] = true
	}
	suppressed = map[string]bool{}
	for _, r := range suppressedRoles {
		if !roles[r] {
			return nil, nil, nil, invalid("%s: suppressed role %q is not one of the framework's roles", call, r)
		}
		suppressed[r] = true
	}
	minAlloc, err = minAllocatableFromInfo(fi, roles)
	if err != nil {
		return nil, nil, nil, invalid("%s: %v", call, err)
	}

	return roles, suppressed, minAlloc, nil
}

// UpdateFramework changes a subscribed framework's info (name, roles,
// capabilities, failover timeout, minimum offers) and suppressed roles
// without a new stream, as Mesos' UPDATE_FRAMEWORK does. User and
// checkpoint cannot change. Offers for roles the framework left are
// rescinded.
func (m *Master) UpdateFramework(h *corralpb.CallHeader, fi *corralpb.FrameworkInfo, suppressedRoles []string) error {
	roles, suppressed, minAlloc, err := validateFramework("update_framework", fi, suppressedRoles)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("update_framework", h)
	if err != nil {
		return err
	}
	switch {
	case fi.Id != "" && fi.Id != f.info.Id:
		return invalid("update_framework: framework info names %s, the call %s", fi.Id, f.info.Id)
	case fi.User != f.info.User:
		return invalid("update_framework: user cannot change (%q to %q)", f.info.User, fi.User)
	case fi.Checkpoint != f.info.Checkpoint:
		return invalid("update_framework: checkpoint cannot change")
	}
	info := cloneFramework(fi)
	info.Id = f.info.Id
	f.info = info
	for _, o := range f.offers {
		if !roles[o.role] {
			m.rescindLocked(o, 0)
		}
	}
	for r := range f.demands {
		if !roles[r] || suppressed[r] {
			delete(f.demands, r)
			m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.DemandUpdated,
				Demand: &allocator.Demand{FrameworkID: f.info.Id, Role: r}})
		}
	}
	f.roles, f.suppressed, f.minAllocatable = roles, suppressed, minAlloc
	m.addRolesLocked(roles)
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.FrameworkUpdated, Framework: frameworkView(f)})
	f.closedAt = m.deltas.version
	m.log.Info("framework updated", "framework_id", f.info.Id, "roles", sortedKeys(roles))
	m.requestAllocation(allocator.TriggerEvent)
	return nil
}

// addRolesLocked admits roles first seen in a subscription with default
// settings; they are not stored in the registry until an operator sets
// them.
func (m *Master) addRolesLocked(roles map[string]bool) {
	for _, r := range sortedKeys(roles) {
		if _, ok := m.roles[r]; !ok {
			m.roles[r] = RoleConfig{}
			m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.RoleUpdated, Role: roleFacts(r, RoleConfig{})})
		}
	}
}

// CheckCaller checks that a call comes from the current stream of a
// subscribed framework, for calls a transport answers without the books.
func (m *Master) CheckCaller(call string, h *corralpb.CallHeader) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.callerLocked(call, h)
	return err
}

// TaskIDsByAgent lists a framework's executors by agent: custom executor
// IDs and command tasks' IDs (a command task's executor ID) (Mesos offers name
// the framework's executors already running on the offered agent).
func (m *Master) TaskIDsByAgent(frameworkID string) map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frameworks[frameworkID]
	if f == nil {
		return nil
	}
	out := map[string][]string{}
	for id, t := range f.tasks {
		if t.info.GetExecutor() == nil {
			out[t.agentID] = append(out[t.agentID], id) // a command task's executor ID is its task ID
		}
	}
	for k := range f.executors {
		out[k.agentID] = append(out[k.agentID], k.executorID)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// frameworkDisconnected handles the end of a framework's stream: its
// offers are withdrawn and, after its failover timeout, it is removed.
func (m *Master) frameworkDisconnected(fid string, sub *subscription) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frameworks[fid]
	if f == nil {
		return // torn down
	}
	if f.sub != sub {
		// A standby that gave up waiting, or a stream already replaced.
		f.standbys = slices.DeleteFunc(f.standbys, func(s *standby) bool { return s.sub == sub })
		return
	}
	f.sub, f.connected, f.disconnectedAt = nil, false, m.now()
	// The deltas that say so come next (or the promoted standby's).
	f.closedAt = m.deltas.version + 1
	if len(f.standbys) > 0 {
		// Promote the oldest hot standby: it re-subscribes as a failover
		// would, with its own info, and gets SUBSCRIBED now.
		next := f.standbys[0]
		f.standbys = f.standbys[1:]
		if _, err := m.subscribeLocked(next.req.GetFramework(), next.roles, next.suppressed, next.minAlloc, next.sub); err == nil {
			m.log.Info("framework standby scheduler promoted", "framework_id", fid, "standbys_left", len(f.standbys))
			m.requestAllocation(allocator.TriggerEvent)
			return
		} else {
			m.log.Warn("promoting the standby scheduler failed", "framework_id", fid, "error", err)
			next.sub.events.close()
		}
	}
	for _, o := range f.offers {
		m.removeOfferLocked(o)
		m.recoverLocked(o.frameworkID, o.role, o.agentID, o.resources, 0)
	}
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.FrameworkUpdated, Framework: frameworkView(f)})
	m.log.Info("framework disconnected", "framework_id", fid, "failover_timeout", m.failoverTimeout(f))
	if m.failoverTimeout(f) == 0 {
		m.removeFrameworkLocked(f)
	}
}

// callerLocked checks the call header and returns the framework.
func (m *Master) callerLocked(call string, h *corralpb.CallHeader) (*frameworkEntry, error) {
	if h == nil || h.FrameworkId == "" {
		return nil, invalid("%s: header with framework_id is required", call)
	}
	f := m.frameworks[h.FrameworkId]
	if f == nil {
		return nil, callErr(CodeUnknownFramework, "%s: framework %s is not registered", call, h.FrameworkId)
	}
	if f.sub == nil {
		return nil, callErr(CodeNotSubscribed, "%s: framework %s is not subscribed; subscribe again", call, h.FrameworkId)
	}
	if h.StreamId != f.streamID {
		return nil, callErr(CodeStaleStream,
			"%s: stream %q is not the framework's current subscription; subscribe again", call, h.StreamId)
	}
	if f.limiter == nil && m.cfg.FrameworkCallRate > 0 {
		burst := m.cfg.FrameworkCallBurst
		if burst <= 0 {
			burst = max(1, int(2*m.cfg.FrameworkCallRate))
		}
		f.limiter = rate.NewLimiter(rate.Limit(m.cfg.FrameworkCallRate), burst)
	}
	if f.limiter != nil && !f.limiter.AllowN(m.now(), 1) {
		m.metrics.callsRateLimited.Inc()
		return nil, callErr(CodeRateLimited, "%s: framework %s exceeded its limit of %g calls per second (burst %d); slow down and retry",
			call, f.info.Id, m.cfg.FrameworkCallRate, f.limiter.Burst())
	}
	return f, nil
}

// Accept launches tasks on offered resources. The call is validated as a
// whole first: if anything is wrong, nothing launches and the offers stay
// outstanding, so the framework can correct the call.
func (m *Master) Accept(req *corralpb.AcceptRequest) error {
	_, err := m.accept(req, false)
	return err
}

// TaskRefusal is a task of AcceptEach that was not launched, and why.
type TaskRefusal struct {
	TaskID string
	Err    error
}

// AcceptEach is Accept with Mesos's per-task semantics: tasks that fail
// validation (or no longer fit in what is left of the offers) are refused
// one by one and the others launch; the offers are used either way, and
// what no task uses goes back with the call's filters. Problems with the
// offers themselves still refuse the whole call, leaving them out.
func (m *Master) AcceptEach(req *corralpb.AcceptRequest) ([]TaskRefusal, error) {
	return m.accept(req, true)
}

func (m *Master) accept(req *corralpb.AcceptRequest, each bool) ([]TaskRefusal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("accept", req.Header)
	if err != nil {
		return nil, err
	}
	refuse, err := refuseSeconds(req.Filters)
	if err != nil {
		return nil, invalid("accept: %v", err)
	}
	offers, err := m.resolveOffersLocked("accept", f, req.OfferIds)
	if err != nil {
		return nil, err
	}
	var offered resources.Resources
	for _, o := range offers {
		offered = offered.Add(o.resources)
	}
	agentID := offers[0].agentID
	a := m.agents[agentID]
	if a == nil || !a.connected {
		return nil, callErr(CodePrecondition, "accept: agent %s of the offers is no longer connected", agentID)
	}

	type launch struct {
		info *corralpb.TaskInfo
		res  resources.Resources
	}
	var launches []launch
	var refused []TaskRefusal
	seen := map[string]bool{}
	newExecs := map[string]*corralpb.ExecutorInfo{}
	var needed resources.Resources
	for i, op := range req.Operations {
		l := op.GetLaunch()
		if l == nil {
			return nil, invalid("accept: operation %d has no known type (only launch is supported)", i)
		}
		for _, t := range l.Tasks {
			res, err := m.validateTaskLocked(f, t, agentID, seen)
			eid := t.GetExecutor().GetExecutorId()
			_, hadExec := newExecs[eid]
			if err == nil && t.GetExecutor() != nil {
				// A new executor's resources come on top of its first task's.
				var execRes resources.Resources
				if execRes, err = m.validateExecutorLocked(f, t, agentID, newExecs); err == nil {
					res = res.Add(execRes)
				}
			}
			if err == nil && each && !offered.Contains(needed.Add(res)) {
				err = fmt.Errorf("task %q needs %s but what is left of the offers is %s", t.GetTaskId(), res, offered.Subtract(needed))
			}
			if err != nil && !hadExec {
				delete(newExecs, eid) // the next task of this executor brings its resources
			}
			if err != nil {
				if !each {
					return nil, invalid("accept: %v", err)
				}
				refused = append(refused, TaskRefusal{TaskID: t.GetTaskId(), Err: invalid("accept: %v", err)})
				continue
			}
			if err := m.authorizeLaunchLocked(f, t); err != nil {
				if !each {
					return nil, err
				}
				refused = append(refused, TaskRefusal{TaskID: t.GetTaskId(), Err: err})
				continue
			}
			needed = needed.Add(res)
			launches = append(launches, launch{info: t, res: res})
		}
	}
	if !offered.Contains(needed) {
		return nil, invalid("accept: tasks need %s but the offers hold %s", needed, offered)
	}

	// Valid: consume the offers, start the tasks, return what is left.
	role := offers[0].role
	for _, o := range offers {
		m.removeOfferLocked(o)
	}
	for _, l := range launches {
		info := cloneTask(l.info)
		info.AgentId = agentID
		taskRes := l.res
		if e := info.GetExecutor(); e != nil {
			if newExecs[e.GetExecutorId()] != nil && f.executors[executorKey{agentID, e.GetExecutorId()}] == nil {
				m.addExecutorLocked(f, agentID, role, e)
			}
			taskRes, _ = resources.FromProto(info.Resources) // validated; the executor's part is booked apart
		}
		t := &taskEntry{info: info, frameworkID: f.info.Id, role: role, agentID: agentID, resources: taskRes,
			state: corralpb.TaskState_TASK_STAGING, createdAt: m.now()}
		t.status = m.masterStatus(t, corralpb.TaskState_TASK_STAGING, corralpb.TaskStatus_REASON_UNSPECIFIED, "")
		m.addTaskLocked(f, t)
		m.metrics.observeTaskState(corralpb.TaskState_TASK_STAGING)
		a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_RunTask{RunTask: &agentproto.RunTask{
			Framework: f.info, Task: info}}})
	}
	if left := offered.Subtract(needed); !left.IsEmpty() {
		m.recoverLocked(f.info.Id, role, agentID, left, refuse)
	}
	m.metrics.offersAccepted.WithLabelValues(role).Add(float64(len(offers)))
	m.metrics.tasksLaunched.Add(float64(len(launches)))
	return refused, nil
}

// validateTaskLocked checks one task of an accept call.
func (m *Master) validateTaskLocked(f *frameworkEntry, t *corralpb.TaskInfo, agentID string, seen map[string]bool) (resources.Resources, error) {
	if t == nil {
		return resources.Resources{}, fmt.Errorf("a task is null")
	}
	id := t.TaskId
	switch {
	case strings.TrimSpace(id) == "":
		return resources.Resources{}, fmt.Errorf("a task has no task_id")
	case len(id) > 255 || strings.ContainsAny(id, "/\x00") || id == "." || id == "..":
		return resources.Resources{}, fmt.Errorf("task_id %q is not usable as a sandbox name (max 255 bytes, no '/' or NUL)", id)
	case seen[id]:
		return resources.Resources{}, fmt.Errorf("task_id %q appears twice in the call", id)
	case f.tasks[id] != nil:
		return resources.Resources{}, fmt.Errorf("task_id %q is already in use by a live task of this framework", id)
	case t.AgentId != "" && t.AgentId != agentID:
		return resources.Resources{}, fmt.Errorf("task %q names agent %s but the offers are from agent %s", id, t.AgentId, agentID)
	case strings.HasPrefix(id, ReservedTaskPrefix):
		return resources.Resources{}, fmt.Errorf("task_id %q: the prefix %q is reserved for the agent's executor containers", id, ReservedTaskPrefix)
	case t.Executor == nil && (t.Command == nil || strings.TrimSpace(t.Command.Value) == ""):
		return resources.Resources{}, fmt.Errorf("task %q has no command (and no executor)", id)
	case math.IsNaN(t.KillGraceSeconds) || t.KillGraceSeconds < 0:
		return resources.Resources{}, fmt.Errorf("task %q: kill_grace_seconds must be a non-negative number", id)
	}
	seen[id] = true
	res, err := resources.FromProto(t.Resources)
	if err != nil {
		return resources.Resources{}, fmt.Errorf("task %q: %w", id, err)
	}
	if res.Scalar(resources.CPUs) <= 0 && res.Scalar(resources.Mem) <= 0 {
		return resources.Resources{}, fmt.Errorf("task %q must ask for some cpus or mem", id)
	}
	return res, nil
}

// resolveOffersLocked finds the named offers and checks they can be used
// together by this framework.
func (m *Master) resolveOffersLocked(call string, f *frameworkEntry, ids []string) ([]*offerEntry, error) {
	if len(ids) == 0 {
		return nil, callErr(CodeInvalidOffers, "%s: no offer_ids given", call)
	}
	var out []*offerEntry
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			return nil, callErr(CodeInvalidOffers, "%s: offer %s is listed twice", call, id)
		}
		seen[id] = true
		o := m.offers[id]
		if o == nil {
			return nil, callErr(CodeNotFound,
				"%s: offer %s does not exist (it expired, was rescinded, or was already used)", call, id)
		}
		if o.frameworkID != f.info.Id {
			return nil, callErr(CodeForbidden, "%s: offer %s was made to another framework", call, id)
		}
		if len(out) > 0 && o.agentID != out[0].agentID {
			return nil, callErr(CodeInvalidOffers, "%s: offers %s and %s are from different agents; one launch uses offers of one agent", call, out[0].id, id)
		}
		if len(out) > 0 && o.role != out[0].role {
			return nil, callErr(CodeInvalidOffers, "%s: offers %s and %s are for different roles", call, out[0].id, id)
		}
		out = append(out, o)
	}
	return out, nil
}

// Decline returns offers, filtering them from this framework for a while.
func (m *Master) Decline(req *corralpb.DeclineRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("decline", req.Header)
	if err != nil {
		return err
	}
	refuse, err := refuseSeconds(req.Filters)
	if err != nil {
		return invalid("decline: %v", err)
	}
	var offers []*offerEntry
	seen := map[string]bool{}
	for _, id := range req.OfferIds {
		o := m.offers[id]
		if seen[id] {
			return invalid("decline: offer %s is listed twice", id)
		}
		seen[id] = true
		if o == nil {
			return callErr(CodeNotFound, "decline: offer %s does not exist (it expired, was rescinded, or was already used)", id)
		}
		if o.frameworkID != f.info.Id {
			return callErr(CodeForbidden, "decline: offer %s was made to another framework", id)
		}
		offers = append(offers, o)
	}
	if len(offers) == 0 {
		return invalid("decline: no offer_ids given")
	}
	for _, o := range offers {
		m.removeOfferLocked(o)
		m.recoverLocked(o.frameworkID, o.role, o.agentID, o.resources, refuse)
		m.metrics.offersDeclined.WithLabelValues(o.role).Inc()
	}
	return nil
}

func refuseSeconds(f *corralpb.Filters) (float64, error) {
	if f == nil || f.RefuseSeconds == nil {
		return defaultRefuseSeconds, nil
	}
	v := *f.RefuseSeconds
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("filters.refuse_seconds must be a finite number")
	case v < 0:
		// Mesos falls back to the default for negative values.
		return defaultRefuseSeconds, nil
	case v > maxRefuseSeconds:
		return maxRefuseSeconds, nil
	}
	return v, nil
}

// Revive clears decline filters and un-suppresses the given roles.
func (m *Master) Revive(req *corralpb.ReviveRequest) error {
	return m.suppressOrRevive("revive", req.Header, req.Roles, false)
}

// Suppress stops offers for the given roles until Revive.
func (m *Master) Suppress(req *corralpb.SuppressRequest) error {
	return m.suppressOrRevive("suppress", req.Header, req.Roles, true)
}

func (m *Master) suppressOrRevive(call string, h *corralpb.CallHeader, roles []string, suppress bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked(call, h)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if !f.roles[r] {
			return invalid("%s: role %q is not one of the framework's roles", call, r)
		}
	}
	targets := roles
	if len(targets) == 0 {
		targets = sortedKeys(f.roles)
	}
	kind := allocator.Revived
	for _, r := range targets {
		if suppress {
			f.suppressed[r] = true
			// A suppressed role wants nothing; the allocator drops the
			// demand on the Suppressed delta, as the contract says.
			delete(f.demands, r)
		} else {
			delete(f.suppressed, r)
			// Reviving clears the role's filters, as the allocator does.
			f.filters = slices.DeleteFunc(f.filters, func(fl allocator.Filter) bool { return fl.Role == r })
		}
	}
	if suppress {
		// Offers already out stay valid, as in Mesos: suppress only stops
		// new ones.
		kind = allocator.Suppressed
	}
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: kind, FrameworkID: f.info.Id, Roles: append([]string(nil), targets...)})
	if suppress {
		f.closedAt = m.deltas.version
	} else {
		m.requestAllocation(allocator.TriggerRevive)
	}
	return nil
}

// Kill asks the agent to kill a task.
func (m *Master) Kill(req *corralpb.KillRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("kill", req.Header)
	if err != nil {
		return err
	}
	if req.TaskId == "" {
		return invalid("kill: task_id is required")
	}
	if math.IsNaN(req.GraceSeconds) || req.GraceSeconds < 0 {
		return invalid("kill: grace_seconds must be a non-negative number")
	}
	t := f.tasks[req.TaskId]
	if t == nil {
		// Mesos answers a kill of an unknown task with a LOST update so
		// that the scheduler can reconcile; we also say so to the caller.
		return callErr(CodeNotFound, "kill: task %s is not a live task of this framework", req.TaskId)
	}
	if req.AgentId != "" && req.AgentId != t.agentID {
		return invalid("kill: task %s runs on agent %s, not %s", t.info.TaskId, t.agentID, req.AgentId)
	}
	a := m.agents[t.agentID]
	if a == nil || a.conn == nil {
		return callErr(CodeUnavailable, "kill: agent %s of task %s is disconnected; retry or wait for TASK_LOST", t.agentID, t.info.TaskId)
	}
	sendKillLocked(a, t, req.GraceSeconds)
	return nil
}

// sendKillLocked tells a's connection to kill t; grace 0 means the task's
// own kill grace period.
func sendKillLocked(a *agentEntry, t *taskEntry, grace float64) {
	if grace == 0 {
		grace = t.info.KillGraceSeconds
	}
	a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_KillTask{KillTask: &agentproto.KillTask{
		FrameworkId: t.frameworkID, TaskId: t.info.TaskId, GraceSeconds: grace}}})
}

// Acknowledge relays a status update acknowledgement to the agent.
func (m *Master) Acknowledge(req *corralpb.AcknowledgeRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("acknowledge", req.Header)
	if err != nil {
		return err
	}
	return m.ackLocked(f, req.AgentId, req.TaskId, req.Uuid)
}

// MaxAckBatch is the most acknowledgements one AcknowledgeBatch may carry:
// the books stay locked while a batch is relayed, and an allocation cycle
// or another framework's call should not wait behind an unbounded one.
const MaxAckBatch = 1024

// AcknowledgeBatch relays several acknowledgements of one framework under
// one acquisition of the books' lock. The header is checked once, as one
// call (and charged to the framework's call rate once); an error there
// refuses the whole batch. Otherwise acks[i] gets what Acknowledge would
// have answered for it alone, nil when relayed, so an unknown agent or a
// malformed ack does not fail the others.
func (m *Master) AcknowledgeBatch(req *corralpb.AcknowledgeBatchRequest) ([]error, error) {
	if n := len(req.Acks); n > MaxAckBatch {
		return nil, invalid("acknowledge batch: %d acks, more than the limit of %d per call", n, MaxAckBatch)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("acknowledge", req.Header)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(req.Acks))
	for i, a := range req.Acks {
		errs[i] = m.ackLocked(f, a.GetAgentId(), a.GetTaskId(), a.GetUuid())
	}
	return errs, nil
}

// ackLocked validates one acknowledgement of f's and relays it to its
// agent.
func (m *Master) ackLocked(f *frameworkEntry, agentID, taskID string, uuid []byte) error {
	switch {
	case taskID == "":
		return invalid("acknowledge: task_id is required")
	case len(uuid) == 0:
		return invalid("acknowledge: uuid is required (updates without uuid need no acknowledgement)")
	case agentID == "":
		return invalid("acknowledge: agent_id is required")
	}
	a := m.agents[agentID]
	if a == nil && !m.awaitingAgentLocked(agentID) {
		return callErr(CodeNotFound, "acknowledge: agent %s is not registered", agentID)
	}
	m.metrics.acks.Inc()
	if a == nil || a.conn == nil {
		// The agent resends unacknowledged updates when it re-registers,
		// and the scheduler will acknowledge them then. That holds for an
		// agent this master, newly elected, expects back too: a scheduler
		// acknowledging again an update whose first ack went to the old
		// leader learns that nothing more is needed from it.
		return nil
	}
	a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_Ack{Ack: &agentproto.AckUpdate{
		FrameworkId: f.info.Id, TaskId: taskID, Uuid: uuid}}})
	return nil
}

// Reconcile answers with the master's view of the tasks: explicitly listed
// ones, or every live task when the list is empty.
func (m *Master) Reconcile(req *corralpb.ReconcileRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("reconcile", req.Header)
	if err != nil {
		return err
	}
	reply := func(st *corralpb.TaskStatus) {
		st.Reason = corralpb.TaskStatus_REASON_RECONCILIATION
		st.Uuid = nil
		f.sub.send(&corralpb.Event{Event: &corralpb.Event_Update_{Update: &corralpb.Event_Update{Status: st}}})
	}
	if len(req.Tasks) == 0 {
		for _, t := range f.tasks {
			reply(m.reconcileStatus(t))
		}
		return nil
	}
	for _, rt := range req.Tasks {
		if rt.GetTaskId() == "" {
			return invalid("reconcile: a listed task has no task_id")
		}
	}
	for _, rt := range req.Tasks {
		if t := f.tasks[rt.TaskId]; t != nil {
			reply(m.reconcileStatus(t))
			continue
		}
		if t := findCompleted(f, rt.TaskId); t != nil {
			reply(m.reconcileStatus(t))
			continue
		}
		if _, gone := m.unreachableAgents[rt.AgentId]; gone && rt.AgentId != "" {
			reply(&corralpb.TaskStatus{TaskId: rt.TaskId, AgentId: rt.AgentId, State: corralpb.TaskState_TASK_LOST,
				Source: corralpb.TaskStatus_SOURCE_MASTER, Reason: corralpb.TaskStatus_REASON_AGENT_DISCONNECTED,
				Message: "the agent is unreachable (it did not re-register in time)", TimestampUnixMs: m.now().UnixMilli()})
			continue
		}
		if m.awaitingAgentLocked(rt.AgentId) {
			// As Mesos: a master that failed over recently does not know
			// yet what an agent that has not re-registered runs; it stays
			// silent and the framework asks again later, rather than
			// calling LOST a task that is about to report FINISHED.
			continue
		}
		reply(&corralpb.TaskStatus{TaskId: rt.TaskId, AgentId: rt.AgentId, State: corralpb.TaskState_TASK_LOST,
			Source: corralpb.TaskStatus_SOURCE_MASTER, Message: "task is unknown to the master",
			TimestampUnixMs: m.now().UnixMilli()})
	}
	return nil
}

// awaitingAgentLocked reports whether the master may still hear from an
// agent it is not connected to: a known agent within its re-registration
// window, or, after a failover, an agent the registry expects back. With
// the registry loaded, an agent it never admitted is not awaited; without
// it (no record store, or unreadable), any agent is, for
// AgentReregisterTimeout after this master started leading.
func (m *Master) awaitingAgentLocked(id string) bool {
	if id == "" {
		return false
	}
	if a := m.agents[id]; a != nil {
		return !a.connected
	}
	if m.recordsLoaded {
		_, expected := m.expectedAgents[id]
		return expected
	}
	since := m.leadingSince
	if since.IsZero() {
		since = m.start
	}
	return m.now().Sub(since) < m.cfg.AgentReregisterTimeout
}

func (m *Master) reconcileStatus(t *taskEntry) *corralpb.TaskStatus {
	st := cloneStatus(t.status)
	st.Source = corralpb.TaskStatus_SOURCE_MASTER
	st.TimestampUnixMs = m.now().UnixMilli()
	return st
}

func findCompleted(f *frameworkEntry, id string) *taskEntry {
	for i := len(f.completed) - 1; i >= 0; i-- {
		if f.completed[i].info.TaskId == id {
			return f.completed[i]
		}
	}
	return nil
}

// Message relays opaque data to a task's executor.
func (m *Master) Message(req *corralpb.MessageRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("message", req.Header)
	if err != nil {
		return err
	}
	if len(req.Data) > m.cfg.MaxMessageBytes {
		return invalid("message: %d bytes exceed the limit of %d bytes", len(req.Data), m.cfg.MaxMessageBytes)
	}
	if req.ExecutorId != "" {
		// Addressed to a custom executor, as Mesos's MESSAGE (agent_id, executor_id).
		ex := f.executors[executorKey{req.AgentId, req.ExecutorId}]
		if ex == nil {
			return callErr(CodeNotFound, "message: executor %q is not running on agent %q for this framework", req.ExecutorId, req.AgentId)
		}
		a := m.agents[ex.agentID]
		if a == nil || a.conn == nil {
			return callErr(CodeUnavailable, "message: agent %s is disconnected", ex.agentID)
		}
		a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_FrameworkMessage{FrameworkMessage: &agentproto.FrameworkMessage{
			FrameworkId: f.info.Id, ExecutorId: req.ExecutorId, Data: req.Data}}})
		return nil
	}
	t := f.tasks[req.TaskId]
	if t == nil {
		return callErr(CodeNotFound, "message: task %q is not a live task of this framework", req.TaskId)
	}
	if req.AgentId != "" && req.AgentId != t.agentID {
		return invalid("message: task %s runs on agent %s, not %s", t.info.TaskId, t.agentID, req.AgentId)
	}
	a := m.agents[t.agentID]
	if a == nil || a.conn == nil {
		return callErr(CodeUnavailable, "message: agent %s is disconnected", t.agentID)
	}
	a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_FrameworkMessage{FrameworkMessage: &agentproto.FrameworkMessage{
		FrameworkId: f.info.Id, TaskId: t.info.TaskId, ExecutorId: t.info.GetExecutor().GetExecutorId(), Data: req.Data}}})
	return nil
}

// Teardown removes the framework and kills all its tasks.
func (m *Master) Teardown(req *corralpb.TeardownRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("teardown", req.Header)
	if err != nil {
		return err
	}
	m.log.Info("framework teardown", "framework_id", f.info.Id)
	m.removeFrameworkLocked(f)
	return nil
}

func validateRole(r string) error { return resources.ValidateRole(r) }

// minAllocatableFromInfo converts and checks FrameworkInfo.min_allocatable:
// every role it names must be one of the framework's, with at least one
// alternative and no empty or invalid one.
func minAllocatableFromInfo(fi *corralpb.FrameworkInfo, roles map[string]bool) (map[string][]resources.Resources, error) {
	if len(fi.MinAllocatable) == 0 {
		return nil, nil
	}
	out := make(map[string][]resources.Resources, len(fi.MinAllocatable))
	for _, role := range sortedMapKeys(fi.MinAllocatable) {
		if !roles[role] {
			return nil, fmt.Errorf("min_allocatable names role %q, which is not one of the framework's roles %v", role, sortedKeys(roles))
		}
		alts, err := allocator.MinAllocatableFromProto(fi.MinAllocatable[role])
		if err != nil {
			return nil, fmt.Errorf("min_allocatable of role %q: %w", role, err)
		}
		if len(alts) == 0 {
			return nil, fmt.Errorf("min_allocatable of role %q lists no alternatives (leave the role out to use the allocator's global minimum)", role)
		}
		out[role] = alts
	}
	return out, nil
}

// Request replaces the framework's declared demand under a role: the
// shapes of the tasks it still wants to launch. An empty list withdraws it.
// Mesos defined REQUEST and never implemented it; corral's allocators use
// it to size offers at task granularity.
func (m *Master) Request(req *corralpb.RequestCall) error {
	shapes, err := allocator.TaskShapesFromProto(req.GetShapes())
	if err != nil {
		return invalid("request: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("request", req.Header)
	if err != nil {
		return err
	}
	role := req.GetRole()
	if role == "" {
		if len(f.roles) != 1 {
			return invalid("request: role is required for a framework with %d roles", len(f.roles))
		}
		role = sortedKeys(f.roles)[0]
	}
	if !f.roles[role] {
		return invalid("request: role %q is not one of the framework's roles", role)
	}
	if f.suppressed[role] && len(shapes) > 0 {
		return callErr(CodePrecondition, "request: role %q is suppressed; revive it before declaring demand", role)
	}
	if len(shapes) == 0 {
		if _, had := f.demands[role]; !had {
			return nil
		}
		delete(f.demands, role)
	} else {
		f.demands[role] = shapes
	}
	m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.DemandUpdated,
		Demand: &allocator.Demand{FrameworkID: f.info.Id, Role: role, Shapes: shapes}})
	m.requestAllocation(allocator.TriggerEvent)
	return nil
}

// dropDemandsLocked withdraws everything the framework declared, telling
// the allocator (a re-subscribed scheduler declares again).
func (m *Master) dropDemandsLocked(f *frameworkEntry) {
	for _, role := range sortedDemandRoles(f) {
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.DemandUpdated,
			Demand: &allocator.Demand{FrameworkID: f.info.Id, Role: role}})
	}
	f.demands = map[string][]allocator.TaskShape{}
}
