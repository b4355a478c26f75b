// Package mesos serves the Apache Mesos v1 HTTP APIs over corral's master:
// the scheduler API (POST /api/v1/scheduler) and the operator endpoints
// monitoring scripts scrape (/state, /metrics/snapshot, /version, POST
// /api/v1). It is a thin adapter: it translates Mesos's wire types and
// status codes onto the master's domain methods and typed errors, and
// keeps nothing but the open streams.
package mesos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
	"github.com/corral-project/corral/core/api/mesos/wire"
	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// streamIDHeader is the header that ties calls to a subscription.
const streamIDHeader = "Mesos-Stream-Id"

// Server is the Mesos adapter over one master.
type Server struct {
	m       *master.Master
	log     hclog.Logger
	now     func() time.Time
	version string
	started time.Time

	mu      sync.Mutex
	streams map[string]*stream // by framework ID: the current stream
}

// Options configure a Server.
type Options struct {
	Logger hclog.Logger
	// Version is corral's version, reported in MasterInfo and /version.
	Version string
	Now     func() time.Time
}

// New returns the adapter for m.
func New(m *master.Master, o Options) *Server {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	return &Server{m: m, log: o.Logger, now: o.Now, version: o.Version, started: o.Now(), streams: map[string]*stream{}}
}

// Register adds the Mesos routes to mux. Mesos serves every endpoint both
// at the root and under its process name (/master/...).
func (s *Server) Register(mux *http.ServeMux) {
	for _, p := range []string{"", "/master"} {
		mux.HandleFunc(p+"/api/v1/scheduler", s.serveScheduler)
		mux.HandleFunc(p+"/api/v1", s.serveOperator)
		mux.HandleFunc(p+"/state", s.serveState)
	}
	mux.HandleFunc("/master/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/metrics/snapshot", s.serveMetrics)
	mux.HandleFunc("/version", s.serveVersion)
}

// stream is one open SUBSCRIBE response.
type stream struct {
	id          string
	frameworkID string
	contentType string
	local       net.Addr // the master address the framework connected to

	mu    sync.Mutex
	caps  caps
	extra []*schedpb.Event // events the adapter generates itself
	wake  chan struct{}
}

func (st *stream) capabilities() caps {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.caps
}

// inject queues an event the adapter generated (a TASK_ERROR for a refused
// launch, a TASK_LOST for a kill of an unknown task). The queue is
// unbounded so that a call never waits on the stream writer.
func (st *stream) inject(ev *schedpb.Event) {
	st.mu.Lock()
	st.extra = append(st.extra, ev)
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *stream) takeExtra() []*schedpb.Event {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.extra
	st.extra = nil
	return out
}

func (s *Server) streamOf(frameworkID string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[frameworkID]
}

// callError is an HTTP answer to a refused call.
type callError struct {
	code int
	msg  string
}

func (e *callError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &callError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// serveScheduler is POST /api/v1/scheduler, checked in Mesos's order.
func (s *Server) serveScheduler(w http.ResponseWriter, r *http.Request) {
	call := &schedpb.Call{}
	if !readCall(w, r, call) {
		return
	}
	if err := validateCall(call); err != nil {
		textError(w, http.StatusBadRequest, "Failed to validate scheduler::Call: "+err.Error())
		return
	}
	if call.GetType() == schedpb.Call_SUBSCRIBE {
		accept, ok := responseType(r)
		if !ok {
			textError(w, http.StatusNotAcceptable, "Expecting 'Accept' to allow '"+typeProtobuf+"' or '"+typeJSON+"'")
			return
		}
		if r.Header.Get(streamIDHeader) != "" {
			textError(w, http.StatusBadRequest, "Subscribe calls should not include the '"+streamIDHeader+"' header")
			return
		}
		s.subscribe(w, r, call, accept)
		return
	}
	h := &corralpb.CallHeader{FrameworkId: call.GetFrameworkId().GetValue(), StreamId: r.Header.Get(streamIDHeader)}
	if err := s.m.CheckCaller(call.GetType().String(), h); err != nil {
		ce := s.callerError(err, h)
		textError(w, ce.code, ce.msg)
		return
	}
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(r.Context()), h.FrameworkId); err != nil {
		textError(w, http.StatusForbidden, err.Error())
		return
	}
	status, err := s.dispatch(h, call)
	var ce *callError
	switch {
	case errors.As(err, &ce):
		textError(w, ce.code, ce.msg)
	case err != nil:
		textError(w, http.StatusInternalServerError, err.Error())
	default:
		// 202 and 200 carry no body and no Content-Type, as in Mesos.
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
	}
}

