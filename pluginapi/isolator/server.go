package isolator

import (
	"context"

	isolatorpb "github.com/corral-project/corral/pluginapi/isolator/proto"
	"github.com/corral-project/corral/sdk/resources"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// server adapts an Isolator to the generated gRPC service.
type server struct {
	isolatorpb.UnimplementedIsolatorServer
	impl Isolator
}

func (s *server) Recover(ctx context.Context, req *isolatorpb.RecoverRequest) (*isolatorpb.RecoverResponse, error) {
	known, err := containerStatesFromProto(req.GetContainers())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "recover: %v", err)
	}
	orphans, err := s.impl.Recover(ctx, req.GetAgentId(), known)
	if err != nil {
		return nil, err
	}
	return &isolatorpb.RecoverResponse{Orphans: orphans}, nil
}

func (s *server) Prepare(ctx context.Context, req *isolatorpb.PrepareRequest) (*isolatorpb.PrepareResponse, error) {
	res, err := resources.FromProto(req.GetResources())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "prepare %q: %v", req.GetContainerId(), err)
	}
	spec, err := s.impl.Prepare(ctx, PrepareRequest{
		ContainerID: req.GetContainerId(),
		Resources:   res,
		SandboxDir:  req.GetSandboxDir(),
		User:        req.GetUser(),
		AgentID:     req.GetAgentId(),
		CPUQuota:    req.CpuQuota,
		Rootfs:      req.GetRootfs(),
		Hostname:    req.GetHostname(),
	})
	if err != nil {
		return nil, err
	}
	return &isolatorpb.PrepareResponse{Spec: LaunchSpecToProto(spec)}, nil
}

func (s *server) Isolate(ctx context.Context, req *isolatorpb.IsolateRequest) (*isolatorpb.IsolateResponse, error) {
	if err := s.impl.Isolate(ctx, req.GetContainerId(), int(req.GetPid())); err != nil {
		return nil, err
	}
	return &isolatorpb.IsolateResponse{}, nil
}

func (s *server) Update(ctx context.Context, req *isolatorpb.UpdateRequest) (*isolatorpb.UpdateResponse, error) {
	res, err := resources.FromProto(req.GetResources())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "update %q: %v", req.GetContainerId(), err)
	}
	if err := s.impl.Update(ctx, req.GetContainerId(), res); err != nil {
		return nil, err
	}
	return &isolatorpb.UpdateResponse{}, nil
}

func (s *server) Usage(ctx context.Context, req *isolatorpb.UsageRequest) (*isolatorpb.UsageResponse, error) {
	usages, err := s.impl.Usage(ctx, req.GetContainerIds())
	if err != nil {
		return nil, err
	}
	resp := &isolatorpb.UsageResponse{}
	for i := range usages {
		resp.Usages = append(resp.Usages, usageToProto(&usages[i]))
	}
	return resp, nil
}

// Watch forwards limitations until the plugin closes its channel or the
// host goes away (the stream's context ends).
func (s *server) Watch(_ *isolatorpb.WatchRequest, stream grpc.ServerStreamingServer[isolatorpb.Limitation]) error {
	ctx := stream.Context()
	ch, err := s.impl.Watch(ctx)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&isolatorpb.Limitation{ContainerId: l.ContainerID, Reason: l.Reason, Message: l.Message}); err != nil {
				return err
			}
		}
	}
}

func (s *server) Cleanup(ctx context.Context, req *isolatorpb.CleanupRequest) (*isolatorpb.CleanupResponse, error) {
	if err := s.impl.Cleanup(ctx, req.GetContainerId()); err != nil {
		return nil, err
	}
	return &isolatorpb.CleanupResponse{}, nil
}
