package allocator

import (
	"fmt"
	"math"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Host-side decoding of AllocateResponse straight from its bytes. The
// generated code would build a message per offer (and, without interned
// IDs, three strings) only for the glue to copy them into Proposals and
// drop them; a busy cycle has thousands. This decoder reads the offers
// into the Proposals the master gets, IDs resolved in the dictionary, and
// hands the few other fields (metrics, revocations, the resource table) to
// the generated code. The bytes land in a buffer the client reuses.

// rawResponse is an AllocateResponse as received: its encoded bytes.
type rawResponse struct{ b []byte }

// rawCodec is gRPC's proto codec, except that it copies a rawResponse's
// bytes as they are instead of unmarshalling them, and marshals into
// msgBufs (wirebuf.go).
type rawCodec struct{ encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{encoding.GetCodecV2(protocodec.Name)} }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawResponse); ok {
		r.b = r.b[:0]
		for _, buf := range data {
			r.b = append(r.b, buf.ReadOnlyData()...)
		}
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// Marshal marshals requests into msgBufs (wirebuf.go).
func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(proto.Message); ok {
		return marshalPooled(m)
	}
	return c.CodecV2.Marshal(v)
}

// AllocateResponse field numbers (allocator.proto).
const (
	respAppliedVersion = 1
	respOffers         = 2
	respResponseID     = 5
	respResourceTable  = 6
	respIDsEpoch       = 7
	respMetricsBase    = 8
	respReads          = 10

	offerFramework       = 1
	offerRole            = 2
	offerAgent           = 3
	offerResources       = 4
	offerResourcesRef    = 5
	offerFrameworkHandle = 6
	offerRoleHandle      = 7
	offerAgentHandle     = 8
)

// decodedResponse is what the client needs of a response besides the
// domain response.
type decodedResponse struct {
	resp       *AllocateResponse
	responseID uint64
	idsEpoch   uint64
	size       int
	// resp.Metrics are changes to those of response metricsBase when it
	// is not 0, with metricsRemoved (metrics.go).
	metricsBase    uint64
	metricsRemoved []string
	reads          uint64 // WireFeature bits
}