// callerError maps the master's caller checks onto Mesos's answers.
func (s *Server) callerError(err error, h *corralpb.CallHeader) *callError {
	switch master.ErrorCode(err) {
	case master.CodeUnknownFramework:
		return &callError{http.StatusBadRequest, "Framework cannot be found"}
	case master.CodeNotSubscribed:
		return &callError{http.StatusForbidden, "Framework is not subscribed"}
	case master.CodeRateLimited:
		return &callError{http.StatusTooManyRequests, err.Error()}
	case master.CodeStaleStream:
		if h.StreamId == "" {
			return &callError{http.StatusBadRequest, "All non-subscribe calls should include the '" + streamIDHeader + "' header"}
		}
		return &callError{http.StatusBadRequest, fmt.Sprintf(
			"The stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s",
			h.StreamId, h.FrameworkId)}
	}
	return &callError{http.StatusBadRequest, err.Error()}
}

// validateCall is Mesos's structural validation (400 when it fails).
func validateCall(c *schedpb.Call) error {
	if c.Type == nil {
		return errors.New("Expecting 'type' to be present")
	}
	if c.GetType() == schedpb.Call_SUBSCRIBE {
		if c.Subscribe == nil {
			return errors.New("Expecting 'subscribe' to be present")
		}
		if c.GetFrameworkId().GetValue() != c.Subscribe.GetFrameworkInfo().GetId().GetValue() {
			return errors.New("'framework_id' differs from 'subscribe.framework_info.id'")
		}
		return nil
	}
	if c.FrameworkId == nil {
		return errors.New("Expecting 'framework_id' to be present")
	}
	missing := func(name string, present bool) error {
		if !present {
			return fmt.Errorf("Expecting '%s' to be present", name)
		}
		return nil
	}
	switch c.GetType() {
	case schedpb.Call_ACCEPT:
		return missing("accept", c.Accept != nil)
	case schedpb.Call_DECLINE:
		return missing("decline", c.Decline != nil)
	case schedpb.Call_ACCEPT_INVERSE_OFFERS:
		return missing("accept_inverse_offers", c.AcceptInverseOffers != nil)
	case schedpb.Call_DECLINE_INVERSE_OFFERS:
		return missing("decline_inverse_offers", c.DeclineInverseOffers != nil)
	case schedpb.Call_KILL:
		return missing("kill", c.Kill != nil)
	case schedpb.Call_SHUTDOWN:
		return missing("shutdown", c.Shutdown != nil)
	case schedpb.Call_ACKNOWLEDGE:
		if c.Acknowledge == nil {
			return missing("acknowledge", false)
		}
		return validUUID(c.Acknowledge.GetUuid())
	case schedpb.Call_ACKNOWLEDGE_OPERATION_STATUS:
		if c.AcknowledgeOperationStatus == nil {
			return missing("acknowledge_operation_status", false)
		}
		if c.AcknowledgeOperationStatus.AgentId == nil {
			return missing("acknowledge_operation_status.agent_id", false)
		}
		return validUUID(c.AcknowledgeOperationStatus.GetUuid())
	case schedpb.Call_RECONCILE:
		return missing("reconcile", c.Reconcile != nil)
	case schedpb.Call_RECONCILE_OPERATIONS:
		return missing("reconcile_operations", c.ReconcileOperations != nil)
	case schedpb.Call_MESSAGE:
		return missing("message", c.Message != nil)
	case schedpb.Call_REQUEST:
		return missing("request", c.Request != nil)
	case schedpb.Call_UPDATE_FRAMEWORK:
		if c.UpdateFramework == nil {
			return missing("update_framework", false)
		}
		if c.GetFrameworkId().GetValue() != c.UpdateFramework.GetFrameworkInfo().GetId().GetValue() {
			return errors.New("'framework_id' differs from 'update_framework.framework_info.id'")
		}
	}
	return nil
}

// validUUID accepts what Mesos' UUID::fromBytes accepts: 16 bytes with a
// known version.
func validUUID(b []byte) error {
	if len(b) != 16 || b[6]>>4 < 1 || b[6]>>4 > 5 {
		return errors.New("Not a valid UUID")
	}
	return nil
}

