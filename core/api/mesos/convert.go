package mesos

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// caps are the FrameworkInfo capabilities that change what the adapter
// sends a framework.
type caps struct {
	multiRole   bool // allocation_info on offers and resources
	refinement  bool // post-refinement resources (reservations[])
	killingTask bool // TASK_KILLING may be sent
}

func capsOf(fi *mesospb.FrameworkInfo) caps {
	var c caps
	for _, cp := range fi.GetCapabilities() {
		switch cp.GetType() {
		case mesospb.FrameworkInfo_Capability_MULTI_ROLE:
			c.multiRole = true
		case mesospb.FrameworkInfo_Capability_RESERVATION_REFINEMENT:
			c.refinement = true
		case mesospb.FrameworkInfo_Capability_TASK_KILLING_STATE:
			c.killingTask = true
		}
	}
	return c
}

// frameworkInfo maps a Mesos FrameworkInfo onto corral's. Semantic
// problems Mesos reports asynchronously (an ERROR event on the stream)
// come back as errors.
func frameworkInfo(fi *mesospb.FrameworkInfo) (*corralpb.FrameworkInfo, error) {
	c := capsOf(fi)
	out := &corralpb.FrameworkInfo{
		Id: fi.GetId().GetValue(), Name: fi.GetName(), User: fi.GetUser(), Principal: fi.GetPrincipal(),
		FailoverTimeoutSeconds: fi.GetFailoverTimeout(), Hostname: fi.GetHostname(), Checkpoint: fi.GetCheckpoint(),
	}
	switch {
	case c.multiRole && fi.Role != nil:
		return nil, fmt.Errorf("'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable")
	case !c.multiRole && len(fi.Roles) > 0:
		return nil, fmt.Errorf("'FrameworkInfo.roles' is set but the framework is not MULTI_ROLE capable")
	case c.multiRole:
		seen := map[string]bool{}
		for _, r := range fi.Roles {
			if seen[r] {
				return nil, fmt.Errorf("'FrameworkInfo.roles' contains duplicate role %q", r)
			}
			seen[r] = true
		}
		out.Roles = append([]string(nil), fi.Roles...)
	default:
		out.Roles = []string{fi.GetRole()}
	}
	for _, cp := range fi.Capabilities {
		if cp.Type != nil && cp.GetType() != mesospb.FrameworkInfo_Capability_UNKNOWN {
			out.Capabilities = append(out.Capabilities, cp.GetType().String())
		}
	}
	if l := fi.GetLabels().GetLabels(); len(l) > 0 {
		out.Labels = map[string]string{}
		for _, kv := range l {
			out.Labels[kv.GetKey()] = kv.GetValue()
		}
	}
	for role, of := range fi.GetOfferFilters() {
		alts := &corralpb.MinAllocatable{}
		for _, q := range of.GetMinAllocatableResources().GetQuantities() {
			var list corralpb.ResourceList
			names := make([]string, 0, len(q.GetQuantities()))
			for n := range q.GetQuantities() {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				list.Resources = append(list.Resources, &corralpb.Resource{Name: n,
					Value: &corralpb.Resource_Scalar{Scalar: q.GetQuantities()[n].GetValue()}})
			}
			alts.Alternatives = append(alts.Alternatives, &list)
		}
		if len(alts.Alternatives) > 0 {
			if out.MinAllocatable == nil {
				out.MinAllocatable = map[string]*corralpb.MinAllocatable{}
			}
			out.MinAllocatable[role] = alts
		}
	}
	return out, nil
}

