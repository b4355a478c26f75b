package mesos

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/masterpb"
	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

func localAddr(r *http.Request) net.Addr {
	a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return a
}

func writeJSONBody(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", typeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// serveVersion is GET /version.
func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(map[string]any{"version": s.version, "build_date": "", "build_time": 0.0, "build_user": ""})
	writeJSONBody(w, b)
}

func (s *Server) versionInfo() *mesospb.VersionInfo {
	return &mesospb.VersionInfo{Version: proto.String(s.version)}
}

// flat is Mesos's v0 resource object: cpus, gpus, mem and disk always
// present, ranges as "[a-b, c-d]", sets as "{x, y}".
func flat(spec string) map[string]any {
	out := map[string]any{"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
	res, err := resources.Parse(spec)
	if err != nil {
		return out
	}
	for _, r := range res.ToProto() {
		switch v := r.Value.(type) {
		case *corralpb.Resource_Scalar:
			out[r.Name] = out0(out[r.Name]) + v.Scalar
		case *corralpb.Resource_Ranges:
			var parts []string
			for _, x := range v.Ranges.Range {
				parts = append(parts, fmt.Sprintf("%d-%d", x.Begin, x.End))
			}
			out[r.Name] = "[" + strings.Join(parts, ", ") + "]"
		case *corralpb.Resource_Set:
			out[r.Name] = "{" + strings.Join(v.Set.Item, ", ") + "}"
		}
	}
	return out
}

func out0(v any) float64 {
	f, _ := v.(float64)
	return f
}

func v1Resources(spec string) []*mesospb.Resource {
	res, err := resources.Parse(spec)
	if err != nil {
		return nil
	}
	return resourcesToMesos(res.ToProto(), "", caps{refinement: true})
}

func hostPort(raw string) (string, int) {
	u := agentURL(raw)
	if u == nil {
		return "", 0
	}
	return u.GetAddress().GetHostname(), int(u.GetAddress().GetPort())
}

// serveState is GET /state: Mesos's v0 JSON for what corral knows.
func (s *Server) serveState(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		textError(w, http.StatusMethodNotAllowed, "Expecting a 'GET' request, received '"+r.Method+"'")
		return
	}
	st := s.m.SnapshotFor(authn.Principal(r.Context()))
	mi := s.masterInfo(localAddr(r))
	var slaves []any
	active, inactive := 0, 0
	for _, a := range st.Agents {
		host, port := hostPort(a.URL)
		if a.Connected {
			active++
		} else {
			inactive++
		}
		slaves = append(slaves, map[string]any{
			"id": a.ID, "hostname": a.Hostname, "port": port, "pid": "slave(1)@" + net.JoinHostPort(host, strconv.Itoa(port)),
			"attributes": attributeMap(a.Attributes), "registered_time": float64(a.RegisteredUnixMs) / 1000,
			"resources": flat(a.Total), "used_resources": flat(a.Used), "offered_resources": flat(""),
			"reserved_resources": map[string]any{}, "unreserved_resources": flat(a.Total),
			"active": a.Connected, "deactivated": false, "version": s.version, "capabilities": []string{"MULTI_ROLE"},
		})
	}
	var frameworks, completed []any
	for _, f := range st.Frameworks {
		frameworks = append(frameworks, s.v0Framework(f))
	}
	for _, f := range st.CompletedFrameworks {
		completed = append(completed, s.v0Framework(f))
	}
	body := map[string]any{
		"version": s.version, "build_date": "", "build_time": 0.0, "build_user": "",
		"start_time": float64(s.started.UnixNano()) / 1e9, "elected_time": float64(s.started.UnixNano()) / 1e9,
		"id": st.MasterID, "pid": mi.GetPid(), "hostname": mi.GetHostname(), "leader": mi.GetPid(),
		"leader_info":      map[string]any{"id": st.MasterID, "pid": mi.GetPid(), "port": mi.GetPort(), "hostname": mi.GetHostname()},
		"capabilities":     []string{"AGENT_UPDATE"},
		"activated_slaves": active, "deactivated_slaves": inactive, "unreachable_slaves": 0,
		"flags": map[string]string{"allocator": st.Allocator.Name}, "slaves": nonNil(slaves),
		"recovered_slaves": []any{}, "frameworks": nonNil(frameworks), "completed_frameworks": nonNil(completed),
		"orphan_tasks": []any{}, "unregistered_frameworks": []any{},
	}
	b, err := json.Marshal(body)
	if err != nil {
		textError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if cb := r.URL.Query().Get("jsonp"); cb != "" {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = fmt.Fprintf(w, "%s(%s);", cb, b)
		return
	}
	writeJSONBody(w, b)
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func attributeMap(in map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = f
		} else {
			out[k] = v
		}
	}
	return out
}

