package master

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// Custom executors in the books. A framework's executor runs once per
// agent and executor ID; its resources are booked when the first task
// naming it is accepted (on top of the task's) and go back to the pool
// when the agent reports it exited, as Mesos does.

type executorKey struct{ agentID, executorID string }

type executorEntry struct {
	info      *corralpb.ExecutorInfo
	agentID   string
	role      string
	resources resources.Resources
}

// ReservedTaskPrefix starts the agent's internal names for executor
// containers; task IDs may not use it.
const ReservedTaskPrefix = "executor:"

// validateExecutor checks a task's executor against what already runs
// (or is being launched in the same call) on the agent. It returns the
// resources the executor adds to the call: none when it already exists.
func (m *Master) validateExecutorLocked(f *frameworkEntry, t *corralpb.TaskInfo, agentID string,
	pending map[string]*corralpb.ExecutorInfo) (resources.Resources, error) {
	e := t.GetExecutor()
	id := e.GetExecutorId()
	switch {
	case strings.TrimSpace(id) == "":
		return resources.Resources{}, fmt.Errorf("task %q: executor has no executor_id", t.GetTaskId())
	case len(id) > 200 || strings.ContainsAny(id, "/\x00") || id == "." || id == "..":
		return resources.Resources{}, fmt.Errorf("task %q: executor_id %q is not usable as a sandbox name (max 200 bytes, no '/' or NUL)", t.GetTaskId(), id)
	case e.GetCommand() == nil || strings.TrimSpace(e.GetCommand().GetValue()) == "":
		return resources.Resources{}, fmt.Errorf("task %q: executor %q has no command", t.GetTaskId(), id)
	case e.GetApi() != "" && e.GetApi() != "corral" && e.GetApi() != "mesos":
		return resources.Resources{}, fmt.Errorf("task %q: executor %q: api %q is neither \"corral\" nor \"mesos\"", t.GetTaskId(), id, e.GetApi())
	}
	for _, u := range e.GetUris() {
		if err := validateURI(u); err != nil {
			return resources.Resources{}, fmt.Errorf("task %q: executor %q: %w", t.GetTaskId(), id, err)
		}
	}
	res, err := resources.FromProto(e.GetResources())
	if err != nil {
		return resources.Resources{}, fmt.Errorf("task %q: executor %q resources: %w", t.GetTaskId(), id, err)
	}
	same := func(other *corralpb.ExecutorInfo) error {
		if !proto.Equal(other, e) {
			return fmt.Errorf("task %q: executor %q on agent %s is already described differently (every task of one executor must carry the same ExecutorInfo)",
				t.GetTaskId(), id, agentID)
		}
		return nil
	}
	if ex := f.executors[executorKey{agentID, id}]; ex != nil {
		return resources.Resources{}, same(ex.info)
	}
	if other := pending[id]; other != nil {
		return resources.Resources{}, same(other)
	}
	if res.Scalar(resources.CPUs) <= 0 && res.Scalar(resources.Mem) <= 0 {
		return resources.Resources{}, fmt.Errorf("task %q: executor %q must ask for some cpus or mem", t.GetTaskId(), id)
	}
	pending[id] = e
	return res, nil
}

func validateURI(u *corralpb.URI) error {
	v := u.GetValue()
	switch {
	case strings.HasPrefix(v, "http://"), strings.HasPrefix(v, "https://"), strings.HasPrefix(v, "/"), strings.HasPrefix(v, "file:///"):
	default:
		return fmt.Errorf("uri %q: only http(s):// URLs and absolute agent paths (or file:// URLs) can be fetched", v)
	}
	if strings.Contains(u.GetOutputFile(), "/") {
		return fmt.Errorf("uri %q: output_file %q must be a plain file name", v, u.GetOutputFile())
	}
	return nil
}

// addExecutorLocked books a newly launched executor.
func (m *Master) addExecutorLocked(f *frameworkEntry, agentID, role string, e *corralpb.ExecutorInfo) {
	res, _ := resources.FromProto(e.GetResources()) // validated
	if f.executors == nil {
		f.executors = map[executorKey]*executorEntry{}
	}
	f.executors[executorKey{agentID, e.GetExecutorId()}] = &executorEntry{
		info: proto.Clone(e).(*corralpb.ExecutorInfo), agentID: agentID, role: role, resources: res}
}