// decodeResponse decodes b. tabFor returns the table the response's
// handles resolve in, given its ids_epoch (an error refuses the epoch).
func decodeResponse(b []byte, tabFor func(epoch uint64) (idTable, error)) (decodedResponse, error) {
	out := decodedResponse{resp: &AllocateResponse{}, size: len(b)}
	// Pass 1: the scalars, the resource table and every field but the
	// offers (handed to the generated code), and the number of offers.
	var rest allocatorpb.AllocateResponse
	var restBytes []byte
	nOffers := 0
	for p := b; len(p) > 0; {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return out, fmt.Errorf("response: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, p[n:])
		if m < 0 {
			return out, fmt.Errorf("response field %d: %w", num, protowire.ParseError(m))
		}
		field := p[:n+m]
		switch {
		case num == respOffers && typ == protowire.BytesType:
			nOffers++
		case num == respAppliedVersion && typ == protowire.VarintType:
			out.resp.AppliedVersion, _ = protowire.ConsumeVarint(p[n:])
		case num == respResponseID && typ == protowire.VarintType:
			out.responseID, _ = protowire.ConsumeVarint(p[n:])
		case num == respIDsEpoch && typ == protowire.VarintType:
			out.idsEpoch, _ = protowire.ConsumeVarint(p[n:])
		case num == respMetricsBase && typ == protowire.VarintType:
			out.metricsBase, _ = protowire.ConsumeVarint(p[n:])
		case num == respReads && typ == protowire.VarintType:
			out.reads, _ = protowire.ConsumeVarint(p[n:])
		default:
			restBytes = append(restBytes, field...)
		}
		p = p[n+m:]
	}
	if len(restBytes) > 0 {
		if err := proto.Unmarshal(restBytes, &rest); err != nil {
			return out, fmt.Errorf("response: %w", err)
		}
	}
	out.resp.Metrics = rest.GetMetrics()
	out.metricsRemoved = rest.GetMetricsRemoved()
	for _, rv := range rest.GetRevocations() {
		out.resp.Revocations = append(out.resp.Revocations, Revocation{
			FrameworkID: rv.GetFrameworkId(), TaskID: rv.GetTaskId(), AgentID: rv.GetAgentId(), Reason: rv.GetReason(),
		})
	}
	table := make([]resources.Resources, len(rest.GetResourceTable()))
	for i, l := range rest.GetResourceTable() {
		res, err := resources.FromProto(l.GetResources())
		if err != nil {
			return out, fmt.Errorf("resource table entry %d: %w", i, err)
		}
		table[i] = res
	}
	tab, err := tabFor(out.idsEpoch)
	if err != nil {
		return out, err
	}
	// Pass 2: the offers.
	cols := rest.GetOfferColumns()
	out.resp.Offers = make([]Proposal, 0, nOffers+len(cols.GetAgent()))
	for p := b; len(p) > 0; {
		num, typ, n := protowire.ConsumeTag(p)
		p = p[n:]
		if num != respOffers || typ != protowire.BytesType {
			p = p[protowire.ConsumeFieldValue(num, typ, p):]
			continue
		}
		v, m := protowire.ConsumeBytes(p)
		p = p[m:]
		o, err := decodeOffer(v, tab, table)
		if err != nil {
			return out, fmt.Errorf("offer %d: %w", len(out.resp.Offers), err)
		}
		out.resp.Offers = append(out.resp.Offers, o)
	}
	if out.resp.Offers, err = columnOffers(out.resp.Offers, cols, tab, table); err != nil {
		return out, err
	}
	return out, nil
}

// columnOffers appends the offers of cols (nil: none) to out.
func columnOffers(out []Proposal, cols *allocatorpb.OfferColumns, tab idTable, table []resources.Resources) ([]Proposal, error) {
	n := len(cols.GetAgent())
	if len(cols.GetFramework()) != n || len(cols.GetRole()) != n || len(cols.GetResourcesRef()) != n {
		return nil, fmt.Errorf("offer columns of %d frameworks, %d roles, %d agents and %d resources",
			len(cols.GetFramework()), len(cols.GetRole()), n, len(cols.GetResourcesRef()))
	}
	for i := range n {
		o, err := columnOffer(cols, i, tab, table)
		if err != nil {
			return nil, fmt.Errorf("offer %d: %w", len(out), err)
		}
		out = append(out, o)
	}
	return out, nil
}

func columnOffer(cols *allocatorpb.OfferColumns, i int, tab idTable, table []resources.Resources) (Proposal, error) {
	var o Proposal
	var err error
	if o.FrameworkID, err = columnID(tab, cols.Framework[i], "framework"); err != nil {
		return o, err
	}
	if o.Role, err = columnID(tab, cols.Role[i], "role"); err != nil {
		return o, err
	}
	if o.AgentID, err = columnID(tab, cols.Agent[i], "agent"); err != nil {
		return o, err
	}
	ref := cols.ResourcesRef[i]
	if ref == 0 || int(ref) > len(table) {
		return o, fmt.Errorf("framework %q, agent %q: refers to resource list %d of %d", o.FrameworkID, o.AgentID, ref, len(table))
	}
	o.Resources = table[ref-1]
	return o, nil
}

// columnID is the ID of a handle in offer columns, where 0 is no ID.
func columnID(tab idTable, h uint32, what string) (string, error) {
	if h == 0 {
		return "", fmt.Errorf("%s handle 0 in offer columns", what)
	}
	return tab.decode("", h, what)
}

func decodeOffer(b []byte, tab idTable, table []resources.Resources) (Proposal, error) {
	var o Proposal
	var fw, role, agent []byte
	var fwH, roleH, agentH, ref uint64
	var inline []*corralpb.Resource
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return o, protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return o, protowire.ParseError(m)
			}
			b = b[m:]
			switch num {
			case offerFramework:
				fw = v
			case offerRole:
				role = v
			case offerAgent:
				agent = v
			case offerResources:
				r := &corralpb.Resource{}
				if err := proto.Unmarshal(v, r); err != nil {
					return o, err
				}
				inline = append(inline, r)
			}
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return o, protowire.ParseError(m)
			}
			b = b[m:]
			switch num {
			case offerResourcesRef:
				ref = v
			case offerFrameworkHandle:
				fwH = v
			case offerRoleHandle:
				roleH = v
			case offerAgentHandle:
				agentH = v
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return o, protowire.ParseError(m)
			}
			b = b[m:]
		}
	}
	var err error
	if o.FrameworkID, err = decodeID(tab, fw, fwH, "framework"); err != nil {
		return o, err
	}
	if o.Role, err = decodeID(tab, role, roleH, "role"); err != nil {
		return o, err
	}
	if o.AgentID, err = decodeID(tab, agent, agentH, "agent"); err != nil {
		return o, err
	}
	switch {
	case ref == 0:
		if o.Resources, err = resources.FromProto(inline); err != nil {
			return o, fmt.Errorf("framework %q, agent %q: %w", o.FrameworkID, o.AgentID, err)
		}
	case ref > uint64(len(table)):
		return o, fmt.Errorf("framework %q, agent %q: refers to resource list %d of %d", o.FrameworkID, o.AgentID, ref, len(table))
	default:
		o.Resources = table[ref-1]
	}
	return o, nil
}

// decodeID is idTable.decode for a string still in bytes: it allocates
// the string only when no handle stands for it.
func decodeID(tab idTable, s []byte, h uint64, what string) (string, error) {
	if h > math.MaxUint32 {
		return "", fmt.Errorf("%s handle %d out of range", what, h)
	}
	if h != 0 {
		return tab.decode("", uint32(h), what)
	}
	return string(s), nil
}
