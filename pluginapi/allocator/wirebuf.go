package allocator

import (
	"sync"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Message buffers. gRPC's proto codec marshals a message, and unmarshals
// one that arrived in several frames, in a buffer of its default pool:
// the pool's tier for anything between 32 KiB and 1 MiB is 1 MiB, zeroed
// on every Get, and a sync.Pool that each garbage collection empties. An
// allocation cycle's request and response are a few tens to hundreds of
// KiB, so each side got a fresh megabyte per message most cycles, which
// the kernel faulted in page by page and the runtime zeroed, only for the
// message to be copied over it. msgBufs keeps the last few message
// buffers for good and hands them out dirty: whatever reads them writes
// every byte it reads first.

// msgBufKeep is how many buffers msgBufs holds: one cycle needs at most
// one per message in flight on each side.
const msgBufKeep = 4

// msgBufPool is a mem.BufferPool of reused, unzeroed buffers.
type msgBufPool struct {
	mu   sync.Mutex
	free []*[]byte
}

var msgBufs = &msgBufPool{}

var _ mem.BufferPool = (*msgBufPool)(nil)

// Get returns a buffer of length n, reused when one large enough is free.
func (p *msgBufPool) Get(n int) *[]byte {
	p.mu.Lock()
	for i, b := range p.free {
		if cap(*b) >= n {
			last := len(p.free) - 1
			p.free[i] = p.free[last]
			p.free[last] = nil
			p.free = p.free[:last]
			p.mu.Unlock()
			*b = (*b)[:n]
			return b
		}
	}
	p.mu.Unlock()
	// A quarter more than asked, so that a message that grows a little
	// from one cycle to the next still fits.
	b := make([]byte, n, n+n/4)
	return &b
}

// Put takes b back, keeping the largest msgBufKeep buffers.
func (p *msgBufPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < msgBufKeep {
		p.free = append(p.free, b)
		return
	}
	small := 0
	for i, f := range p.free {
		if cap(*f) < cap(*p.free[small]) {
			small = i
		}
	}
	if cap(*b) > cap(*p.free[small]) {
		p.free[small] = b
	}
}

// marshalPooled marshals m as gRPC's proto codec does, into a buffer of
// msgBufs that goes back once gRPC has written it.
func marshalPooled(m proto.Message) (mem.BufferSlice, error) {
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true} // the size just computed
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := msgBufs.Get(size)
	b, err := opts.MarshalAppend((*buf)[:0], m)
	if err != nil {
		msgBufs.Put(buf)
		return nil, err
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, msgBufs)}, nil
}

// unmarshalPooled unmarshals data into m as gRPC's proto codec does, a
// message in several pieces joined in a buffer of msgBufs (the generated
// code copies what it keeps out of the bytes it decodes).
func unmarshalPooled(data mem.BufferSlice, m proto.Message) error {
	if len(data) == 1 {
		return proto.Unmarshal(data[0].ReadOnlyData(), m)
	}
	buf := msgBufs.Get(data.Len())
	defer msgBufs.Put(buf)
	data.CopyTo(*buf)
	return proto.Unmarshal(*buf, m)
}
