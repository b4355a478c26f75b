package allocator

import (
	"sync"
	"sync/atomic"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Response recycling on the plugin side. A busy cycle's response holds
// thousands of offer messages; built fresh every cycle they were megabytes
// of new heap that the plugin process faulted in and zeroed each time. The
// plugin glue builds responses in pooled arrays instead, and the server's
// codec hands them back once they are marshalled: gRPC marshals a unary
// response exactly once, after the handler returned, and keeps no
// reference to the message afterwards.

// responseBuf backs one AllocateResponse.
type responseBuf struct {
	msg  allocatorpb.AllocateResponse
	ops  []allocatorpb.OfferProposal
	ptrs []*allocatorpb.OfferProposal
	cols allocatorpb.OfferColumns
}

var (
	// recycling is set once a server with recyclingCodec exists in this
	// process (Serve's); without that codec nothing would hand leased
	// responses back, so the glue allocates them as before.
	recycling    atomic.Bool
	responseBufs sync.Pool // of *responseBuf
	// leased maps a pooled response to its buffer until it is marshalled.
	leasedMu sync.Mutex
	leased   = map[*allocatorpb.AllocateResponse]*responseBuf{}
)

// leaseResponse returns an empty response whose Offers has room for n
// offers, backed by b.ops; the caller fills b.ops[:n].
func leaseResponse(n int) (*allocatorpb.AllocateResponse, *responseBuf) {
	b, _ := responseBufs.Get().(*responseBuf)
	if b == nil {
		b = &responseBuf{}
	}
	if cap(b.ops) < n {
		b.ops = make([]allocatorpb.OfferProposal, n)
		b.ptrs = make([]*allocatorpb.OfferProposal, 0, n)
	}
	b.ops = b.ops[:n]
	b.ptrs = b.ptrs[:0]
	leasedMu.Lock()
	leased[&b.msg] = b
	leasedMu.Unlock()
	return &b.msg, b
}

// releaseResponse returns m's buffer to the pool if m was leased; m must
// not be used afterwards.
func releaseResponse(m *allocatorpb.AllocateResponse) {
	leasedMu.Lock()
	b := leased[m]
	delete(leased, m)
	leasedMu.Unlock()
	if b == nil {
		return
	}
	for i := range b.ops {
		b.ops[i] = allocatorpb.OfferProposal{}
	}
	clear(b.ptrs[:cap(b.ptrs)])
	b.msg = allocatorpb.AllocateResponse{}
	b.cols.Framework, b.cols.Role = b.cols.Framework[:0], b.cols.Role[:0]
	b.cols.Agent, b.cols.ResourcesRef = b.cols.Agent[:0], b.cols.ResourcesRef[:0]
	responseBufs.Put(b)
}

// recyclingCodec is gRPC's proto codec, handing leased responses back
// after marshalling them, with messages in msgBufs (wirebuf.go).
type recyclingCodec struct{ encoding.CodecV2 }

func (c recyclingCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	out, err := marshalPooled(m)
	if r, ok := v.(*allocatorpb.AllocateResponse); ok {
		releaseResponse(r)
	}
	return out, err
}

func (c recyclingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(proto.Message); ok {
		return unmarshalPooled(data, m)
	}
	return c.CodecV2.Unmarshal(data, v)
}

// recyclingServerOption makes a server marshal with recyclingCodec.
func recyclingServerOption() grpc.ServerOption {
	recycling.Store(true)
	return grpc.ForceServerCodecV2(recyclingCodec{encoding.GetCodecV2(protocodec.Name)})
}