// handleExecutorExited releases an executor's resources and tells its
// framework (a FAILURE event naming the executor, as Mesos sends).
func (m *Master) handleExecutorExited(agentID string, ee *agentproto.ExecutorExited) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frameworks[ee.GetFrameworkId()]
	if f == nil {
		return
	}
	k := executorKey{agentID, ee.GetExecutorId()}
	ex := f.executors[k]
	if ex == nil {
		return
	}
	delete(f.executors, k)
	m.recoverLocked(f.info.Id, ex.role, agentID, ex.resources, 0)
	m.log.Info("executor exited; its resources are free", "framework_id", f.info.Id, "agent_id", agentID,
		"executor_id", ee.GetExecutorId(), "resources", ex.resources.String(), "message", ee.GetMessage())
	if f.sub != nil {
		fe := &corralpb.Event_Failure{AgentId: agentID, ExecutorId: ee.GetExecutorId(), Message: ee.GetMessage()}
		if ee.Status != nil {
			s := ee.GetStatus()
			fe.Status = &s
		}
		f.sub.send(&corralpb.Event{Event: &corralpb.Event_Failure_{Failure: fe}})
	}
}

// handleExecutorMessage relays a custom executor's message to its
// framework's scheduler.
func (m *Master) handleExecutorMessage(agentID string, em *agentproto.ExecutorMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frameworks[em.GetFrameworkId()]
	if f == nil || f.sub == nil {
		m.log.Debug("dropping executor message: framework not connected", "framework_id", em.GetFrameworkId(),
			"executor_id", em.GetExecutorId())
		return
	}
	if len(em.GetData()) > m.cfg.MaxMessageBytes {
		m.log.Warn("dropping oversized executor message", "framework_id", em.GetFrameworkId(), "executor_id", em.GetExecutorId(),
			"bytes", len(em.GetData()))
		return
	}
	f.sub.send(&corralpb.Event{Event: &corralpb.Event_Message_{Message: &corralpb.Event_Message{
		AgentId: agentID, ExecutorId: em.GetExecutorId(), Data: em.GetData()}}})
}

// adoptExecutorsLocked books the executors a re-registering agent runs
// that this master does not know (after a master failover).
func (m *Master) adoptExecutorsLocked(a *agentEntry, running []*agentproto.RunningExecutor) {
	reported := map[string]map[string]bool{}
	for _, re := range running {
		fid := re.GetFramework().GetId()
		if reported[fid] == nil {
			reported[fid] = map[string]bool{}
		}
		reported[fid][re.GetExecutor().GetExecutorId()] = true
	}
	// Executors the agent no longer runs ended while it was away.
	for _, f := range m.frameworks {
		for k, ex := range f.executors {
			if k.agentID == a.info.Id && !reported[f.info.Id][k.executorID] {
				delete(f.executors, k)
				m.recoverLocked(f.info.Id, ex.role, k.agentID, ex.resources, 0)
			}
		}
	}
	for _, re := range running {
		f := m.frameworks[re.GetFramework().GetId()]
		e := re.GetExecutor()
		if f == nil || e.GetExecutorId() == "" {
			continue
		}
		k := executorKey{a.info.Id, e.GetExecutorId()}
		if f.executors[k] != nil {
			continue
		}
		res, err := resources.FromProto(e.GetResources())
		if err != nil {
			continue
		}
		role := firstRole(f)
		m.addExecutorLocked(f, a.info.Id, role, e)
		m.addAgentUsedLocked(a, res, 1)
		m.deltas.add(m.logicalNow(), allocator.Delta{Kind: allocator.Allocated, Allocation: &allocator.Allocation{
			FrameworkID: f.info.Id, Role: role, AgentID: a.info.Id, Resources: res}})
	}
}

// dropExecutorsLocked forgets f's executors (framework removed): their
// resources go back to the pool now, as the agents shut them down.
func (m *Master) dropExecutorsLocked(f *frameworkEntry) {
	for k, ex := range f.executors {
		delete(f.executors, k)
		m.recoverLocked(f.info.Id, ex.role, ex.agentID, ex.resources, 0)
	}
}

// dropAgentExecutorsLocked forgets the executors of a removed agent.
func (m *Master) dropAgentExecutorsLocked(agentID string) {
	for _, f := range m.frameworks {
		for k := range f.executors {
			if k.agentID == agentID {
				delete(f.executors, k)
			}
		}
	}
}

// ShutdownExecutor shuts one of the framework's custom executors down (a
// Mesos SHUTDOWN call): the agent sends it Shutdown, kills it after its
// grace, and its tasks end with it.
func (m *Master) ShutdownExecutor(h *corralpb.CallHeader, agentID, executorID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, err := m.callerLocked("shutdown", h)
	if err != nil {
		return err
	}
	ex := f.executors[executorKey{agentID, executorID}]
	if ex == nil {
		return callErr(CodeNotFound, "shutdown: executor %q is not running on agent %q for this framework", executorID, agentID)
	}
	a := m.agents[agentID]
	if a == nil || a.conn == nil {
		return callErr(CodeUnavailable, "shutdown: agent %s is disconnected", agentID)
	}
	a.conn.send(&agentproto.MasterMessage{Msg: &agentproto.MasterMessage_ShutdownExecutor{ShutdownExecutor: &agentproto.ShutdownExecutor{
		FrameworkId: f.info.Id, ExecutorId: executorID}}})
	return nil
}
