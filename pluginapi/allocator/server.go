package allocator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// server adapts an Allocator to the generated gRPC service.
type server struct {
	allocatorpb.UnimplementedAllocatorServer
	impl Allocator
	wire WireOptions

	ids     pluginIDs   // the host's interned IDs (idtable.go)
	metrics sentMetrics // what the last response's metrics were (metrics.go)
	offers  offerMemory // recent responses, to resolve offer references
	// deltas is the last request's delta slice, reused by the next one:
	// a busy cycle expands thousands of offer references into deltas, and
	// writing them into a fresh megabyte every cycle cost the plugin more
	// than decoding them. Nil while a call holds it.
	deltasMu   sync.Mutex
	deltas     []Delta
	responseMu sync.Mutex
	responseID uint64
}

// Init reassembles the streamed snapshot and hands it to the plugin in one
// piece, so implementations never see partial state.
func (s *server) Init(stream grpc.ClientStreamingServer[allocatorpb.InitChunk, allocatorpb.InitResponse]) error {
	var snap *Snapshot
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if snap == nil {
			snap = &Snapshot{Version: chunk.GetVersion(), Now: LogicalTime(chunk.GetLogicalNowMs())}
		} else if chunk.GetVersion() != snap.Version {
			return status.Errorf(codes.InvalidArgument, "init chunk has version %d, earlier chunks %d", chunk.GetVersion(), snap.Version)
		}
		if err := mergeChunk(snap, chunk); err != nil {
			return status.Errorf(codes.InvalidArgument, "init chunk: %v", err)
		}
	}
	if snap == nil {
		return status.Error(codes.InvalidArgument, "init stream carried no chunk")
	}
	v, err := s.impl.Init(stream.Context(), snap)
	if err != nil {
		return serverError(err)
	}
	return stream.SendAndClose(&allocatorpb.InitResponse{Version: v})
}

func (s *server) Allocate(ctx context.Context, p *allocatorpb.AllocateRequest) (*allocatorpb.AllocateResponse, error) {
	s.deltasMu.Lock()
	buf := s.deltas
	s.deltas = nil
	s.deltasMu.Unlock()
	// The dictionary stays locked until the response is encoded: its
	// handles must be the ones this request left.
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	var tab idTable
	var epoch uint64
	if d := p.GetIds(); d != nil && !s.ids.off {
		if err := s.ids.apply(d); err != nil {
			// The host starts a new epoch after a failed call.
			return nil, status.Errorf(codes.FailedPrecondition, "allocate: %v", err)
		}
		tab, epoch = s.ids.strs, s.ids.epoch
	}
	s.offers.mu.Lock()
	req, err := allocateRequestFromProtoInto(p, &s.offers, buf, tab)
	s.offers.mu.Unlock()
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "allocate: %v", err)
	}
	resp, err := s.impl.Allocate(ctx, req)
	// The implementation is done with the request (see AllocateRequest):
	// its deltas go back for the next one, cleared so that they keep
	// nothing alive meanwhile.
	clear(req.Deltas)
	s.deltasMu.Lock()
	if cap(req.Deltas) > cap(s.deltas) {
		s.deltas = req.Deltas[:0]
	}
	s.deltasMu.Unlock()
	if err != nil {
		return nil, serverError(err)
	}
	if resp == nil {
		return nil, status.Error(codes.Internal, fmt.Sprintf("allocator returned neither a response nor an error for base version %d", req.BaseVersion))
	}
	var enc idEncoder
	if epoch != 0 {
		enc = s.ids.enc
	}
	var out *allocatorpb.AllocateResponse
	if epoch != 0 && p.GetReads()&uint64(allocatorpb.WireFeature_WIRE_OFFER_COLUMNS) != 0 && !s.wire.NoOfferColumns {
		out = columnsResponse(resp, enc)
	}
	switch {
	case out != nil:
	case recycling.Load():
		// Built in a leased buffer that the server's codec hands back
		// once it is marshalled (respool.go).
		var rb *responseBuf
		out, rb = leaseResponse(len(resp.Offers))
		allocateResponseToProtoIn(out, rb.ptrs, rb.ops, resp, enc)
	default:
		out = allocateResponseToProto(resp, enc)
	}
	out.IdsEpoch = epoch
	s.responseMu.Lock()
	if s.responseID == 0 {
		// Start anywhere: a host must never mistake a restarted plugin's
		// responses for the previous process's.
		s.responseID = uint64(rand.Uint32()) << 16
	}
	s.responseID++
	out.ResponseId = s.responseID
	s.responseMu.Unlock()
	base := p.GetMetricsBase()
	if s.wire.NoMetricDeltas {
		base = 0
	}
	out.Metrics, out.MetricsRemoved, out.MetricsBase = s.metrics.encode(resp.Metrics, base, out.ResponseId)
	if !s.wire.NoCompactRefs {
		out.Reads = uint64(allocatorpb.WireFeature_WIRE_REF_RANGES | allocatorpb.WireFeature_WIRE_REF_BITMAPS)
	}
	s.offers.remember(out.ResponseId, resp.Offers, false)
	return out, nil
}

// columnsResponse is resp's wire form with its offers in columns (in a
// leased buffer when responses are recycled), or nil when an offer names
// an ID enc has no handle for.
func columnsResponse(resp *AllocateResponse, enc idEncoder) *allocatorpb.AllocateResponse {
	if !recycling.Load() {
		out := &allocatorpb.AllocateResponse{}
		if !allocateResponseToColumns(out, &allocatorpb.OfferColumns{}, resp, enc) {
			return nil
		}
		return out
	}
	out, rb := leaseResponse(0)
	if !allocateResponseToColumns(out, &rb.cols, resp, enc) {
		releaseResponse(out)
		return nil
	}
	return out
}