func (s *Server) v0Framework(f master.FrameworkView) map[string]any {
	task := func(t master.TaskView) map[string]any {
		return map[string]any{"id": t.ID, "name": t.Name, "framework_id": f.ID, "executor_id": t.ExecutorID, "slave_id": t.AgentID,
			"state": mesosState(t.State).String(), "resources": flat(t.Resources), "role": t.Role,
			"statuses": []any{map[string]any{"state": mesosState(t.State).String(), "timestamp": float64(t.UpdatedUnixMs) / 1000}}}
	}
	var tasks, completed []any
	for _, t := range f.Tasks {
		tasks = append(tasks, task(t))
	}
	for _, t := range f.Completed {
		completed = append(completed, task(t))
	}
	out := map[string]any{
		"id": f.ID, "name": f.Name, "used_resources": flat(f.Allocated), "offered_resources": flat(""),
		"capabilities": nonNilStrings(f.Capabilities), "hostname": f.Hostname, "webui_url": "", "active": f.Connected,
		"connected": f.Connected, "recovered": false, "user": f.User, "failover_timeout": f.FailoverTimeoutSeconds,
		"checkpoint": f.Checkpoint, "registered_time": float64(f.RegisteredAt.UnixNano()) / 1e9, "unregistered_time": unregistered(f),
		"resources": flat(f.Allocated), "tasks": nonNil(tasks), "unreachable_tasks": []any{},
		"completed_tasks": nonNil(completed), "offers": []any{}, "executors": v0Executors(f),
	}
	if multiRole(f.Capabilities) {
		out["roles"] = f.Roles
	} else if len(f.Roles) > 0 {
		out["role"] = f.Roles[0]
	}
	return out
}

// v0Executors is a framework's custom executors as Mesos's master lists
// them in /state: the ExecutorInfo's JSON (executor_id, name, framework_id,
// command, resources, role, labels, type) and the agent's slave_id.
func v0Executors(f master.FrameworkView) []any {
	out := []any{}
	for _, e := range f.Executors {
		me := executorInfoToMesos(e.Info, f.ID)
		cmd := map[string]any{"shell": me.GetCommand().GetShell(), "value": me.GetCommand().GetValue(),
			"argv": nonNilStrings(me.GetCommand().GetArguments())}
		var uris []any
		for _, u := range me.GetCommand().GetUris() {
			uris = append(uris, map[string]any{"value": u.GetValue(), "executable": u.GetExecutable()})
		}
		cmd["uris"] = nonNil(uris)
		if env := me.GetCommand().GetEnvironment(); env != nil {
			var vars []any
			for _, v := range env.GetVariables() {
				vars = append(vars, map[string]any{"name": v.GetName(), "type": "VALUE", "value": v.GetValue()})
			}
			cmd["environment"] = map[string]any{"variables": nonNil(vars)}
		}
		ex := map[string]any{"executor_id": e.ID, "name": e.Name, "framework_id": f.ID, "command": cmd,
			"resources": flat(e.Resources), "role": e.Role, "type": "CUSTOM", "slave_id": e.AgentID}
		if l := me.GetLabels(); l != nil {
			var labels []any
			for _, kv := range l.GetLabels() {
				labels = append(labels, map[string]any{"key": kv.GetKey(), "value": kv.GetValue()})
			}
			ex["labels"] = labels
		}
		out = append(out, ex)
	}
	return out
}