// resourceToCorral maps a Mesos resource onto corral's model: the value,
// and the reservation role ("" unreserved). allocation_info is not a
// reservation; the master knows which role each offer was made to.
func resourceToCorral(r *mesospb.Resource) (*corralpb.Resource, error) {
	switch {
	case r.Disk != nil:
		return nil, fmt.Errorf("resource %s: disk info (volumes, disk sources) is not supported by corral", r.GetName())
	case r.Revocable != nil:
		return nil, fmt.Errorf("resource %s: revocable resources are not offered by corral", r.GetName())
	case r.Shared != nil:
		return nil, fmt.Errorf("resource %s: shared resources are not supported by corral", r.GetName())
	case r.ProviderId != nil:
		return nil, fmt.Errorf("resource %s: resource providers are not supported by corral", r.GetName())
	}
	out := &corralpb.Resource{Name: r.GetName()}
	switch {
	case len(r.Reservations) > 0:
		out.Role = r.Reservations[len(r.Reservations)-1].GetRole()
	case r.Role != nil && r.GetRole() != "*":
		out.Role = r.GetRole()
	}
	switch r.GetType() {
	case mesospb.Value_SCALAR:
		out.Value = &corralpb.Resource_Scalar{Scalar: r.GetScalar().GetValue()}
	case mesospb.Value_RANGES:
		rs := &corralpb.Ranges{}
		for _, x := range r.GetRanges().GetRange() {
			rs.Range = append(rs.Range, &corralpb.Range{Begin: x.GetBegin(), End: x.GetEnd()})
		}
		out.Value = &corralpb.Resource_Ranges{Ranges: rs}
	case mesospb.Value_SET:
		out.Value = &corralpb.Resource_Set{Set: &corralpb.Set{Item: append([]string(nil), r.GetSet().GetItem()...)}}
	default:
		return nil, fmt.Errorf("resource %s: type %s is not a resource type (SCALAR, RANGES or SET)", r.GetName(), r.GetType())
	}
	return out, nil
}

