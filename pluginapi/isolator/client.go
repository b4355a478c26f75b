package isolator

import (
	"context"
	"fmt"

	"github.com/corral-project/corral/pluginapi/base"
	isolatorpb "github.com/corral-project/corral/pluginapi/isolator/proto"
	"github.com/corral-project/corral/sdk/resources"
	"google.golang.org/grpc"
)

// client is an Isolator that calls a plugin over gRPC.
type client struct {
	base.Plugin
	rpc isolatorpb.IsolatorClient
}

// NewClient returns an Isolator (base service included) served over conn.
func NewClient(conn *grpc.ClientConn) Isolator {
	return &client{Plugin: base.NewClient(conn), rpc: isolatorpb.NewIsolatorClient(conn)}
}

func rpcErr(ctx context.Context, call string, err error) error {
	return fmt.Errorf("isolator %s: %w", call, base.HandleRPCError(ctx, err))
}

func (c *client) Recover(ctx context.Context, agentID string, known []ContainerState) ([]string, error) {
	resp, err := c.rpc.Recover(ctx, &isolatorpb.RecoverRequest{AgentId: agentID, Containers: containerStatesToProto(known)})
	if err != nil {
		return nil, rpcErr(ctx, "recover", err)
	}
	return resp.GetOrphans(), nil
}

func (c *client) Prepare(ctx context.Context, req PrepareRequest) (*LaunchSpec, error) {
	resp, err := c.rpc.Prepare(ctx, &isolatorpb.PrepareRequest{
		ContainerId: req.ContainerID,
		Resources:   req.Resources.ToProto(),
		SandboxDir:  req.SandboxDir,
		User:        req.User,
		AgentId:     req.AgentID,
		CpuQuota:    req.CPUQuota,
		Rootfs:      req.Rootfs,
		Hostname:    req.Hostname,
	})
	if err != nil {
		return nil, rpcErr(ctx, "prepare "+req.ContainerID, err)
	}
	return LaunchSpecFromProto(resp.GetSpec()), nil
}

func (c *client) Isolate(ctx context.Context, containerID string, pid int) error {
	_, err := c.rpc.Isolate(ctx, &isolatorpb.IsolateRequest{ContainerId: containerID, Pid: int32(pid)})
	if err != nil {
		return rpcErr(ctx, "isolate "+containerID, err)
	}
	return nil
}

func (c *client) Update(ctx context.Context, containerID string, res resources.Resources) error {
	_, err := c.rpc.Update(ctx, &isolatorpb.UpdateRequest{ContainerId: containerID, Resources: res.ToProto()})
	if err != nil {
		return rpcErr(ctx, "update "+containerID, err)
	}
	return nil
}

func (c *client) Cleanup(ctx context.Context, containerID string) error {
	_, err := c.rpc.Cleanup(ctx, &isolatorpb.CleanupRequest{ContainerId: containerID})
	if err != nil {
		return rpcErr(ctx, "cleanup "+containerID, err)
	}
	return nil
}

func (c *client) Usage(ctx context.Context, containerIDs []string) ([]Usage, error) {
	resp, err := c.rpc.Usage(ctx, &isolatorpb.UsageRequest{ContainerIds: containerIDs})
	if err != nil {
		return nil, rpcErr(ctx, "usage", err)
	}
	out := make([]Usage, 0, len(resp.GetUsages()))
	for _, u := range resp.GetUsages() {
		out = append(out, usageFromProto(u))
	}
	return out, nil
}

// Watch returns a channel of limitations that is closed when the stream
// ends: ctx is done, the plugin closed it, or the plugin went away. Callers
// that need to tell these apart check ctx and the plugin's health.
func (c *client) Watch(ctx context.Context) (<-chan Limitation, error) {
	stream, err := c.rpc.Watch(ctx, &isolatorpb.WatchRequest{})
	if err != nil {
		return nil, rpcErr(ctx, "watch", err)
	}
	ch := make(chan Limitation)
	go func() {
		defer close(ch)
		for {
			l, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case ch <- Limitation{ContainerID: l.GetContainerId(), Reason: l.GetReason(), Message: l.GetMessage()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