// getExecutors answers GET_EXECUTORS (and its part of GET_STATE): every
// custom executor with the agent it runs on.
func (s *Server) getExecutors(st master.State) *masterpb.Response_GetExecutors {
	out := &masterpb.Response_GetExecutors{}
	for _, f := range st.Frameworks {
		for _, e := range f.Executors {
			out.Executors = append(out.Executors, &masterpb.Response_GetExecutors_Executor{
				ExecutorInfo: executorInfoToMesos(e.Info, f.ID), AgentId: &mesospb.AgentID{Value: proto.String(e.AgentID)}})
		}
	}
	return out
}

func unregistered(f master.FrameworkView) float64 {
	if f.RemovedAt == nil {
		return 0
	}
	return float64(f.RemovedAt.UnixNano()) / 1e9
}

func nonNilStrings(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func multiRole(capabilities []string) bool {
	for _, c := range capabilities {
		if c == "MULTI_ROLE" {
			return true
		}
	}
	return false
}

// serveMetrics is GET /metrics/snapshot: the Mesos keys that map to
// something corral knows, every value a number.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	st := s.m.Snapshot()
	out := map[string]float64{"master/elected": 1, "master/uptime_secs": s.now().Sub(s.started).Seconds()}
	var total, used resources.Resources
	for _, a := range st.Agents {
		if t, err := resources.Parse(a.Total); err == nil {
			total = total.Add(t)
		}
		if u, err := resources.Parse(a.Used); err == nil {
			used = used.Add(u)
		}
		if a.Connected {
			out["master/slaves_active"]++
			out["master/slaves_connected"]++
		} else {
			out["master/slaves_disconnected"]++
		}
	}
	out["master/slaves_inactive"] += 0
	out["master/slaves_disconnected"] += 0
	out["master/slaves_unreachable"] = 0
	for _, n := range []string{"cpus", "mem", "disk", "gpus"} {
		t, u := total.Scalar(n), used.Scalar(n)
		out["master/"+n+"_total"], out["master/"+n+"_used"] = t, u
		out["master/"+n+"_percent"] = 0
		if t > 0 {
			out["master/"+n+"_percent"] = u / t
		}
	}
	live := map[string]float64{}
	for _, f := range st.Frameworks {
		if f.Connected {
			out["master/frameworks_active"]++
			out["master/frameworks_connected"]++
		} else {
			out["master/frameworks_disconnected"]++
		}
		out["master/outstanding_offers"] += float64(f.Offers)
		for _, t := range f.Tasks {
			live[t.State]++
		}
	}
	for _, k := range []string{"master/frameworks_active", "master/frameworks_connected", "master/frameworks_disconnected",
		"master/frameworks_inactive", "master/outstanding_offers"} {
		out[k] += 0
	}
	for _, n := range []string{"staging", "starting", "running", "killing"} {
		out["master/tasks_"+n] = live["TASK_"+strings.ToUpper(n)]
	}
	out["master/tasks_unreachable"] = 0
	// Terminal states are counters of transitions, as in Mesos.
	counters := s.counters()
	for _, n := range []string{"finished", "failed", "killed", "lost", "error"} {
		out["master/tasks_"+n] = counters["corral_master_task_state_transitions_total/TASK_"+strings.ToUpper(n)]
	}
	out["master/messages_decline_offers"] = counters["corral_master_offers_declined_total"]
	out["master/messages_launch_tasks"] = counters["corral_master_tasks_launched_total"]
	out["master/valid_status_update_acknowledgements"] = counters["corral_master_acknowledgements_total"]
	out["master/messages_status_update"] = counters["corral_master_status_updates_total"]
	for k, v := range systemMetrics() {
		out[k] = v
	}
	// Every value is a double, written as Mesos writes doubles ("1.0").
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		b = appendDouble(b, out[k])
	}
	writeJSONBody(w, append(b, '}'))
}

// counters reads the master's Prometheus counters: name, or name/label
// value for single-label vectors.
func (s *Server) counters() map[string]float64 {
	out := map[string]float64{}
	mfs, err := s.m.Registry().Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			if len(mt.GetLabel()) == 1 {
				key += "/" + mt.GetLabel()[0].GetValue()
			}
			out[key] += mt.GetCounter().GetValue()
		}
	}
	return out
}