// subscribe answers SUBSCRIBE with the event stream. Problems with the
// FrameworkInfo itself are refused the way Mesos refuses them: 200, one
// ERROR event, end of stream.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, call *schedpb.Call, ctype string) {
	sc := call.Subscribe
	out, ok := wire.NewStream(w, ctype)
	if !ok {
		textError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	fi, err := frameworkInfo(sc.FrameworkInfo)
	if err == nil {
		err = checkOfferConstraints(sc.OfferConstraints)
	}
	if err == nil {
		if err := s.m.AuthorizeSubscribe(authn.Principal(r.Context()), fi); err != nil {
			s.log.Info("mesos subscription refused", "framework_name", fi.GetName(), "error", err)
			textError(w, http.StatusForbidden, err.Error())
			return
		}
	}
	var sub *master.Subscription
	if err == nil {
		sub, err = s.m.Subscribe(&corralpb.SubscribeRequest{Framework: fi, SuppressedRoles: sc.SuppressedRoles})
	}
	if master.ErrorCode(err) == master.CodeRateLimited { // a principal at its subscription limit
		textError(w, http.StatusTooManyRequests, err.Error())
		return
	}
	w.Header().Set("Content-Type", ctype)
	if err != nil {
		s.log.Info("mesos subscription refused", "framework_name", sc.GetFrameworkInfo().GetName(), "error", err)
		w.WriteHeader(http.StatusOK)
		out.Flush() // a stream, chunked, even for one record
		_ = out.Write(&schedpb.Event{Type: schedpb.Event_ERROR.Enum(), Error: &schedpb.Event_Error{Message: proto.String(err.Error())}})
		return
	}
	defer sub.Close()
	st := &stream{id: sub.StreamID(), frameworkID: sub.FrameworkID(), contentType: ctype,
		local: localAddr(r), caps: capsOf(sc.FrameworkInfo), wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.streams[st.frameworkID] = st
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.streams[st.frameworkID] == st {
			delete(s.streams, st.frameworkID)
		}
		s.mu.Unlock()
	}()
	log := s.log.With("framework_id", st.frameworkID)
	log.Info("mesos framework subscribed", "stream", st.id, "content_type", ctype)

	w.Header().Set(streamIDHeader, st.id)
	w.WriteHeader(http.StatusOK)
	out.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	events := make(chan *corralpb.Event)
	go func() {
		defer close(events)
		for {
			ev, ok := sub.Next(ctx)
			if !ok {
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	write := func(ev *schedpb.Event) bool {
		return writeEvent(log, out, ev, ev.GetType().String())
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			for _, out := range s.eventToMesos(st, ev) {
				if !write(out) {
					return
				}
			}
		case <-st.wake:
			for _, out := range st.takeExtra() {
				if !write(out) {
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

func checkOfferConstraints(oc *schedpb.OfferConstraints) error {
	for role, rc := range oc.GetRoleConstraints() {
		if len(rc.GetGroups()) > 0 {
			return fmt.Errorf("offer_constraints for role %q: attribute constraints are not supported by corral", role)
		}
	}
	return nil
}

// eventToMesos translates one master event for a stream.
func (s *Server) eventToMesos(st *stream, ev *corralpb.Event) []*schedpb.Event {
	c := st.capabilities()
	switch e := ev.Event.(type) {
	case *corralpb.Event_Subscribed_:
		sub := &schedpb.Event{Type: schedpb.Event_SUBSCRIBED.Enum(), Subscribed: &schedpb.Event_Subscribed{
			FrameworkId:              &mesospb.FrameworkID{Value: proto.String(e.Subscribed.FrameworkId)},
			HeartbeatIntervalSeconds: proto.Float64(e.Subscribed.HeartbeatIntervalSeconds),
			MasterInfo:               s.masterInfo(st.local),
		}}
		// Mesos' heartbeater beats once right after SUBSCRIBED.
		return []*schedpb.Event{sub, {Type: schedpb.Event_HEARTBEAT.Enum()}}
	case *corralpb.Event_Offers_:
		byAgent := s.m.TaskIDsByAgent(st.frameworkID)
		out := &schedpb.Event_Offers{}
		for _, o := range e.Offers.Offers {
			out.Offers = append(out.Offers, offerToMesos(o, byAgent[o.AgentId], c))
		}
		return []*schedpb.Event{{Type: schedpb.Event_OFFERS.Enum(), Offers: out}}
	case *corralpb.Event_Rescind_:
		return []*schedpb.Event{{Type: schedpb.Event_RESCIND.Enum(), Rescind: &schedpb.Event_Rescind{
			OfferId: &mesospb.OfferID{Value: proto.String(e.Rescind.OfferId)}}}}
	case *corralpb.Event_Update_:
		if e.Update.Status.GetState() == corralpb.TaskState_TASK_KILLING && !c.killingTask {
			// Only frameworks with TASK_KILLING_STATE see TASK_KILLING. An
			// update with a uuid must still be acknowledged, so it is
			// passed on as the state the framework knows (running).
			if len(e.Update.Status.Uuid) == 0 {
				return nil
			}
			stt := statusToMesos(e.Update.Status)
			stt.State = mesospb.TaskState_TASK_RUNNING.Enum()
			return []*schedpb.Event{{Type: schedpb.Event_UPDATE.Enum(), Update: &schedpb.Event_Update{Status: stt}}}
		}
		return []*schedpb.Event{{Type: schedpb.Event_UPDATE.Enum(), Update: &schedpb.Event_Update{Status: statusToMesos(e.Update.Status)}}}
	case *corralpb.Event_Message_:
		eid := e.Message.ExecutorId
		if eid == "" {
			eid = e.Message.TaskId
		}
		return []*schedpb.Event{{Type: schedpb.Event_MESSAGE.Enum(), Message: &schedpb.Event_Message{
			AgentId:    &mesospb.AgentID{Value: proto.String(e.Message.AgentId)},
			ExecutorId: &mesospb.ExecutorID{Value: proto.String(eid)},
			Data:       append([]byte{}, e.Message.Data...)}}}
	case *corralpb.Event_Failure_:
		f := &schedpb.Event_Failure{}
		if e.Failure.AgentId != "" {
			f.AgentId = &mesospb.AgentID{Value: proto.String(e.Failure.AgentId)}
		}
		if e.Failure.ExecutorId != "" {
			// An executor exited: its ID and wait status (-1 if unknown).
			f.ExecutorId = &mesospb.ExecutorID{Value: proto.String(e.Failure.ExecutorId)}
			f.Status = proto.Int32(-1)
			if e.Failure.Status != nil {
				f.Status = proto.Int32(e.Failure.GetStatus())
			}
		}
		return []*schedpb.Event{{Type: schedpb.Event_FAILURE.Enum(), Failure: f}}
	case *corralpb.Event_Error_:
		return []*schedpb.Event{{Type: schedpb.Event_ERROR.Enum(), Error: &schedpb.Event_Error{Message: proto.String(e.Error.Message)}}}
	case *corralpb.Event_Heartbeat_:
		return []*schedpb.Event{{Type: schedpb.Event_HEARTBEAT.Enum()}}
	case *corralpb.Event_InverseOffers_:
		out := &schedpb.Event_InverseOffers{}
		for _, io := range e.InverseOffers.InverseOffers {
			out.InverseOffers = append(out.InverseOffers, inverseOfferToMesos(io, c, s.now()))
		}
		return []*schedpb.Event{{Type: schedpb.Event_INVERSE_OFFERS.Enum(), InverseOffers: out}}
	}
	return nil
}

// inverseOfferToMesos expresses a corral revocation as Mesos expresses
// maintenance: the agent's resources become unavailable at the deadline.
func inverseOfferToMesos(io *corralpb.InverseOffer, c caps, now time.Time) *mesospb.InverseOffer {
	start := time.UnixMilli(io.DeadlineUnixMs)
	if io.DeadlineUnixMs == 0 {
		start = now.Add(time.Duration(io.GraceSeconds * float64(time.Second)))
	}
	return &mesospb.InverseOffer{
		Id:          &mesospb.OfferID{Value: proto.String(io.Id)},
		FrameworkId: &mesospb.FrameworkID{Value: proto.String(io.FrameworkId)},
		AgentId:     &mesospb.AgentID{Value: proto.String(io.AgentId)},
		Unavailability: &mesospb.Unavailability{
			Start: &mesospb.TimeInfo{Nanoseconds: proto.Int64(start.UnixNano())},
		},
		Resources: resourcesToMesos(io.Resources, "", c),
	}
}

// masterInfo describes this master; addr is the address the request came
// in on, when known.
func (s *Server) masterInfo(addr net.Addr) *mesospb.MasterInfo {
	mi := &mesospb.MasterInfo{Id: proto.String(s.m.ID()), Ip: proto.Uint32(0), Port: proto.Uint32(0),
		Version: proto.String(s.version)}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		host := tcp.IP.String()
		mi.Port = proto.Uint32(uint32(tcp.Port))
		if v4 := tcp.IP.To4(); v4 != nil {
			// Mesos packs the IPv4 address in network byte order.
			mi.Ip = proto.Uint32(uint32(v4[0]) | uint32(v4[1])<<8 | uint32(v4[2])<<16 | uint32(v4[3])<<24)
		}
		mi.Hostname = proto.String(host)
		mi.Pid = proto.String("master@" + net.JoinHostPort(host, strconv.Itoa(tcp.Port)))
		mi.Address = &mesospb.Address{Hostname: proto.String(host), Ip: proto.String(host), Port: proto.Int32(int32(tcp.Port))}
	}
	return mi
}