func resourcesToCorral(in []*mesospb.Resource) ([]*corralpb.Resource, error) {
	out := make([]*corralpb.Resource, 0, len(in))
	for _, r := range in {
		c, err := resourceToCorral(r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// resourceToMesos shapes a corral resource for a framework: allocation
// info only for MULTI_ROLE frameworks (MESOS-8237), and the reservation in
// the pre- or post-refinement format the framework understands.
func resourceToMesos(r *corralpb.Resource, allocRole string, c caps) *mesospb.Resource {
	out := &mesospb.Resource{Name: proto.String(r.Name)}
	switch v := r.Value.(type) {
	case *corralpb.Resource_Scalar:
		out.Type = mesospb.Value_SCALAR.Enum()
		out.Scalar = &mesospb.Value_Scalar{Value: proto.Float64(v.Scalar)}
	case *corralpb.Resource_Ranges:
		out.Type = mesospb.Value_RANGES.Enum()
		rs := &mesospb.Value_Ranges{}
		for _, x := range v.Ranges.GetRange() {
			rs.Range = append(rs.Range, &mesospb.Value_Range{Begin: proto.Uint64(x.Begin), End: proto.Uint64(x.End)})
		}
		out.Ranges = rs
	case *corralpb.Resource_Set:
		out.Type = mesospb.Value_SET.Enum()
		out.Set = &mesospb.Value_Set{Item: append([]string(nil), v.Set.GetItem()...)}
	}
	reserved := r.Role != "" && r.Role != "*"
	if c.refinement {
		if reserved {
			out.Reservations = []*mesospb.Resource_ReservationInfo{{
				Type: mesospb.Resource_ReservationInfo_STATIC.Enum(), Role: proto.String(r.Role)}}
		}
	} else if reserved {
		out.Role = proto.String(r.Role)
	} else {
		out.Role = proto.String("*")
	}
	if c.multiRole && allocRole != "" {
		out.AllocationInfo = &mesospb.Resource_AllocationInfo{Role: proto.String(allocRole)}
	}
	return out
}

func resourcesToMesos(in []*corralpb.Resource, allocRole string, c caps) []*mesospb.Resource {
	out := make([]*mesospb.Resource, 0, len(in))
	for _, r := range in {
		out = append(out, resourceToMesos(r, allocRole, c))
	}
	return out
}

// agentURL turns corral's agent base URL into Mesos's URL message. Mesos
// names the agent process "/slave(1)"; corral's agent serves at its root.
func agentURL(raw string) *mesospb.URL {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil
	}
	port, _ := strconv.Atoi(portStr)
	addr := &mesospb.Address{Hostname: proto.String(host), Port: proto.Int32(int32(port))}
	if ip := net.ParseIP(host); ip != nil {
		addr.Ip = proto.String(host)
	}
	scheme := u.Scheme
	if scheme == "" {
		scheme = "http"
	}
	out := &mesospb.URL{Scheme: proto.String(scheme), Address: addr}
	if u.Path != "" {
		out.Path = proto.String(u.Path)
	}
	return out
}

// attributes maps corral's text attributes: numbers become SCALAR, the
// rest TEXT, as Mesos parses "rack:r1;level:2".
func attributes(in map[string]string) []*mesospb.Attribute {
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*mesospb.Attribute, 0, len(in))
	for _, n := range names {
		a := &mesospb.Attribute{Name: proto.String(n)}
		if f, err := strconv.ParseFloat(in[n], 64); err == nil {
			a.Type = mesospb.Value_SCALAR.Enum()
			a.Scalar = &mesospb.Value_Scalar{Value: proto.Float64(f)}
		} else {
			a.Type = mesospb.Value_TEXT.Enum()
			a.Text = &mesospb.Value_Text{Value: proto.String(in[n])}
		}
		out = append(out, a)
	}
	return out
}

func offerToMesos(o *corralpb.Offer, executors []string, c caps) *mesospb.Offer {
	out := &mesospb.Offer{
		Id:          &mesospb.OfferID{Value: proto.String(o.Id)},
		FrameworkId: &mesospb.FrameworkID{Value: proto.String(o.FrameworkId)},
		AgentId:     &mesospb.AgentID{Value: proto.String(o.AgentId)},
		Hostname:    proto.String(o.Hostname),
		Url:         agentURL(o.AgentUrl),
		Resources:   resourcesToMesos(o.Resources, o.Role, c),
		Attributes:  attributes(o.Attributes),
	}
	for _, e := range executors {
		out.ExecutorIds = append(out.ExecutorIds, &mesospb.ExecutorID{Value: proto.String(e)})
	}
	if c.multiRole {
		out.AllocationInfo = &mesospb.Resource_AllocationInfo{Role: proto.String(o.Role)}
	}
	return out
}

var stateToMesos = map[corralpb.TaskState]mesospb.TaskState{
	corralpb.TaskState_TASK_STAGING:  mesospb.TaskState_TASK_STAGING,
	corralpb.TaskState_TASK_STARTING: mesospb.TaskState_TASK_STARTING,
	corralpb.TaskState_TASK_RUNNING:  mesospb.TaskState_TASK_RUNNING,
	corralpb.TaskState_TASK_KILLING:  mesospb.TaskState_TASK_KILLING,
	corralpb.TaskState_TASK_FINISHED: mesospb.TaskState_TASK_FINISHED,
	corralpb.TaskState_TASK_FAILED:   mesospb.TaskState_TASK_FAILED,
	corralpb.TaskState_TASK_KILLED:   mesospb.TaskState_TASK_KILLED,
	corralpb.TaskState_TASK_LOST:     mesospb.TaskState_TASK_LOST,
	corralpb.TaskState_TASK_ERROR:    mesospb.TaskState_TASK_ERROR,
}

// mesosState maps a corral task state by name (TASK_FINISHED...), for
// views that carry states as strings.
func mesosState(name string) mesospb.TaskState {
	if v, ok := corralpb.TaskState_value[name]; ok {
		if s, ok := stateToMesos[corralpb.TaskState(v)]; ok {
			return s
		}
	}
	return mesospb.TaskState_TASK_UNKNOWN
}

var sourceToMesos = map[corralpb.TaskStatus_Source]mesospb.TaskStatus_Source{
	corralpb.TaskStatus_SOURCE_MASTER:   mesospb.TaskStatus_SOURCE_MASTER,
	corralpb.TaskStatus_SOURCE_AGENT:    mesospb.TaskStatus_SOURCE_AGENT,
	corralpb.TaskStatus_SOURCE_EXECUTOR: mesospb.TaskStatus_SOURCE_EXECUTOR,
}

func reasonToMesos(r corralpb.TaskStatus_Reason, state corralpb.TaskState) *mesospb.TaskStatus_Reason {
	var out mesospb.TaskStatus_Reason
	switch r {
	case corralpb.TaskStatus_REASON_RECONCILIATION:
		out = mesospb.TaskStatus_REASON_RECONCILIATION
	case corralpb.TaskStatus_REASON_COMMAND_EXITED:
		// Mesos' command executor gives no reason for a clean exit.
		if state != corralpb.TaskState_TASK_FAILED {
			return nil
		}
		out = mesospb.TaskStatus_REASON_COMMAND_EXECUTOR_FAILED
	case corralpb.TaskStatus_REASON_LAUNCH_FAILED:
		out = mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED
	case corralpb.TaskStatus_REASON_AGENT_REMOVED:
		out = mesospb.TaskStatus_REASON_AGENT_REMOVED
	case corralpb.TaskStatus_REASON_AGENT_DISCONNECTED:
		out = mesospb.TaskStatus_REASON_AGENT_DISCONNECTED
	case corralpb.TaskStatus_REASON_FRAMEWORK_REMOVED:
		out = mesospb.TaskStatus_REASON_FRAMEWORK_REMOVED
	case corralpb.TaskStatus_REASON_CONTAINER_LIMITATION:
		out = mesospb.TaskStatus_REASON_CONTAINER_LIMITATION
	case corralpb.TaskStatus_REASON_EXECUTOR_TERMINATED:
		out = mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED
	case corralpb.TaskStatus_REASON_TASK_UNKNOWN:
		out = mesospb.TaskStatus_REASON_TASK_UNKNOWN
	case corralpb.TaskStatus_REASON_INVALID:
		out = mesospb.TaskStatus_REASON_TASK_INVALID
	case corralpb.TaskStatus_REASON_PREEMPTED:
		out = mesospb.TaskStatus_REASON_CONTAINER_PREEMPTED
	default:
		return nil
	}
	return &out
}

// statusToMesos maps a corral status. The executor of a command task has
// the task's ID, as in Mesos; master-generated statuses carry no uuid.
func statusToMesos(st *corralpb.TaskStatus) *mesospb.TaskStatus {
	state, ok := stateToMesos[st.State]
	if !ok {
		state = mesospb.TaskState_TASK_UNKNOWN
	}
	out := &mesospb.TaskStatus{
		TaskId: &mesospb.TaskID{Value: proto.String(st.TaskId)},
		State:  state.Enum(),
		Reason: reasonToMesos(st.Reason, st.State),
	}
	if st.Message != "" {
		out.Message = proto.String(st.Message)
	}
	if src, ok := sourceToMesos[st.Source]; ok {
		out.Source = src.Enum()
		if src != mesospb.TaskStatus_SOURCE_MASTER {
			eid := st.ExecutorId
			if eid == "" {
				eid = st.TaskId // a command task's executor
			}
			out.ExecutorId = &mesospb.ExecutorID{Value: proto.String(eid)}
		}
	}
	if st.AgentId != "" {
		out.AgentId = &mesospb.AgentID{Value: proto.String(st.AgentId)}
	}
	if st.TimestampUnixMs != 0 {
		out.Timestamp = proto.Float64(float64(st.TimestampUnixMs) / 1000)
	}
	if len(st.Uuid) > 0 {
		out.Uuid = append([]byte(nil), st.Uuid...)
	}
	if len(st.Data) > 0 {
		out.Data = append([]byte(nil), st.Data...)
	}
	return out
}

// masterUpdate is a status the adapter generates itself (refused launches,
// kills of unknown tasks): from the master, with no uuid, so the framework
// must not acknowledge it.
func masterUpdate(taskID, agentID string, state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string, now time.Time) *schedpb.Event {
	st := &mesospb.TaskStatus{
		TaskId: &mesospb.TaskID{Value: proto.String(taskID)}, State: state.Enum(), Message: proto.String(msg),
		Source: mesospb.TaskStatus_SOURCE_MASTER.Enum(), Reason: reason.Enum(),
		Timestamp: proto.Float64(float64(now.UnixNano()) / 1e9),
	}
	if agentID != "" {
		st.AgentId = &mesospb.AgentID{Value: proto.String(agentID)}
	}
	return &schedpb.Event{Type: schedpb.Event_UPDATE.Enum(), Update: &schedpb.Event_Update{Status: st}}
}

// taskToCorral maps a LAUNCH task onto corral's command task, refusing
// clearly what corral's command executor cannot do as Mesos would.
func taskToCorral(t *mesospb.TaskInfo) (*corralpb.TaskInfo, error) {
	switch {
	case t.Executor != nil && t.Command != nil:
		return nil, fmt.Errorf("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present")
	case t.Executor != nil:
		return executorTaskToCorral(t)
	case t.Command == nil:
		return nil, fmt.Errorf("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present")
	case t.Container != nil:
		return nil, fmt.Errorf("TaskInfo.container is not supported: corral runs command tasks through its own isolator")
	case t.HealthCheck != nil || t.Check != nil:
		return nil, fmt.Errorf("health checks and checks (TaskInfo.health_check, TaskInfo.check) are not supported by corral")
	case t.MaxCompletionTime != nil:
		return nil, fmt.Errorf("TaskInfo.max_completion_time is not supported by corral")
	case len(t.Limits) > 0:
		return nil, fmt.Errorf("TaskInfo.limits is not supported by corral (resources are the limits)")
	case len(t.Command.GetUris()) > 0:
		return nil, fmt.Errorf("CommandInfo.uris are not supported: corral's command executor has no fetcher; ship files with the command or an image")
	}
	res, err := resourcesToCorral(t.Resources)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("Task uses no resources")
	}
	cmd := t.Command
	out := &corralpb.TaskInfo{
		TaskId: t.GetTaskId().GetValue(), Name: t.GetName(), AgentId: t.GetAgentId().GetValue(), Resources: res,
		Command: &corralpb.CommandInfo{Shell: cmd.GetShell(), Value: cmd.GetValue(), User: cmd.GetUser()},
	}
	if !cmd.GetShell() && len(cmd.Arguments) > 0 {
		// Mesos' arguments are the whole argv, argv[0] included; corral's
		// are argv[1:] after the executable in value.
		out.Command.Arguments = append([]string(nil), cmd.Arguments[1:]...)
	}
	for _, v := range cmd.GetEnvironment().GetVariables() {
		if v.GetType() == mesospb.Environment_Variable_SECRET || v.Secret != nil {
			return nil, fmt.Errorf("environment variable %q: secrets are not supported by corral", v.GetName())
		}
		if out.Command.Environment == nil {
			out.Command.Environment = map[string]string{}
		}
		out.Command.Environment[v.GetName()] = v.GetValue()
	}
	if g := t.GetKillPolicy().GetGracePeriod(); g != nil {
		if g.GetNanoseconds() < 0 {
			return nil, fmt.Errorf("kill_policy.grace_period must be non-negative")
		}
		out.KillGraceSeconds = time.Duration(g.GetNanoseconds()).Seconds()
	}
	if l := t.GetLabels().GetLabels(); len(l) > 0 {
		out.Labels = map[string]string{}
		for _, kv := range l {
			out.Labels[kv.GetKey()] = kv.GetValue()
		}
	}
	out.Data = t.GetData()
	return out, nil
}

