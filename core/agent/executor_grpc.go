package agent

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// executorGRPC is corral's executor API (sdk/executor) for one executor,
// served on that executor's own unix socket: the socket is its identity,
// so calls naming another executor are refused.
type executorGRPC struct {
	a   *Agent
	key execKey
}

func (g *executorGRPC) check(frameworkID, executorID string) error {
	if frameworkID != g.key.framework || executorID != g.key.executor {
		return status.Errorf(codes.PermissionDenied, "this socket belongs to executor %q of framework %q, not %q of %q",
			g.key.executor, g.key.framework, executorID, frameworkID)
	}
	return nil
}

func grpcErr(err error) error {
	var ce *ExecutorCallError
	if !errors.As(err, &ce) {
		return status.Error(codes.Internal, err.Error())
	}
	switch ce.Status {
	case http.StatusForbidden:
		return status.Error(codes.FailedPrecondition, ce.Msg)
	case http.StatusServiceUnavailable:
		return status.Error(codes.Unavailable, ce.Msg)
	}
	return status.Error(codes.InvalidArgument, ce.Msg)
}

func (g *executorGRPC) Subscribe(req *corralpb.ExecutorSubscribeRequest, stream corralpb.Executor_SubscribeServer) error {
	if err := g.check(req.GetFrameworkId(), req.GetExecutorId()); err != nil {
		return err
	}
	sess, err := g.a.ExecutorSubscribe(req.GetFrameworkId(), req.GetExecutorId(), req.GetUnacknowledgedTasks(), req.GetUnacknowledgedUpdates())
	if err != nil {
		return grpcErr(err)
	}
	for {
		select {
		case ev := <-sess.Events():
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-sess.Done():
			// Drain what was queued before the end (a Shutdown, say).
			for {
				select {
				case ev := <-sess.Events():
					if err := stream.Send(ev); err != nil {
						return err
					}
				default:
					return status.Error(codes.Unavailable, "executor session ended")
				}
			}
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (g *executorGRPC) Update(_ context.Context, req *corralpb.ExecutorUpdateRequest) (*corralpb.ExecutorCallResponse, error) {
	if err := g.check(req.GetFrameworkId(), req.GetExecutorId()); err != nil {
		return nil, err
	}
	if err := g.a.ExecutorUpdate(req.GetFrameworkId(), req.GetExecutorId(), req.GetStatus()); err != nil {
		return nil, grpcErr(err)
	}
	return &corralpb.ExecutorCallResponse{}, nil
}

func (g *executorGRPC) Message(_ context.Context, req *corralpb.ExecutorMessageRequest) (*corralpb.ExecutorCallResponse, error) {
	if err := g.check(req.GetFrameworkId(), req.GetExecutorId()); err != nil {
		return nil, err
	}
	if err := g.a.ExecutorMessage(req.GetFrameworkId(), req.GetExecutorId(), req.GetData()); err != nil {
		return nil, grpcErr(err)
	}
	return &corralpb.ExecutorCallResponse{}, nil
}
