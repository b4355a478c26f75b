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

	// One ContainerService is served on the broker for the life of the
	// connection, started by the first Launch; each Launch registers its
	// container in it for the duration of the call. (A broker stream per
	// Launch cost a socket, a server and a dial per task.)
	csOnce sync.Once
	csID   uint32
	cs     *containerMux
}

// NewClient returns an Executor (base service included) served over conn.
// broker is the go-plugin broker of the same connection; Launch serves the
// host's ContainerService on it.
func NewClient(conn *grpc.ClientConn, broker *plugin.GRPCBroker) Executor {
	return &client{Plugin: base.NewClient(conn), rpc: executorpb.NewExecutorClient(conn), broker: broker,
		cs: &containerMux{byID: map[string]ContainerService{}}}
}

func rpcError(ctx context.Context, err error) error { return base.HandleRPCError(ctx, err) }

// containerService starts the connection's ContainerService once.
func (c *client) containerService() uint32 {
	c.csOnce.Do(func() {
		c.csID = c.broker.NextId()
		go c.broker.AcceptAndServe(c.csID, func(opts []grpc.ServerOption) *grpc.Server {
			s := base.NewGRPCServer(opts)
			executorpb.RegisterContainerServiceServer(s, &containerServer{impl: c.cs})
			return s
		})
	})
	return c.csID
}

// Launch prepares the container first and sends its launch spec with the
// request, so that the plugin's Prepare is answered without a call back
// (one broker round trip per task fewer). It also registers containers
// under the request's container ID with the connection's ContainerService
// for the duration of the call, and passes the service's broker ID to the
// plugin, which dials back to isolate (and to prepare, if it is older than
// the prepared spec and asks anyway: Prepare is idempotent).
func (c *client) Launch(ctx context.Context, req *LaunchRequest, containers ContainerService) (*LaunchResponse, error) {
	if req == nil || containers == nil {
		return nil, errors.New("executor launch: request and container service are required")
	}
	spec, err := containers.Prepare(ctx, req.ContainerID)
	if err != nil {
		return nil, fmt.Errorf("executor launch %q: %w", req.TaskID, err)
	}
	id := c.containerService()
	if err := c.cs.add(req.ContainerID, containers); err != nil {
		return nil, fmt.Errorf("executor launch %q: %w", req.TaskID, err)
	}
	defer c.cs.remove(req.ContainerID)

	preq := launchRequestToProto(req, id)
	preq.Prepared = isolator.LaunchSpecToProto(spec)
	resp, err := c.rpc.Launch(ctx, preq)
	if err != nil {
		return nil, fmt.Errorf("executor launch %q: %w", req.TaskID, rpcError(ctx, err))
	}
	return &LaunchResponse{Pid: int(resp.GetPid()), StartTicks: resp.GetStartTicks()}, nil
}

func (c *client) Wait(ctx context.Context, taskID string) (*ExitResult, error) {
	resp, err := c.rpc.Wait(ctx, &executorpb.WaitRequest{TaskId: taskID})
	if err != nil {
		return nil, fmt.Errorf("executor wait %q: %w", taskID, rpcError(ctx, err))
	}
	return &ExitResult{ExitCode: int(resp.GetExitCode()), Signal: int(resp.GetSignal()), Err: resp.GetError()}, nil
}

func (c *client) Signal(ctx context.Context, taskID string, sig syscall.Signal) error {
	if _, err := c.rpc.Signal(ctx, &executorpb.SignalRequest{TaskId: taskID, Signal: int32(sig)}); err != nil {
		return fmt.Errorf("executor signal %d to %q: %w", int(sig), taskID, rpcError(ctx, err))
	}
	return nil
}

func (c *client) Shutdown(ctx context.Context, taskID string, grace time.Duration) error {
	if _, err := c.rpc.Shutdown(ctx, &executorpb.ShutdownRequest{TaskId: taskID, GraceMs: grace.Milliseconds()}); err != nil {
		return fmt.Errorf("executor shutdown %q: %w", taskID, rpcError(ctx, err))
	}
	return nil
}

func (c *client) Stats(ctx context.Context, taskID string) (*Stats, error) {
	resp, err := c.rpc.Stats(ctx, &executorpb.StatsRequest{TaskId: taskID})
	if err != nil {
		return nil, fmt.Errorf("executor stats %q: %w", taskID, rpcError(ctx, err))
	}
	return statsFromProto(resp), nil
}

func (c *client) Forget(ctx context.Context, taskID string) error {
	if _, err := c.rpc.Forget(ctx, &executorpb.ForgetRequest{TaskId: taskID}); err != nil {
		return fmt.Errorf("executor forget %q: %w", taskID, rpcError(ctx, err))
	}
	return nil
}

// Recover implements Recoverer; a plugin without it answers Unimplemented.
func (c *client) Recover(ctx context.Context, req *RecoverRequest) (*RecoverResponse, error) {
	resp, err := c.rpc.Recover(ctx, &executorpb.RecoverRequest{ContainerId: req.ContainerID, TaskId: req.TaskID,
		SandboxDir: req.SandboxDir, Pid: int32(req.Pid)})
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("%w: %s", ErrNoTask, status.Convert(err).Message())
	}
	if err != nil {
		return nil, fmt.Errorf("executor recover %q: %w", req.TaskID, rpcError(ctx, err))
	}
	return &RecoverResponse{Pid: int(resp.GetPid()), StartTicks: resp.GetStartTicks()}, nil
}

func (c *client) Version(ctx context.Context) (*VersionInfo, error) {
	resp, err := c.rpc.Version(ctx, &executorpb.VersionRequest{})
	if err != nil {
		return nil, fmt.Errorf("executor version: %w", rpcError(ctx, err))
	}
	return &VersionInfo{Version: resp.GetVersion(), Pid: int(resp.GetPid()), Tasks: int(resp.GetTasks())}, nil
}

// containerMux is the connection's ContainerService: it routes each call
// to the ContainerService of the Launch in progress for that container,
// and refuses containers no Launch is running for.
type containerMux struct {
	mu   sync.Mutex
	byID map[string]ContainerService
}

func (m *containerMux) add(id string, cs ContainerService) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.byID[id]; dup {
		return fmt.Errorf("container %q is already being launched", id)
	}
	m.byID[id] = cs
	return nil
}

func (m *containerMux) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byID, id)
}

func (m *containerMux) get(id string) (ContainerService, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, ok := m.byID[id]
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q: no launch in progress", id)
	}
	return cs, nil
}

func (m *containerMux) Prepare(ctx context.Context, containerID string) (*isolator.LaunchSpec, error) {
	cs, err := m.get(containerID)
	if err != nil {
		return nil, err
	}
	return cs.Prepare(ctx, containerID)
}

func (m *containerMux) Isolate(ctx context.Context, containerID string, pid int) error {
	cs, err := m.get(containerID)
	if err != nil {
		return err
	}
	return cs.Isolate(ctx, containerID, pid)
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
