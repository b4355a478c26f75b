package allocator

import (
	"context"
	"errors"
	"fmt"
	"io"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"github.com/corral-project/corral/pluginapi/base"
	"google.golang.org/grpc"
)

// client is an Allocator that calls a plugin over gRPC.
type client struct {
	base.Plugin
	rpc    allocatorpb.AllocatorClient
	offers offerMemory // recent responses, for offer references
}

// NewClient returns an Allocator (base service included) served over conn.
func NewClient(conn *grpc.ClientConn) Allocator {
	return &client{Plugin: base.NewClient(conn), rpc: allocatorpb.NewAllocatorClient(conn)}
}

// Init streams snap in chunks of at most InitChunkSize entries.
func (c *client) Init(ctx context.Context, snap *Snapshot) (uint64, error) {
	if snap == nil {
		return 0, errors.New("allocator init: nil snapshot")
	}
	stream, err := c.rpc.Init(ctx)
	if err != nil {
		return 0, c.err(ctx, "init", err)
	}
	for _, chunk := range snapshotChunks(snap, InitChunkSize) {
		if err := stream.Send(chunk); err != nil {
			// io.EOF from Send means the server ended the call; the real
			// status comes from CloseAndRecv.
			if errors.Is(err, io.EOF) {
				break
			}
			return 0, c.err(ctx, "init", err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, c.err(ctx, "init", err)
	}
	return resp.GetVersion(), nil
}

func (c *client) Allocate(ctx context.Context, req *AllocateRequest) (*AllocateResponse, error) {
	p, err := allocateRequestToProto(req, &c.offers)
	if err != nil {
		return nil, fmt.Errorf("allocator allocate: %w", err)
	}
	resp, err := c.rpc.Allocate(ctx, p)
	if err != nil {
		return nil, c.err(ctx, "allocate", err)
	}
	out, err := allocateResponseFromProto(resp)
	if err != nil {
		return nil, fmt.Errorf("allocator allocate: plugin response: %w", err)
	}
	c.offers.remember(resp.GetResponseId(), out.Offers, true)
	return out, nil
}

// err turns a gRPC error into a domain error: a *VersionGapError when the
// plugin reported one, otherwise base.HandleRPCError's mapping.
func (c *client) err(ctx context.Context, call string, err error) error {
	if gap := versionGapFromStatus(err); gap != nil {
		return gap
	}
	return fmt.Errorf("allocator %s: %w", call, base.HandleRPCError(ctx, err))
}