// systemMetrics are Mesos's system/* keys, read from /proc where present.
func systemMetrics() map[string]float64 {
	out := map[string]float64{"system/cpus_total": float64(runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i, k := range []string{"system/load_1min", "system/load_5min", "system/load_15min"} {
			if i < len(f) {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					out[k] = v
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				continue
			}
			switch f[0] {
			case "MemTotal:":
				out["system/mem_total_bytes"] = v * 1024
			case "MemAvailable:":
				out["system/mem_free_bytes"] = v * 1024
			}
		}
	}
	return out
}

// serveOperator is POST /api/v1, the v1 operator API: the read calls a
// monitoring script needs. Checks in Mesos's order: 405, Content-Type,
// body, validation, Accept (for every call), dispatch.
func (s *Server) serveOperator(w http.ResponseWriter, r *http.Request) {
	call := &masterpb.Call{}
	if !readCall(w, r, call) {
		return
	}
	if call.Type == nil {
		textError(w, http.StatusBadRequest, "Failed to validate master::Call: Expecting 'type' to be present")
		return
	}
	accept, ok := responseType(r)
	if !ok {
		textError(w, http.StatusNotAcceptable, "Expecting 'Accept' to allow '"+typeProtobuf+"' or '"+typeJSON+"'")
		return
	}
	// Reads are filtered by the view_* ACLs of the caller's principal.
	principal := authn.Principal(r.Context())
	resp := &masterpb.Response{}
	switch call.GetType() {
	case masterpb.Call_GET_HEALTH:
		resp.Type = masterpb.Response_GET_HEALTH.Enum()
		resp.GetHealth = &masterpb.Response_GetHealth{Healthy: proto.Bool(true)}
	case masterpb.Call_GET_VERSION:
		resp.Type = masterpb.Response_GET_VERSION.Enum()
		resp.GetVersion = &masterpb.Response_GetVersion{VersionInfo: s.versionInfo()}
	case masterpb.Call_GET_STATE:
		st := s.m.SnapshotFor(principal)
		resp.Type = masterpb.Response_GET_STATE.Enum()
		resp.GetState = &masterpb.Response_GetState{GetTasks: s.getTasks(st), GetExecutors: s.getExecutors(st),
			GetFrameworks: s.getFrameworks(st), GetAgents: s.getAgents(st)}
	case masterpb.Call_GET_AGENTS:
		resp.Type = masterpb.Response_GET_AGENTS.Enum()
		resp.GetAgents = s.getAgents(s.m.SnapshotFor(principal))
	case masterpb.Call_GET_FRAMEWORKS:
		resp.Type = masterpb.Response_GET_FRAMEWORKS.Enum()
		resp.GetFrameworks = s.getFrameworks(s.m.SnapshotFor(principal))
	case masterpb.Call_GET_EXECUTORS:
		resp.Type = masterpb.Response_GET_EXECUTORS.Enum()
		resp.GetExecutors = s.getExecutors(s.m.SnapshotFor(principal))
	case masterpb.Call_GET_TASKS:
		resp.Type = masterpb.Response_GET_TASKS.Enum()
		resp.GetTasks = s.getTasks(s.m.SnapshotFor(principal))
	case masterpb.Call_UNKNOWN:
		textError(w, http.StatusNotImplemented, "Received an unexpected 'UNKNOWN' call")
		return
	default:
		textError(w, http.StatusNotImplemented, fmt.Sprintf(
			"%s is not served by corral's Mesos operator API (served: GET_HEALTH, GET_VERSION, GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS); corral's own operator API is under GET /api/v1/", call.GetType()))
		return
	}
	b, err := encode(accept, resp)
	if err != nil {
		textError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", accept)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func timeInfo(unixMs int64) *mesospb.TimeInfo {
	if unixMs == 0 {
		return nil
	}
	return &mesospb.TimeInfo{Nanoseconds: proto.Int64(unixMs * 1e6)}
}

func (s *Server) getAgents(st master.State) *masterpb.Response_GetAgents {
	out := &masterpb.Response_GetAgents{}
	for _, a := range st.Agents {
		host, port := hostPort(a.URL)
		info := &mesospb.AgentInfo{Hostname: proto.String(a.Hostname), Port: proto.Int32(int32(port)),
			Resources: v1Resources(a.Total), Attributes: attributes(a.Attributes), Id: &mesospb.AgentID{Value: proto.String(a.ID)}}
		out.Agents = append(out.Agents, &masterpb.Response_GetAgents_Agent{
			AgentInfo: info, Active: proto.Bool(a.Connected), Deactivated: proto.Bool(false), Version: proto.String(s.version),
			Pid:            proto.String("slave(1)@" + net.JoinHostPort(host, strconv.Itoa(port))),
			RegisteredTime: timeInfo(a.RegisteredUnixMs), TotalResources: v1Resources(a.Total),
			AllocatedResources: v1Resources(a.Used)})
	}
	return out
}

func (s *Server) getFrameworks(st master.State) *masterpb.Response_GetFrameworks {
	out := &masterpb.Response_GetFrameworks{}
	out.Frameworks = frameworksV1(st.Frameworks)
	out.CompletedFrameworks = frameworksV1(st.CompletedFrameworks)
	return out
}

func frameworksV1(in []master.FrameworkView) []*masterpb.Response_GetFrameworks_Framework {
	var out []*masterpb.Response_GetFrameworks_Framework
	for _, f := range in {
		info := &mesospb.FrameworkInfo{Id: &mesospb.FrameworkID{Value: proto.String(f.ID)}, Name: proto.String(f.Name),
			User: proto.String(f.User), FailoverTimeout: proto.Float64(f.FailoverTimeoutSeconds), Checkpoint: proto.Bool(f.Checkpoint)}
		if f.Hostname != "" {
			info.Hostname = proto.String(f.Hostname)
		}
		if f.Principal != "" {
			info.Principal = proto.String(f.Principal)
		}
		for _, c := range f.Capabilities {
			if v, ok := mesospb.FrameworkInfo_Capability_Type_value[c]; ok {
				info.Capabilities = append(info.Capabilities, &mesospb.FrameworkInfo_Capability{Type: mesospb.FrameworkInfo_Capability_Type(v).Enum()})
			}
		}
		if multiRole(f.Capabilities) {
			info.Roles = f.Roles
		} else if len(f.Roles) > 0 {
			info.Role = proto.String(f.Roles[0])
		}
		fw := &masterpb.Response_GetFrameworks_Framework{
			FrameworkInfo: info, Active: proto.Bool(f.Connected), Connected: proto.Bool(f.Connected), Recovered: proto.Bool(false),
			RegisteredTime: timeInfo(f.RegisteredAt.UnixMilli()), AllocatedResources: v1Resources(f.Allocated)}
		if f.RemovedAt != nil {
			fw.UnregisteredTime = timeInfo(f.RemovedAt.UnixMilli())
		}
		out = append(out, fw)
	}
	return out
}

func (s *Server) getTasks(st master.State) *masterpb.Response_GetTasks {
	out := &masterpb.Response_GetTasks{}
	for _, f := range st.Frameworks {
		for i, list := range [][]master.TaskView{f.Tasks, f.Completed} {
			for _, t := range list {
				state := mesosState(t.State)
				mt := &mesospb.Task{Name: proto.String(t.Name), TaskId: &mesospb.TaskID{Value: proto.String(t.ID)},
					FrameworkId: &mesospb.FrameworkID{Value: proto.String(f.ID)}, AgentId: &mesospb.AgentID{Value: proto.String(t.AgentID)},
					ExecutorId: &mesospb.ExecutorID{Value: proto.String(cmp.Or(t.ExecutorID, t.ID))},
					State:      state.Enum(), Resources: v1Resources(t.Resources)}
				ts := &mesospb.TaskStatus{TaskId: mt.TaskId, State: state.Enum(), AgentId: mt.AgentId}
				if t.UpdatedUnixMs != 0 {
					ts.Timestamp = proto.Float64(float64(t.UpdatedUnixMs) / 1000)
				}
				if t.Message != "" {
					ts.Message = proto.String(t.Message)
				}
				mt.Statuses = []*mesospb.TaskStatus{ts}
				if i == 0 {
					out.Tasks = append(out.Tasks, mt)
				} else {
					out.CompletedTasks = append(out.CompletedTasks, mt)
				}
			}
		}
	}
	return out
}
