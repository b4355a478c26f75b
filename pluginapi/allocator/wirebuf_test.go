package allocator

import (
	"testing"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// TestMsgBufs: a message marshalled into a reused buffer and unmarshalled
// from pieces joined in one comes back whole, even when the buffer it
// lands in last held a larger, different message; buffers go back to the
// pool once gRPC frees them, and the pool keeps only the largest few.
func TestMsgBufs(t *testing.T) {
	big := &allocatorpb.AllocateResponse{AppliedVersion: 7}
	for i := range 5000 {
		big.Offers = append(big.Offers, &allocatorpb.OfferProposal{FrameworkId: "fw", AgentHandle: uint32(i + 1), ResourcesRef: 1})
	}
	small := &allocatorpb.AllocateResponse{AppliedVersion: 8}
	for i := range 300 {
		small.Offers = append(small.Offers, &allocatorpb.OfferProposal{RoleHandle: uint32(i + 2)})
	}
	for _, m := range []*allocatorpb.AllocateResponse{big, small, big} {
		data, err := marshalPooled(m)
		if err != nil {
			t.Fatal(err)
		}
		// Split as the transport would, in frames of 16 KiB.
		whole := data.Materialize()
		var pieces mem.BufferSlice
		for len(whole) > 0 {
			n := min(len(whole), 16<<10)
			pieces = append(pieces, mem.SliceBuffer(whole[:n]))
			whole = whole[n:]
		}
		data.Free()
		var got allocatorpb.AllocateResponse
		if err := unmarshalPooled(pieces, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, m) {
			t.Fatalf("message of %d offers came back as %d offers (version %d)", len(m.Offers), len(got.Offers), got.AppliedVersion)
		}
	}
	var p msgBufPool
	for _, n := range []int{10, 20, 30, 40, 50, 5} {
		b := make([]byte, n)
		p.Put(&b)
	}
	if len(p.free) != msgBufKeep {
		t.Fatalf("pool holds %d buffers, want %d", len(p.free), msgBufKeep)
	}
	for _, b := range p.free {
		if cap(*b) < 20 {
			t.Errorf("pool kept a buffer of %d bytes over larger ones", cap(*b))
		}
	}
	if b := p.Get(45); cap(*b) != 50 || len(*b) != 45 {
		t.Errorf("Get(45) returned len %d cap %d, want the 50-byte buffer", len(*b), cap(*b))
	}
	if b := p.Get(60); cap(*b) < 60 {
		t.Errorf("Get(60) returned cap %d", cap(*b))
	}
}
