package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	executorpb "github.com/corral-project/corral/pluginapi/executor/proto"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// server adapts an Executor to the generated gRPC service.
type server struct {
	executorpb.UnimplementedExecutorServer
	impl   Executor
	broker *plugin.GRPCBroker

	// The host serves one ContainerService per connection: dial it once
	// and share it among the Launches in flight.
	mu    sync.Mutex
	conns map[uint32]*grpc.ClientConn
}

func (s *server) containers(id uint32) (executorpb.ContainerServiceClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if conn, ok := s.conns[id]; ok {
		return executorpb.NewContainerServiceClient(conn), nil
	}
	conn, err := s.broker.Dial(id)
	if err != nil {
		return nil, err
	}
	if s.conns == nil {
		s.conns = map[uint32]*grpc.ClientConn{}
	}
	s.conns[id] = conn
	return executorpb.NewContainerServiceClient(conn), nil
}

// Launch hands the plugin the ContainerService the host serves on the
// broker: the container is prepared and the first process isolated before
// Launch returns.
func (s *server) Launch(ctx context.Context, req *executorpb.LaunchRequest) (*executorpb.LaunchResponse, error) {
	id := req.GetContainerServiceId()
	if id == 0 {
		return nil, status.Error(codes.InvalidArgument, "launch: no container service id")
	}
	if req.GetTaskId() == "" {
		return nil, status.Error(codes.InvalidArgument, "launch: no task id")
	}
	rpc, err := s.containers(id)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "launch: dial container service %d: %v", id, err)
	}
	cc := &containerClient{rpc: rpc}
	if req.Prepared != nil {
		cc.preparedID, cc.prepared = req.GetContainerId(), isolator.LaunchSpecFromProto(req.GetPrepared())
	}
	resp, err := s.impl.Launch(ctx, launchRequestFromProto(req), cc)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, status.Error(codes.Internal, "launch: executor returned neither a response nor an error")
	}
	return &executorpb.LaunchResponse{Pid: int32(resp.Pid), StartTicks: resp.StartTicks}, nil
}

// Recover calls the plugin's Recoverer, if it has one.
func (s *server) Recover(ctx context.Context, req *executorpb.RecoverRequest) (*executorpb.RecoverResponse, error) {
	r, ok := s.impl.(Recoverer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "recover: this executor cannot take over tasks")
	}
	resp, err := r.Recover(ctx, &RecoverRequest{ContainerID: req.GetContainerId(), TaskID: req.GetTaskId(),
		SandboxDir: req.GetSandboxDir(), Pid: int(req.GetPid())})
	if errors.Is(err, ErrNoTask) {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return nil, err
	}
	if resp == nil {
		resp = &RecoverResponse{}
	}
	return &executorpb.RecoverResponse{Pid: int32(resp.Pid), StartTicks: resp.StartTicks}, nil
}

func (s *server) Forget(ctx context.Context, req *executorpb.ForgetRequest) (*executorpb.ForgetResponse, error) {
	if err := s.impl.Forget(ctx, req.GetTaskId()); err != nil {
		return nil, err
	}
	return &executorpb.ForgetResponse{}, nil
}

func (s *server) Wait(ctx context.Context, req *executorpb.WaitRequest) (*executorpb.WaitResponse, error) {
	res, err := s.impl.Wait(ctx, req.GetTaskId())
	if err != nil {
		return nil, err
	}
	return &executorpb.WaitResponse{ExitCode: int32(res.ExitCode), Signal: int32(res.Signal), Error: res.Err}, nil
}

func (s *server) Signal(ctx context.Context, req *executorpb.SignalRequest) (*executorpb.SignalResponse, error) {
	sig := req.GetSignal()
	if sig <= 0 || sig > 64 {
		return nil, status.Errorf(codes.InvalidArgument, "signal: %d is not a signal number", sig)
	}
	if err := s.impl.Signal(ctx, req.GetTaskId(), syscall.Signal(sig)); err != nil {
		return nil, err
	}
	return &executorpb.SignalResponse{}, nil
}

func (s *server) Shutdown(ctx context.Context, req *executorpb.ShutdownRequest) (*executorpb.ShutdownResponse, error) {
	if err := s.impl.Shutdown(ctx, req.GetTaskId(), time.Duration(req.GetGraceMs())*time.Millisecond); err != nil {
		return nil, err
	}
	return &executorpb.ShutdownResponse{}, nil
}

func (s *server) Stats(ctx context.Context, req *executorpb.StatsRequest) (*executorpb.StatsResponse, error) {
	st, err := s.impl.Stats(ctx, req.GetTaskId())
	if err != nil {
		return nil, err
	}
	return statsToProto(st), nil
}

func (s *server) Version(ctx context.Context, _ *executorpb.VersionRequest) (*executorpb.VersionResponse, error) {
	v, err := s.impl.Version(ctx)
	if err != nil {
		return nil, err
	}
	return &executorpb.VersionResponse{Version: v.Version, Pid: int32(v.Pid), Tasks: int32(v.Tasks)}, nil
}

// containerClient is the ContainerService the plugin sees: calls go back to
// the host over the broker connection, but for the Prepare of the
// launching container when the host sent its spec with the Launch.
type containerClient struct {
	rpc        executorpb.ContainerServiceClient
	preparedID string
	prepared   *isolator.LaunchSpec
}

func (c *containerClient) Prepare(ctx context.Context, containerID string) (*isolator.LaunchSpec, error) {
	if c.prepared != nil && containerID == c.preparedID {
		return c.prepared.Clone(), nil // the plugin may change what it gets
	}
	spec, err := c.rpc.Prepare(ctx, &executorpb.ContainerPrepareRequest{ContainerId: containerID})
	if err != nil {
		return nil, fmt.Errorf("container service prepare %q: %w", containerID, rpcError(ctx, err))
	}
	return isolator.LaunchSpecFromProto(spec), nil
}

func (c *containerClient) Isolate(ctx context.Context, containerID string, pid int) error {
	_, err := c.rpc.Isolate(ctx, &executorpb.ContainerIsolateRequest{ContainerId: containerID, Pid: int32(pid)})
	if err != nil {
		return fmt.Errorf("container service isolate %q: %w", containerID, rpcError(ctx, err))
	}
	return nil
}
