package master

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/authn"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// SchedulerAPI is corral's gRPC scheduler service: a thin adapter that
// maps each RPC onto the master's domain method and its typed errors onto
// gRPC status codes. (It lives beside the master, not in core/api, because
// the master's own tests serve it; it holds no bookkeeping.)
type SchedulerAPI struct{ m *Master }

// SchedulerAPI returns the gRPC implementation of the scheduler API.
func (m *Master) SchedulerAPI() corralpb.SchedulerServer { return &SchedulerAPI{m: m} }

// grpcError maps a refused call onto the gRPC code the API always used.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	c := codes.Unknown
	switch ErrorCode(err) {
	case CodeInvalid, CodeInvalidOffers:
		c = codes.InvalidArgument
	case CodeUnknownFramework, CodeNotFound:
		c = codes.NotFound
	case CodeNotSubscribed, CodeStaleStream, CodePrecondition:
		c = codes.FailedPrecondition
	case CodeForbidden, CodeDenied:
		c = codes.PermissionDenied
	case CodeUnavailable:
		c = codes.Unavailable
	case CodeRateLimited:
		c = codes.ResourceExhausted
	}
	return status.Error(c, err.Error())
}

func reply(err error) (*corralpb.CallResponse, error) {
	if err != nil {
		return nil, grpcError(err)
	}
	return &corralpb.CallResponse{}, nil
}

// Subscribe streams the framework's events until the stream breaks.
func (s *SchedulerAPI) Subscribe(req *corralpb.SubscribeRequest, stream corralpb.Scheduler_SubscribeServer) error {
	if err := s.m.AuthorizeSubscribe(authn.Principal(stream.Context()), req.GetFramework()); err != nil {
		return grpcError(err)
	}
	sub, err := s.m.Subscribe(req)
	if err != nil {
		return grpcError(err)
	}
	defer sub.Close()
	ctx := stream.Context()
	var held *corralpb.Event // popped while gathering updates, sent next
	for {
		ev := held
		held = nil
		if ev == nil {
			var ok bool
			if ev, ok = sub.Next(ctx); !ok {
				return nil
			}
		}
		if req.GetBatchUpdates() && ev.GetUpdate() != nil {
			ev, held = batchUpdates(ev, sub.Poll)
		}
		if err := stream.Send(ev); err != nil {
			return nil
		}
	}
}

// maxUpdateBatch bounds the UPDATE events sent as one UPDATES event (a
// few hundred bytes each).
const maxUpdateBatch = 256

// batchUpdates gathers first and the UPDATE events queued right behind it
// (poll never blocks) into one UPDATES event, for a subscriber that asked
// for them: each message sent costs the master a gRPC frame and most
// often a write of its own, and a framework placing thousands of tasks a
// second gets two updates per task. The first other event it pops is
// returned as held, to be sent next; first comes back alone when nothing
// is queued behind it.
func batchUpdates(first *corralpb.Event, poll func() (*corralpb.Event, bool)) (send, held *corralpb.Event) {
	updates := []*corralpb.Event_Update{first.GetUpdate()}
	for len(updates) < maxUpdateBatch {
		ev, ok := poll()
		if !ok {
			break
		}
		u := ev.GetUpdate()
		if u == nil {
			held = ev
			break
		}
		updates = append(updates, u)
	}
	if len(updates) == 1 {
		return first, held
	}
	return &corralpb.Event{Event: &corralpb.Event_Updates_{Updates: &corralpb.Event_Updates{Updates: updates}}}, held
}

func (s *SchedulerAPI) Accept(ctx context.Context, r *corralpb.AcceptRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Accept(r))
}

func (s *SchedulerAPI) Decline(ctx context.Context, r *corralpb.DeclineRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Decline(r))
}

func (s *SchedulerAPI) Revive(ctx context.Context, r *corralpb.ReviveRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Revive(r))
}

func (s *SchedulerAPI) Suppress(ctx context.Context, r *corralpb.SuppressRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Suppress(r))
}

func (s *SchedulerAPI) Kill(ctx context.Context, r *corralpb.KillRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Kill(r))
}

func (s *SchedulerAPI) Acknowledge(ctx context.Context, r *corralpb.AcknowledgeRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Acknowledge(r))
}

// AcknowledgeBatch is authorized once for the header's framework: every
// ack of the batch is a call on behalf of that framework, which is all
// Acknowledge authorizes, so one check decides for each of them.
func (s *SchedulerAPI) AcknowledgeBatch(ctx context.Context, r *corralpb.AcknowledgeBatchRequest) (*corralpb.AcknowledgeBatchResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	errs, err := s.m.AcknowledgeBatch(r)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &corralpb.AcknowledgeBatchResponse{Results: make([]*corralpb.AcknowledgeBatchResponse_Result, len(errs))}
	for i, err := range errs {
		res := &corralpb.AcknowledgeBatchResponse_Result{}
		if err != nil {
			st := status.Convert(grpcError(err))
			res.Code, res.Message = uint32(st.Code()), st.Message()
		}
		resp.Results[i] = res
	}
	return resp, nil
}

func (s *SchedulerAPI) Reconcile(ctx context.Context, r *corralpb.ReconcileRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Reconcile(r))
}

func (s *SchedulerAPI) Message(ctx context.Context, r *corralpb.MessageRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Message(r))
}

func (s *SchedulerAPI) Teardown(ctx context.Context, r *corralpb.TeardownRequest) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Teardown(r))
}

func (s *SchedulerAPI) Request(ctx context.Context, r *corralpb.RequestCall) (*corralpb.CallResponse, error) {
	if err := s.m.AuthorizeFrameworkCall(authn.Principal(ctx), r.GetHeader().GetFrameworkId()); err != nil {
		return nil, grpcError(err)
	}
	return reply(s.m.Request(r))
}
