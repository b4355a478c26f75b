package mesos

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/agent"
	"github.com/corral-project/corral/core/api/mesos/executorpb"
	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/wire"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// The Mesos v1 executor API at the agent's /api/v1/executor: a thin
// adapter over the agent's executor core (agent.ExecutorSubscribe,
// ExecutorUpdate, ExecutorMessage), which corral's own gRPC executor API
// (sdk/executor) shares. Handler order and status codes follow Mesos's
// Http::executor (see ../shared/reference/mesos-v1-api.md §8).

// ExecutorHandler serves /api/v1/executor for an agent.
type ExecutorHandler struct {
	a   *agent.Agent
	log hclog.Logger
}

// NewExecutorHandler returns the handler; mount it on the agent with
// a.Handle("/api/v1/executor", h).
func NewExecutorHandler(a *agent.Agent, logger hclog.Logger) *ExecutorHandler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &ExecutorHandler{a: a, log: logger}
}

// Register mounts the endpoint under Mesos's two paths.
func (h *ExecutorHandler) Register(a *agent.Agent) {
	a.Handle("/api/v1/executor", h)
	a.Handle("/slave(1)/api/v1/executor", h)
}

// validateExecutorCall is Mesos's validateExecutorCall (400s).
func validateExecutorCall(c *executorpb.Call) error {
	if _, known := executorpb.Call_Type_name[int32(c.GetType())]; c.Type == nil || !known {
		// An enum value this version does not know is no value, as for a
		// proto2 parser that drops it.
		return errors.New("Expecting 'type' to be present")
	}
	switch c.GetType() {
	case executorpb.Call_SUBSCRIBE:
		if c.Subscribe == nil {
			return errors.New("Expecting 'subscribe' to be present")
		}
		for _, u := range c.GetSubscribe().GetUnacknowledgedUpdates() {
			if err := validateExecutorUpdate(c, u); err != nil {
				return err
			}
		}
	case executorpb.Call_UPDATE:
		if c.Update == nil {
			return errors.New("Expecting 'update' to be present")
		}
		return validateExecutorUpdate(c, c.Update)
	case executorpb.Call_MESSAGE:
		if c.Message == nil {
			return errors.New("Expecting 'message' to be present")
		}
	}
	return nil
}

func validateExecutorUpdate(c *executorpb.Call, u *executorpb.Call_Update) error {
	st := u.GetStatus()
	switch {
	case len(st.GetUuid()) == 0:
		return errors.New("Expecting 'uuid' to be present")
	case len(st.GetUuid()) != 16:
		return fmt.Errorf("Invalid UUID: %d bytes", len(st.GetUuid()))
	case st.GetSource() != mesospb.TaskStatus_SOURCE_EXECUTOR:
		return fmt.Errorf("Received Call from executor %s of framework %s with invalid source, expecting 'SOURCE_EXECUTOR'",
			c.GetExecutorId().GetValue(), c.GetFrameworkId().GetValue())
	case st.ExecutorId != nil && st.GetExecutorId().GetValue() != c.GetExecutorId().GetValue():
		return fmt.Errorf("ExecutorID in Call: %s does not match ExecutorID in TaskStatus: %s",
			c.GetExecutorId().GetValue(), st.GetExecutorId().GetValue())
	case st.GetState() == mesospb.TaskState_TASK_STAGING:
		return errors.New("Received TASK_STAGING from executor " + c.GetExecutorId().GetValue() + " which is not allowed")
	}
	return nil
}

func (h *ExecutorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := &executorpb.Call{}
	if !readCall(w, r, call) {
		return
	}
	if err := validateExecutorCall(call); err != nil {
		textError(w, http.StatusBadRequest, "Failed to validate executor::Call: "+err.Error())
		return
	}
	fid, eid := call.GetFrameworkId().GetValue(), call.GetExecutorId().GetValue()
	switch call.GetType() {
	case executorpb.Call_SUBSCRIBE:
		h.subscribe(w, r, call)
	case executorpb.Call_HEARTBEAT:
		w.WriteHeader(http.StatusAccepted)
	case executorpb.Call_UPDATE:
		st := statusFromMesos(call.GetUpdate().GetStatus())
		h.answer(w, h.a.ExecutorUpdate(fid, eid, st))
	case executorpb.Call_MESSAGE:
		h.answer(w, h.a.ExecutorMessage(fid, eid, call.GetMessage().GetData()))
	default:
		textError(w, http.StatusNotImplemented, "Received unexpected '"+call.GetType().String()+"' call")
	}
}