// executorTaskToCorral maps a task for a custom executor: its resources,
// data, labels and kill policy; the executor runs it.
func executorTaskToCorral(t *mesospb.TaskInfo) (*corralpb.TaskInfo, error) {
	switch {
	case t.Container != nil:
		return nil, fmt.Errorf("TaskInfo.container is not supported: corral runs command tasks through its own isolator")
	case t.HealthCheck != nil || t.Check != nil:
		return nil, fmt.Errorf("health checks and checks (TaskInfo.health_check, TaskInfo.check) are not supported by corral")
	case len(t.Limits) > 0:
		return nil, fmt.Errorf("TaskInfo.limits is not supported by corral (resources are the limits)")
	}
	e, err := executorInfoToCorral(t.Executor)
	if err != nil {
		return nil, err
	}
	res, err := resourcesToCorral(t.Resources)
	if err != nil {
		return nil, err
	}
	out := &corralpb.TaskInfo{TaskId: t.GetTaskId().GetValue(), Name: t.GetName(), AgentId: t.GetAgentId().GetValue(),
		Resources: res, Executor: e, Data: t.GetData()}
	if g := t.GetKillPolicy().GetGracePeriod(); g != nil {
		if g.GetNanoseconds() < 0 {
			return nil, fmt.Errorf("kill_policy.grace_period must be non-negative")
		}
		out.KillGraceSeconds = time.Duration(g.GetNanoseconds()).Seconds()
	}
	if l := t.GetLabels().GetLabels(); len(l) > 0 {
		out.Labels = map[string]string{}
		for _, kv := range l {
			out.Labels[kv.GetKey()] = kv.GetValue()
		}
	}
	return out, nil
}
