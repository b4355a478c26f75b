package allocator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"github.com/corral-project/corral/pluginapi/base"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// client is an Allocator that calls a plugin over gRPC.
type client struct {
	base.Plugin
	rpc    allocatorpb.AllocatorClient
	conn   *grpc.ClientConn
	codec  rawCodec
	raw    rawResponse // the last response's bytes, reused (under ids.mu)
	offers offerMemory // recent responses, for offer references
	ids    hostIDs     // interned IDs (idtable.go)
	opts   WireOptions
	// Under ids.mu: the WireFeature bits the plugin's last response
	// announced, and the metrics of the last response (metricsID) in
	// full, which the next response may update (metrics.go).
	reads     uint64
	metrics   map[string]float64
	metricsID uint64
	// wire: the sizes of the last Allocate call's messages, measured
	// once MeasureWire asked for them.
	wire struct {
		sync.Mutex
		on        bool
		req, resp int
	}
}

// WireSizer is implemented by the host side of the gRPC glue (the
// Allocator a host gets from a plugin): the encoded sizes of the last
// Allocate request and response, for benchmarks and profiles.
type WireSizer interface {
	// MeasureWire starts measuring the encoded size of each call's
	// messages (it costs a walk of both per call).
	MeasureWire()
	// LastWireBytes returns the last Allocate call's request and response
	// sizes in bytes (0 before measuring started).
	LastWireBytes() (request, response int)
}

var _ WireSizer = (*client)(nil)

func (c *client) MeasureWire() {
	c.wire.Lock()
	c.wire.on = true
	c.wire.Unlock()
}

func (c *client) LastWireBytes() (request, response int) {
	c.wire.Lock()
	defer c.wire.Unlock()
	return c.wire.req, c.wire.resp
}

// NewClient returns an Allocator (base service included) served over conn.
func NewClient(conn *grpc.ClientConn) Allocator {
	return newClient(conn, WireOptions{})
}

func newClient(conn *grpc.ClientConn, opts WireOptions) Allocator {
	c := &client{Plugin: base.NewClient(conn), rpc: allocatorpb.NewAllocatorClient(conn), conn: conn, codec: newRawCodec(), opts: opts}
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
	c.forgetPeer()
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
	c.ids.noteRemovals(req.Deltas)
	var reads uint64 // the compact forms of requests to use
	if !c.opts.NoCompactRefs {
		reads = c.reads
	}
	p, err := allocateRequestToProto(req, &c.offers, c.ids.encoder(), c.ids.note, reads)
	if err != nil {
		return nil, fmt.Errorf("allocator allocate: %w", err)
	}
	p.Ids = c.ids.announce()
	if !c.opts.NoMetricDeltas {
		p.MetricsBase = c.metricsID
	}
	if !c.opts.NoOfferColumns {
		p.Reads = uint64(allocatorpb.WireFeature_WIRE_OFFER_COLUMNS)
	}
	// The response is decoded from its bytes straight into the domain
	// response (respdecode.go).
	err = c.conn.Invoke(ctx, allocatorpb.Allocator_Allocate_FullMethodName, p, &c.raw,
		grpc.StaticMethod(), grpc.ForceCodecV2(c.codec))
	if err != nil {
		// The plugin may or may not have taken the dictionary's
		// additions: start over.
		c.ids.newEpoch()
		c.forgetPeer()
		return nil, c.err(ctx, "allocate", err)
	}
	c.wire.Lock()
	if c.wire.on {
		c.wire.req, c.wire.resp = proto.Size(p), len(c.raw.b)
	}
	c.wire.Unlock()
	dec, err := decodeResponse(c.raw.b, func(epoch uint64) (idTable, error) { return c.ids.answered(p.Ids, epoch) })
	if err == nil {
		dec.resp.Metrics, err = c.mergeMetrics(dec)
	}
	if err != nil {
		c.ids.newEpoch()
		c.forgetPeer()
		return nil, fmt.Errorf("allocator allocate: plugin response: %w", err)
	}
	c.reads = dec.reads
	c.offers.remember(dec.responseID, dec.resp.Offers, true)
	return dec.resp, nil
}

// forgetPeer drops what the client knows of the plugin's side beyond the
// ID dictionary, after an Init or a failed call: its features until its
// next response announces them, and the metrics it would send changes
// to. The caller holds c.ids.mu.
func (c *client) forgetPeer() {
	c.reads, c.metrics, c.metricsID = 0, nil, 0
}

// err turns a gRPC error into a domain error: a *VersionGapError when the
// plugin reported one, otherwise base.HandleRPCError's mapping.
func (c *client) err(ctx context.Context, call string, err error) error {
	if gap := versionGapFromStatus(err); gap != nil {
		return gap
	}
	return fmt.Errorf("allocator %s: %w", call, base.HandleRPCError(ctx, err))
}
