package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	executorpb "github.com/corral-project/corral/pluginapi/executor/proto"
	"github.com/corral-project/corral/pluginapi/isolator"
	isolatorpb "github.com/corral-project/corral/pluginapi/isolator/proto"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// client is an Executor that calls a plugin over gRPC.
type client struct {
	base.Plugin
	rpc    executorpb.ExecutorClient
	broker *plugin.GRPCBroker
}

// NewClient returns an Executor (base service included) served over conn.
// broker is the go-plugin broker of the same connection; Launch serves the
// host's ContainerService on it.
func NewClient(conn *grpc.ClientConn, broker *plugin.GRPCBroker) Executor {
	return &client{Plugin: base.NewClient(conn), rpc: executorpb.NewExecutorClient(conn), broker: broker}
}

func rpcError(ctx context.Context, err error) error { return base.HandleRPCError(ctx, err) }

// Launch serves containers on the broker for the duration of the call and
// passes its ID to the plugin, which dials back to prepare and isolate.
func (c *client) Launch(ctx context.Context, req *LaunchRequest, containers ContainerService) (*LaunchResponse, error) {
	if req == nil || containers == nil {
		return nil, errors.New("executor launch: request and container service are required")
	}
	id := c.broker.NextId()
	stop := &brokeredServer{}
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := base.NewGRPCServer(opts)
		executorpb.RegisterContainerServiceServer(s, &containerServer{impl: containers})
		stop.set(s)
		return s
	})
	defer stop.stop()

	resp, err := c.rpc.Launch(ctx, launchRequestToProto(req, id))
	if err != nil {
		return nil, fmt.Errorf("executor launch %q: %w", req.TaskID, rpcError(ctx, err))
	}
	return &LaunchResponse{Pid: int(resp.GetPid()), StartTicks: resp.GetStartTicks()}, nil
}

func (c *client) Wait(ctx context.Context) (*ExitResult, error) {
	resp, err := c.rpc.Wait(ctx, &executorpb.WaitRequest{})
	if err != nil {
		return nil, fmt.Errorf("executor wait: %w", rpcError(ctx, err))
	}
	return &ExitResult{ExitCode: int(resp.GetExitCode()), Signal: int(resp.GetSignal()), Err: resp.GetError()}, nil
}

func (c *client) Signal(ctx context.Context, sig syscall.Signal) error {
	if _, err := c.rpc.Signal(ctx, &executorpb.SignalRequest{Signal: int32(sig)}); err != nil {
		return fmt.Errorf("executor signal %d: %w", int(sig), rpcError(ctx, err))
	}
	return nil
}

func (c *client) Shutdown(ctx context.Context, grace time.Duration) error {
	if _, err := c.rpc.Shutdown(ctx, &executorpb.ShutdownRequest{GraceMs: grace.Milliseconds()}); err != nil {
		return fmt.Errorf("executor shutdown: %w", rpcError(ctx, err))
	}
	return nil
}

func (c *client) Stats(ctx context.Context) (*Stats, error) {
	resp, err := c.rpc.Stats(ctx, &executorpb.StatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("executor stats: %w", rpcError(ctx, err))
	}
	return statsFromProto(resp), nil
}

// Recover implements Recoverer; a plugin without it answers Unimplemented.
func (c *client) Recover(ctx context.Context, req *RecoverRequest) error {
	_, err := c.rpc.Recover(ctx, &executorpb.RecoverRequest{ContainerId: req.ContainerID, TaskId: req.TaskID,
		SandboxDir: req.SandboxDir, Pid: int32(req.Pid)})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%w: %s", ErrNoTask, status.Convert(err).Message())
	}
	if err != nil {
		return fmt.Errorf("executor recover: %w", rpcError(ctx, err))
	}
	return nil
}

func (c *client) Version(ctx context.Context) (*VersionInfo, error) {
	resp, err := c.rpc.Version(ctx, &executorpb.VersionRequest{})
	if err != nil {
		return nil, fmt.Errorf("executor version: %w", rpcError(ctx, err))
	}
	return &VersionInfo{Version: resp.GetVersion(), Pid: int(resp.GetPid())}, nil
}

// brokeredServer stops the ContainerService server once Launch returns,
// whether AcceptAndServe created it before or after that moment.
type brokeredServer struct {
	mu      sync.Mutex
	s       *grpc.Server
	stopped bool
}

func (b *brokeredServer) set(s *grpc.Server) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s = s
	if b.stopped {
		// Serve on a stopped server returns at once, ending AcceptAndServe.
		s.Stop()
	}
}

func (b *brokeredServer) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if b.s != nil {
		b.s.Stop()
	}
}

// containerServer serves the host's ContainerService to the plugin.
type containerServer struct {
	executorpb.UnimplementedContainerServiceServer
	impl ContainerService
}

func (s *containerServer) Prepare(ctx context.Context, req *executorpb.ContainerPrepareRequest) (*isolatorpb.LaunchSpec, error) {
	spec, err := s.impl.Prepare(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return isolator.LaunchSpecToProto(spec), nil
}

func (s *containerServer) Isolate(ctx context.Context, req *executorpb.ContainerIsolateRequest) (*executorpb.ContainerIsolateResponse, error) {
	if err := s.impl.Isolate(ctx, req.GetContainerId(), int(req.GetPid())); err != nil {
		return nil, err
	}
	return &executorpb.ContainerIsolateResponse{}, nil
}
