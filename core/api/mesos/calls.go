package mesos

import (
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// dispatch performs a call from a subscribed framework and returns the
// HTTP status of success. As in Mesos, most problems with a well-formed
// call are not HTTP errors: they arrive as events (TASK_ERROR, TASK_LOST)
// or are only logged, and the answer is 202.
func (s *Server) dispatch(h *corralpb.CallHeader, c *schedpb.Call) (int, error) {
	log := s.log.With("framework_id", h.FrameworkId, "call", c.GetType().String())
	soft := func(err error) {
		if err != nil {
			log.Info("mesos call had no effect", "error", err)
		}
	}
	switch c.GetType() {
	case schedpb.Call_TEARDOWN:
		soft(s.m.Teardown(&corralpb.TeardownRequest{Header: h}))
	case schedpb.Call_ACCEPT:
		return s.accept(h, c.Accept, log)
	case schedpb.Call_DECLINE:
		s.decline(h, c.Decline.OfferIds, c.Decline.Filters, soft)
	case schedpb.Call_ACCEPT_INVERSE_OFFERS, schedpb.Call_DECLINE_INVERSE_OFFERS:
		// corral's inverse offers announce a revocation the master carries
		// out at the deadline whatever the answer, as Mesos maintenance
		// does; the answer is advice corral's allocators do not take.
		log.Debug("inverse offer answer noted")
	case schedpb.Call_REVIVE:
		soft(s.m.Revive(&corralpb.ReviveRequest{Header: h, Roles: c.GetRevive().GetRoles()}))
	case schedpb.Call_SUPPRESS:
		soft(s.m.Suppress(&corralpb.SuppressRequest{Header: h, Roles: c.GetSuppress().GetRoles()}))
	case schedpb.Call_KILL:
		k := c.Kill
		req := &corralpb.KillRequest{Header: h, TaskId: k.GetTaskId().GetValue(), AgentId: k.GetAgentId().GetValue()}
		if g := k.GetKillPolicy().GetGracePeriod(); g != nil && g.GetNanoseconds() > 0 {
			req.GraceSeconds = time.Duration(g.GetNanoseconds()).Seconds()
		}
		err := s.m.Kill(req)
		if master.ErrorCode(err) == master.CodeNotFound {
			// Mesos reconciles a kill of a task it does not know.
			s.injectFor(h.FrameworkId, masterUpdate(req.TaskId, req.AgentId, mesospb.TaskState_TASK_LOST,
				mesospb.TaskStatus_REASON_RECONCILIATION, "Task is unknown to the master", s.now()))
			return http.StatusAccepted, nil
		}
		soft(err)
	case schedpb.Call_SHUTDOWN:
		// A custom executor is shut down (its tasks end with it); a command
		// task's executor has the task's ID, as in Mesos: shutting it down
		// kills the task.
		err := s.m.ShutdownExecutor(h, c.Shutdown.GetAgentId().GetValue(), c.Shutdown.GetExecutorId().GetValue())
		if master.ErrorCode(err) == master.CodeNotFound {
			err = s.m.Kill(&corralpb.KillRequest{Header: h, TaskId: c.Shutdown.GetExecutorId().GetValue(),
				AgentId: c.Shutdown.GetAgentId().GetValue()})
		}
		soft(err)
	case schedpb.Call_ACKNOWLEDGE:
		a := c.Acknowledge
		soft(s.m.Acknowledge(&corralpb.AcknowledgeRequest{Header: h, AgentId: a.GetAgentId().GetValue(),
			TaskId: a.GetTaskId().GetValue(), Uuid: a.GetUuid()}))
	case schedpb.Call_RECONCILE:
		req := &corralpb.ReconcileRequest{Header: h}
		for _, t := range c.Reconcile.Tasks {
			req.Tasks = append(req.Tasks, &corralpb.ReconcileRequest_Task{TaskId: t.GetTaskId().GetValue(), AgentId: t.GetAgentId().GetValue()})
		}
		soft(s.m.Reconcile(req))
	case schedpb.Call_MESSAGE:
		msg := c.Message
		// A custom executor by its ID, else a command task's executor (its
		// ID is the task's).
		err := s.m.Message(&corralpb.MessageRequest{Header: h, AgentId: msg.GetAgentId().GetValue(),
			ExecutorId: msg.GetExecutorId().GetValue(), Data: msg.GetData()})
		if master.ErrorCode(err) == master.CodeNotFound {
			err = s.m.Message(&corralpb.MessageRequest{Header: h, AgentId: msg.GetAgentId().GetValue(),
				TaskId: msg.GetExecutorId().GetValue(), Data: msg.GetData()})
		}
		soft(err)
	case schedpb.Call_REQUEST:
		s.request(h, c.Request, log)
	case schedpb.Call_UPDATE_FRAMEWORK:
		return s.updateFramework(h, c.UpdateFramework)
	case schedpb.Call_ACKNOWLEDGE_OPERATION_STATUS:
		return 0, badRequest("ACKNOWLEDGE_OPERATION_STATUS: corral has no operation feedback (only LAUNCH is supported, and it reports through task updates)")
	case schedpb.Call_RECONCILE_OPERATIONS:
		if len(c.ReconcileOperations.Operations) > 0 {
			return 0, badRequest("RECONCILE_OPERATIONS: corral has no operation feedback (only LAUNCH is supported, and it reports through task updates)")
		}
	case schedpb.Call_UNKNOWN:
		return 0, &callError{http.StatusNotImplemented, "Received an unexpected 'UNKNOWN' call"}
	default:
		return 0, &callError{http.StatusNotImplemented, fmt.Sprintf("Call type %s is not implemented", c.GetType())}
	}
	return http.StatusAccepted, nil
}

func (s *Server) injectFor(frameworkID string, ev *schedpb.Event) {
	if st := s.streamOf(frameworkID); st != nil {
		st.inject(ev)
	}
}

func filtersToCorral(f *mesospb.Filters) *corralpb.Filters {
	if f == nil || f.RefuseSeconds == nil {
		return nil
	}
	return &corralpb.Filters{RefuseSeconds: proto.Float64(f.GetRefuseSeconds())}
}

// decline returns offers one by one: Mesos skips unknown ids and an empty
// list is a no-op.
func (s *Server) decline(h *corralpb.CallHeader, ids []*mesospb.OfferID, f *mesospb.Filters, soft func(error)) {
	seen := map[string]bool{}
	for _, id := range ids {
		v := id.GetValue()
		if seen[v] {
			continue
		}
		seen[v] = true
		soft(s.m.Decline(&corralpb.DeclineRequest{Header: h, OfferIds: []string{v}, Filters: filtersToCorral(f)}))
	}
}

// accept launches the LAUNCH tasks of an ACCEPT. Operations corral does
// not implement refuse the whole call with 400 before anything happens,
// so a framework never believes a reservation or a task group was made.
// Tasks corral cannot run get TASK_ERROR; if the offers cannot be used
// every task gets TASK_LOST with REASON_INVALID_OFFERS, as in Mesos.
func (s *Server) accept(h *corralpb.CallHeader, a *schedpb.Call_Accept, log interface {
	Info(string, ...any)
}) (int, error) {
	for i, op := range a.Operations {
		switch op.GetType() {
		case mesospb.Offer_Operation_LAUNCH:
		case mesospb.Offer_Operation_LAUNCH_GROUP:
			return 0, badRequest("operation %d: LAUNCH_GROUP is not supported by corral (no default executor or task groups); use LAUNCH with command tasks. Nothing was launched", i)
		case mesospb.Offer_Operation_UNKNOWN:
			return 0, badRequest("operation %d: 'type' is missing or unknown. Nothing was launched", i)
		default:
			return 0, badRequest("operation %d: %s is not supported by corral (no reservations, volumes or disks); only LAUNCH is. Nothing was launched", i, op.GetType())
		}
	}
	ids := make([]string, 0, len(a.OfferIds))
	for _, id := range a.OfferIds {
		ids = append(ids, id.GetValue())
	}
	var tasks []*corralpb.TaskInfo
	var agents []string
	for _, op := range a.Operations {
		for _, t := range op.GetLaunch().GetTaskInfos() {
			ct, err := taskToCorral(t)
			if err != nil {
				s.injectFor(h.FrameworkId, masterUpdate(t.GetTaskId().GetValue(), t.GetAgentId().GetValue(),
					mesospb.TaskState_TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, err.Error(), s.now()))
				continue
			}
			tasks = append(tasks, ct)
			agents = append(agents, t.GetAgentId().GetValue())
		}
	}
	soft := func(err error) {
		if err != nil {
			log.Info("mesos decline had no effect", "error", err)
		}
	}
	if len(tasks) == 0 {
		// An ACCEPT with nothing to launch declines the offers.
		s.decline(h, a.OfferIds, a.Filters, soft)
		return http.StatusAccepted, nil
	}
	refused, err := s.m.AcceptEach(&corralpb.AcceptRequest{Header: h, OfferIds: ids, Filters: filtersToCorral(a.Filters),
		Operations: []*corralpb.Operation{{Op: &corralpb.Operation_Launch_{Launch: &corralpb.Operation_Launch{Tasks: tasks}}}}})
	agentOf := make(map[string]string, len(tasks))
	for i, t := range tasks {
		agentOf[t.TaskId] = agents[i]
	}
	for _, r := range refused {
		// As in Mesos: the invalid task gets TASK_ERROR, the others launch.
		reason := mesospb.TaskStatus_REASON_TASK_INVALID
		if master.IsDenied(r.Err) {
			reason = mesospb.TaskStatus_REASON_TASK_UNAUTHORIZED
		}
		s.injectFor(h.FrameworkId, masterUpdate(r.TaskID, agentOf[r.TaskID], mesospb.TaskState_TASK_ERROR,
			reason, r.Err.Error(), s.now()))
	}
	if err == nil {
		return http.StatusAccepted, nil
	}
	state, reason := mesospb.TaskState_TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID
	switch master.ErrorCode(err) {
	case master.CodeInvalidOffers, master.CodeNotFound, master.CodeForbidden, master.CodePrecondition:
		state, reason = mesospb.TaskState_TASK_LOST, mesospb.TaskStatus_REASON_INVALID_OFFERS
	default:
		// The call as a whole was refused (say, its filters): nothing
		// launched and the offers are still out. Mesos would have used
		// them, so give them back with the call's filters.
		s.decline(h, a.OfferIds, a.Filters, soft)
	}
	log.Info("mesos launch refused", "error", err)
	for _, t := range tasks {
		s.injectFor(h.FrameworkId, masterUpdate(t.TaskId, agentOf[t.TaskId], state, reason, err.Error(), s.now()))
	}
	return http.StatusAccepted, nil
}

// request feeds REQUEST into corral's declared demand: each Mesos Request
// is one task shape; the role comes from the resources' allocation_info
// (or reservation), else the framework's only role.
func (s *Server) request(h *corralpb.CallHeader, r *schedpb.Call_Request, log interface {
	Info(string, ...any)
}) {
	byRole := map[string][]*corralpb.TaskShape{}
	var order []string
	for _, req := range r.Requests {
		role := ""
		for _, res := range req.Resources {
			if ai := res.GetAllocationInfo().GetRole(); ai != "" {
				role = ai
			}
		}
		res, err := resourcesToCorral(req.Resources)
		if err != nil {
			log.Info("mesos request ignored", "error", err)
			return
		}
		for _, x := range res {
			if role == "" && x.Role != "" {
				role = x.Role
			}
		}
		if _, ok := byRole[role]; !ok {
			order = append(order, role)
		}
		byRole[role] = append(byRole[role], &corralpb.TaskShape{Resources: res, Count: 1})
	}
	if len(order) == 0 {
		// An empty REQUEST withdraws the demand of the framework's only role.
		order = []string{""}
	}
	for _, role := range order {
		if err := s.m.Request(&corralpb.RequestCall{Header: h, Role: role, Shapes: byRole[role]}); err != nil {
			log.Info("mesos request had no effect", "role", role, "error", err)
		}
	}
}

// updateFramework is UPDATE_FRAMEWORK: 200 when applied, 400 if invalid.
func (s *Server) updateFramework(h *corralpb.CallHeader, u *schedpb.Call_UpdateFramework) (int, error) {
	fi, err := frameworkInfo(u.FrameworkInfo)
	if err != nil {
		return 0, badRequest("Failed to validate FrameworkInfo: %v", err)
	}
	if err := checkOfferConstraints(u.OfferConstraints); err != nil {
		return 0, badRequest("%v", err)
	}
	if err := s.m.UpdateFramework(h, fi, u.SuppressedRoles); err != nil {
		if master.ErrorCode(err) == master.CodeNotSubscribed {
			return 0, &callError{http.StatusForbidden, "Framework is not subscribed"}
		}
		return 0, badRequest("%v", err)
	}
	if st := s.streamOf(h.FrameworkId); st != nil {
		st.mu.Lock()
		st.caps = capsOf(u.FrameworkInfo)
		st.mu.Unlock()
	}
	return http.StatusOK, nil
}