// answer is 202 on success, else the core's status and message.
func (h *ExecutorHandler) answer(w http.ResponseWriter, err error) {
	if err == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var ce *agent.ExecutorCallError
	if errors.As(err, &ce) {
		textError(w, ce.Status, ce.Msg)
		return
	}
	textError(w, http.StatusInternalServerError, err.Error())
}

func (h *ExecutorHandler) subscribe(w http.ResponseWriter, r *http.Request, call *executorpb.Call) {
	ctype, ok := responseType(r)
	if !ok {
		textError(w, http.StatusNotAcceptable, "Expecting 'Accept' to allow application/json or application/x-protobuf")
		return
	}
	stream, ok := wire.NewStream(w, ctype)
	if !ok {
		textError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	var tasks []*corralpb.TaskInfo
	for _, t := range call.GetSubscribe().GetUnacknowledgedTasks() {
		tasks = append(tasks, &corralpb.TaskInfo{TaskId: t.GetTaskId().GetValue()})
	}
	var updates []*corralpb.TaskStatus
	for _, u := range call.GetSubscribe().GetUnacknowledgedUpdates() {
		updates = append(updates, statusFromMesos(u.GetStatus()))
	}
	fid, eid := call.GetFrameworkId().GetValue(), call.GetExecutorId().GetValue()
	sess, err := h.a.ExecutorSubscribe(fid, eid, tasks, updates)
	if err != nil {
		h.answer(w, err)
		return
	}
	log := h.log.With("framework_id", fid, "executor_id", eid)
	log.Info("mesos executor subscribed", "content_type", ctype)
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	stream.Flush()
	write := func(ev *executorpb.Event) bool {
		return writeEvent(log, stream, ev, ev.GetType().String())
	}
	// Mesos's executor heartbeat interval is 30 minutes; keep-alives
	// matter only to proxies, so the same interval.
	heartbeat := time.NewTicker(30 * time.Minute)
	defer heartbeat.Stop()
	for {
		select {
		case ev := <-sess.Events():
			if !write(executorEventToMesos(ev)) {
				return
			}
		case <-sess.Done():
			for {
				select {
				case ev := <-sess.Events():
					if !write(executorEventToMesos(ev)) {
						return
					}
				default:
					return
				}
			}
		case <-heartbeat.C:
			if !write(&executorpb.Event{Type: executorpb.Event_HEARTBEAT.Enum()}) {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// statusFromMesos maps an executor's TaskStatus onto corral's.
func statusFromMesos(st *mesospb.TaskStatus) *corralpb.TaskStatus {
	out := &corralpb.TaskStatus{
		TaskId: st.GetTaskId().GetValue(), Message: st.GetMessage(), Uuid: st.GetUuid(),
		Source: corralpb.TaskStatus_SOURCE_EXECUTOR, Data: st.GetData(),
	}
	out.State = corralpb.TaskState_TASK_STATE_UNSPECIFIED
	for c, m := range stateToMesos {
		if m == st.GetState() {
			out.State = c
		}
	}
	if st.GetState() == mesospb.TaskState_TASK_STAGING {
		out.State = corralpb.TaskState_TASK_STAGING
	}
	if st.Healthy != nil {
		h := st.GetHealthy()
		out.Healthy = &h
	}
	if st.Reason != nil {
		out.Reason = reasonFromMesos(st.GetReason())
	}
	return out
}

func reasonFromMesos(r mesospb.TaskStatus_Reason) corralpb.TaskStatus_Reason {
	switch r {
	case mesospb.TaskStatus_REASON_COMMAND_EXECUTOR_FAILED:
		return corralpb.TaskStatus_REASON_COMMAND_EXITED
	case mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED:
		return corralpb.TaskStatus_REASON_LAUNCH_FAILED
	case mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED:
		return corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED
	case mesospb.TaskStatus_REASON_TASK_INVALID:
		return corralpb.TaskStatus_REASON_INVALID
	case mesospb.TaskStatus_REASON_CONTAINER_LIMITATION:
		return corralpb.TaskStatus_REASON_CONTAINER_LIMITATION
	}
	return corralpb.TaskStatus_REASON_UNSPECIFIED
}

// executorEventToMesos maps one agent event to Mesos's wire form.
func executorEventToMesos(ev *corralpb.ExecutorEvent) *executorpb.Event {
	switch e := ev.Event.(type) {
	case *corralpb.ExecutorEvent_Subscribed_:
		s := e.Subscribed
		ai := s.GetAgentInfo()
		agentInfo := &mesospb.AgentInfo{Hostname: proto.String(ai.GetHostname()), Id: &mesospb.AgentID{Value: proto.String(ai.GetId())},
			Attributes: attributes(ai.GetAttributes())}
		return &executorpb.Event{Type: executorpb.Event_SUBSCRIBED.Enum(), Subscribed: &executorpb.Event_Subscribed{
			ExecutorInfo:  executorInfoToMesos(s.GetExecutorInfo(), s.GetFrameworkInfo().GetId()),
			FrameworkInfo: frameworkInfoToMesos(s.GetFrameworkInfo()),
			AgentInfo:     agentInfo,
		}}
	case *corralpb.ExecutorEvent_Launch_:
		return &executorpb.Event{Type: executorpb.Event_LAUNCH.Enum(), Launch: &executorpb.Event_Launch{Task: taskInfoToMesos(e.Launch.GetTask())}}
	case *corralpb.ExecutorEvent_Kill_:
		k := &executorpb.Event_Kill{TaskId: &mesospb.TaskID{Value: proto.String(e.Kill.GetTaskId())}}
		if g := e.Kill.GetGraceSeconds(); g > 0 {
			k.KillPolicy = &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: proto.Int64(int64(g * 1e9))}}
		}
		return &executorpb.Event{Type: executorpb.Event_KILL.Enum(), Kill: k}
	case *corralpb.ExecutorEvent_Acknowledged_:
		return &executorpb.Event{Type: executorpb.Event_ACKNOWLEDGED.Enum(), Acknowledged: &executorpb.Event_Acknowledged{
			TaskId: &mesospb.TaskID{Value: proto.String(e.Acknowledged.GetTaskId())}, Uuid: e.Acknowledged.GetUuid()}}
	case *corralpb.ExecutorEvent_Message_:
		return &executorpb.Event{Type: executorpb.Event_MESSAGE.Enum(), Message: &executorpb.Event_Message{Data: e.Message.GetData()}}
	case *corralpb.ExecutorEvent_Shutdown_:
		return &executorpb.Event{Type: executorpb.Event_SHUTDOWN.Enum()}
	case *corralpb.ExecutorEvent_Error_:
		return &executorpb.Event{Type: executorpb.Event_ERROR.Enum(), Error: &executorpb.Event_Error{Message: proto.String(e.Error.GetMessage())}}
	}
	return &executorpb.Event{Type: executorpb.Event_UNKNOWN.Enum()}
}

func frameworkInfoToMesos(fi *corralpb.FrameworkInfo) *mesospb.FrameworkInfo {
	out := &mesospb.FrameworkInfo{Id: &mesospb.FrameworkID{Value: proto.String(fi.GetId())}, Name: proto.String(fi.GetName()),
		User: proto.String(fi.GetUser()), Checkpoint: proto.Bool(true)}
	if len(fi.GetRoles()) == 1 {
		out.Role = proto.String(fi.GetRoles()[0])
	} else {
		out.Roles = append(out.Roles, fi.GetRoles()...)
	}
	return out
}

// taskInfoToMesos is the LAUNCH event's task: what the framework sent,
// as corral kept it.
func taskInfoToMesos(t *corralpb.TaskInfo) *mesospb.TaskInfo {
	out := &mesospb.TaskInfo{
		Name: proto.String(t.GetName()), TaskId: &mesospb.TaskID{Value: proto.String(t.GetTaskId())},
		AgentId:   &mesospb.AgentID{Value: proto.String(t.GetAgentId())},
		Resources: resourcesToMesos(t.GetResources(), "", caps{}),
		Data:      t.GetData(),
	}
	if e := t.GetExecutor(); e != nil {
		out.Executor = executorInfoToMesos(e, "")
	}
	if t.GetKillGraceSeconds() > 0 {
		out.KillPolicy = &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: proto.Int64(int64(t.GetKillGraceSeconds() * 1e9))}}
	}
	if len(t.GetLabels()) > 0 {
		out.Labels = labelsToMesos(t.GetLabels())
	}
	return out
}

func labelsToMesos(m map[string]string) *mesospb.Labels {
	out := &mesospb.Labels{}
	for _, k := range sortedStrings(m) {
		out.Labels = append(out.Labels, &mesospb.Label{Key: proto.String(k), Value: proto.String(m[k])})
	}
	return out
}

func executorInfoToMesos(e *corralpb.ExecutorInfo, frameworkID string) *mesospb.ExecutorInfo {
	cmd := e.GetCommand()
	mc := &mesospb.CommandInfo{Shell: proto.Bool(cmd.GetShell()), Value: proto.String(cmd.GetValue())}
	if !cmd.GetShell() {
		mc.Arguments = append([]string{cmd.GetValue()}, cmd.GetArguments()...)
	}
	if cmd.GetUser() != "" {
		mc.User = proto.String(cmd.GetUser())
	}
	if len(cmd.GetEnvironment()) > 0 {
		mc.Environment = &mesospb.Environment{}
		for _, k := range sortedStrings(cmd.GetEnvironment()) {
			mc.Environment.Variables = append(mc.Environment.Variables, &mesospb.Environment_Variable{Name: proto.String(k), Value: proto.String(cmd.GetEnvironment()[k])})
		}
	}
	for _, u := range e.GetUris() {
		mu := &mesospb.CommandInfo_URI{Value: proto.String(u.GetValue()), Executable: proto.Bool(u.GetExecutable()),
			Extract: proto.Bool(u.GetExtract()), Cache: proto.Bool(u.GetCache())}
		if u.GetOutputFile() != "" {
			mu.OutputFile = proto.String(u.GetOutputFile())
		}
		mc.Uris = append(mc.Uris, mu)
	}
	out := &mesospb.ExecutorInfo{
		Type:       mesospb.ExecutorInfo_CUSTOM.Enum(),
		ExecutorId: &mesospb.ExecutorID{Value: proto.String(e.GetExecutorId())},
		Command:    mc,
		Resources:  resourcesToMesos(e.GetResources(), "", caps{}),
		Data:       e.GetData(),
	}
	if frameworkID != "" {
		out.FrameworkId = &mesospb.FrameworkID{Value: proto.String(frameworkID)}
	}
	if e.GetName() != "" {
		out.Name = proto.String(e.GetName())
	}
	if g := e.GetShutdownGraceSeconds(); g > 0 {
		out.ShutdownGracePeriod = &mesospb.DurationInfo{Nanoseconds: proto.Int64(int64(g * 1e9))}
	}
	if len(e.GetLabels()) > 0 {
		out.Labels = labelsToMesos(e.GetLabels())
	}
	return out
}

// executorInfoToCorral maps a framework's Mesos ExecutorInfo (in LAUNCH)
// onto corral's, refusing clearly what corral cannot run.
func executorInfoToCorral(e *mesospb.ExecutorInfo) (*corralpb.ExecutorInfo, error) {
	switch {
	case e.Type != nil && e.GetType() != mesospb.ExecutorInfo_CUSTOM:
		return nil, fmt.Errorf("ExecutorInfo.type %s is not supported in LAUNCH (only CUSTOM)", e.GetType())
	case e.Command == nil:
		return nil, fmt.Errorf("ExecutorInfo.command is required")
	case e.Container != nil:
		return nil, fmt.Errorf("ExecutorInfo.container is not supported: corral runs executors through its own isolator")
	}
	cmd := e.GetCommand()
	out := &corralpb.ExecutorInfo{
		ExecutorId: e.GetExecutorId().GetValue(), Name: e.GetName(), Data: e.GetData(), Api: "mesos",
		Command: &corralpb.CommandInfo{Shell: cmd.GetShell(), Value: cmd.GetValue(), User: cmd.GetUser()},
	}
	if !cmd.GetShell() && len(cmd.Arguments) > 0 {
		out.Command.Arguments = append([]string(nil), cmd.Arguments[1:]...)
	}
	for _, v := range cmd.GetEnvironment().GetVariables() {
		if v.GetType() == mesospb.Environment_Variable_SECRET || v.Secret != nil {
			return nil, fmt.Errorf("executor environment variable %q: secrets are not supported by corral", v.GetName())
		}
		if out.Command.Environment == nil {
			out.Command.Environment = map[string]string{}
		}
		out.Command.Environment[v.GetName()] = v.GetValue()
	}
	for _, u := range cmd.GetUris() {
		out.Uris = append(out.Uris, &corralpb.URI{Value: u.GetValue(), Executable: u.GetExecutable(), Extract: u.GetExtract(),
			Cache: u.GetCache(), OutputFile: u.GetOutputFile()})
	}
	res, err := resourcesToCorral(e.Resources)
	if err != nil {
		return nil, fmt.Errorf("executor resources: %w", err)
	}
	out.Resources = res
	if g := e.GetShutdownGracePeriod(); g != nil {
		out.ShutdownGraceSeconds = time.Duration(g.GetNanoseconds()).Seconds()
	}
	if l := e.GetLabels().GetLabels(); len(l) > 0 {
		out.Labels = map[string]string{}
		for _, kv := range l {
			out.Labels[kv.GetKey()] = kv.GetValue()
		}
	}
	return out, nil
}

func sortedStrings(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
