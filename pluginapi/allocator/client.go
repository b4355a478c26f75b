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
	ids    hostIDs     // interned IDs (idtable.go)
}

// NewClient returns an Allocator (base service included) served over conn.
func NewClient(conn *grpc.ClientConn) Allocator {
	return newClient(conn, WireOptions{})
}

func newClient(conn *grpc.ClientConn, opts WireOptions) Allocator {
	c := &client{Plugin: base.NewClient(conn), rpc: allocatorpb.NewAllocatorClient(conn)}
	c.ids.off = opts.NoInternedIDs
	c.ids.reset()
	return c
}

// Init streams snap in chunks of at most InitChunkSize entries.
func (c *client) Init(ctx context.Context, snap *Snapshot) (uint64, error) {
	if snap == nil {
		return 0, errors.New("allocator init: nil snapshot")
	}
	// Whatever the outcome, the plugin's state starts over, and so does
	// the ID dictionary: from the snapshot's IDs, sent with the next
	// request.
	c.ids.mu.Lock()
	c.ids.noteSnapshot(snap)
	c.ids.mu.Unlock()
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
	c.ids.mu.Lock()
	defer c.ids.mu.Unlock()
	c.ids.noteDeltas(req.Deltas)
	p, err := allocateRequestToProto(req, &c.offers, c.ids.encoder())
	if err != nil {
		return nil, fmt.Errorf("allocator allocate: %w", err)
	}
	p.Ids = c.ids.announce()
	resp, err := c.rpc.Allocate(ctx, p)
	if err != nil {
		// The plugin may or may not have taken the dictionary's
		// additions: start over.
		c.ids.newEpoch()
		return nil, c.err(ctx, "allocate", err)
	}
	tab, err := c.ids.answered(p.Ids, resp.GetIdsEpoch())
	if err != nil {
		c.ids.newEpoch()
		return nil, fmt.Errorf("allocator allocate: plugin response: %w", err)
	}
	out, err := allocateResponseFromProto(resp, tab)
	if err != nil {
		c.ids.newEpoch()
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
