package allocator

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"github.com/corral-project/corral/sdk/resources"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// echoPlugin records the requests it is given (copies) and answers with
// its offers, or fails once when failNext is set.
type echoPlugin struct {
	Allocator
	mu       sync.Mutex
	version  uint64
	reqs     []AllocateRequest
	offers   []Proposal
	failNext bool
}

func (e *echoPlugin) Init(_ context.Context, snap *Snapshot) (uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version = snap.Version
	return snap.Version, nil
}

func (e *echoPlugin) Allocate(_ context.Context, req *AllocateRequest) (*AllocateResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := *req
	kept.Deltas = nil
	for _, d := range req.Deltas {
		if d.Allocation != nil {
			a := *d.Allocation
			d.Allocation = &a
		}
		kept.Deltas = append(kept.Deltas, d)
	}
	e.reqs = append(e.reqs, kept)
	if e.failNext {
		e.failNext = false
		return nil, errors.New("fails on purpose")
	}
	return &AllocateResponse{AppliedVersion: req.TargetVersion, Offers: slices.Clone(e.offers)}, nil
}

// wireLog keeps every Allocate request and response as they crossed the
// wire.
type wireLog struct {
	mu    sync.Mutex
	reqs  []*allocatorpb.AllocateRequest
	resps []*allocatorpb.AllocateResponse
}

func (w *wireLog) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := req.(*allocatorpb.AllocateRequest); ok {
		w.reqs = append(w.reqs, r)
		if p, ok := resp.(*allocatorpb.AllocateResponse); ok && err == nil {
			w.resps = append(w.resps, p)
		} else {
			w.resps = append(w.resps, nil)
		}
	}
	return resp, err
}

func (w *wireLog) last() (*allocatorpb.AllocateRequest, *allocatorpb.AllocateResponse) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reqs[len(w.reqs)-1], w.resps[len(w.resps)-1]
}

// wirePair connects a host-side client and a plugin-side server, each
// with its own wire options, over a real gRPC connection on 127.0.0.1.
func wirePair(t *testing.T, impl Allocator, host, plugin WireOptions) (*client, *wireLog) {
	t.Helper()
	log := &wireLog{}
	srv := grpc.NewServer(grpc.UnaryInterceptor(log.intercept))
	s := &server{impl: impl, wire: plugin}
	s.ids.off = plugin.NoInternedIDs
	allocatorpb.RegisterAllocatorServer(srv, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return newClient(conn, host).(*client), log
}

var idSnap = &Snapshot{
	Version: 1,
	Agents: []Agent{
		{ID: "a1", Total: resources.MustParse("cpus:4"), Active: true},
		{ID: "a2", Total: resources.MustParse("cpus:4"), Active: true},
	},
	Frameworks: []Framework{{ID: "f1", Roles: []string{"r1"}, Active: true}},
}

func cycle(t *testing.T, c *client, base uint64, deltas ...Delta) *AllocateResponse {
	t.Helper()
	for i := range deltas {
		deltas[i].Version = base + uint64(i) + 1
	}
	resp, err := c.Allocate(context.Background(), &AllocateRequest{BaseVersion: base, Deltas: deltas, TargetVersion: base + uint64(len(deltas)), Now: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestInternedIDs: a host and plugin that both intern send the dictionary
// once and then only additions, name offers by handle (and by string an
// ID the dictionary lacks), use handles in the host's own allocations
// once the plugin showed it reads them, and start over after a re-Init
// and after a failed call.
func TestInternedIDs(t *testing.T) {
	impl := &echoPlugin{offers: []Proposal{
		{FrameworkID: "f1", Role: "r1", AgentID: "a1", Resources: resources.MustParse("cpus:1")},
		{FrameworkID: "stranger", Role: "r1", AgentID: "a2", Resources: resources.MustParse("cpus:2")},
	}}
	// Offers as messages, whose handles this test reads on the wire
	// (TestWireFeatures has them in columns).
	c, wire := wirePair(t, impl, WireOptions{NoOfferColumns: true}, WireOptions{})
	if _, err := c.Init(context.Background(), idSnap); err != nil {
		t.Fatal(err)
	}
	resp := cycle(t, c, 1)
	if !proposalsEqual(resp.Offers, impl.offers) {
		t.Fatalf("offers %+v, want %+v", resp.Offers, impl.offers)
	}
	req, out := wire.last()
	d := req.GetIds()
	if d == nil || d.Base != 0 || !slices.Equal(d.Added, []string{"a1", "a2", "f1", "r1"}) {
		t.Fatalf("first request's dictionary %v, want the snapshot's IDs from 0", d)
	}
	epoch := d.Epoch
	if out.IdsEpoch != epoch {
		t.Fatalf("response epoch %d, want %d", out.IdsEpoch, epoch)
	}
	o0, o1 := out.Offers[0], out.Offers[1]
	if o0.FrameworkId != "" || o0.AgentId != "" || o0.Role != "" || o0.FrameworkHandle != 3 || o0.RoleHandle != 4 || o0.AgentHandle != 1 {
		t.Errorf("offer 0 on the wire %v, want handles 3, 4, 1 and no strings", o0)
	}
	if o1.FrameworkId != "stranger" || o1.FrameworkHandle != 0 || o1.AgentHandle != 2 {
		t.Errorf("offer 1 on the wire %v: want the unknown framework as a string, the agent as handle 2", o1)
	}

	// Next cycle: a new agent and an allocation that is no recent offer;
	// only the new IDs are added, and the allocation goes by handle.
	cycle(t, c, 1,
		Delta{Kind: AgentAdded, Agent: &Agent{ID: "a3", Total: resources.MustParse("cpus:4"), Active: true}},
		Delta{Kind: Allocated, Allocation: &Allocation{FrameworkID: "f1", Role: "r1", AgentID: "a3", Resources: resources.MustParse("cpus:3")}})
	req, out = wire.last()
	if d := req.GetIds(); d.Epoch != epoch || d.Base != 4 || !slices.Equal(d.Added, []string{"a3"}) {
		t.Errorf("second request's dictionary %v, want epoch %d adding a3 at 4", d, epoch)
	}
	al := req.Deltas[1].GetAllocated()
	if al.FrameworkId != "" || al.AgentId != "" || al.FrameworkHandle != 3 || al.RoleHandle != 4 || al.AgentHandle != 5 {
		t.Errorf("allocation on the wire %v, want handles 3, 4, 5", al)
	}
	if got := impl.reqs[len(impl.reqs)-1].Deltas[1].Allocation; got.FrameworkID != "f1" || got.Role != "r1" || got.AgentID != "a3" {
		t.Errorf("the plugin got allocation %+v, want f1/r1 on a3", got)
	}
	if out.IdsEpoch != epoch {
		t.Errorf("second response epoch %d", out.IdsEpoch)
	}

	// Nothing new: an empty addition at the current size.
	cycle(t, c, 3)
	if req, _ = wire.last(); req.GetIds().Base != 5 || len(req.GetIds().Added) != 0 {
		t.Errorf("third request's dictionary %v, want nothing added at 5", req.GetIds())
	}

	// A failed call: the next request starts a new epoch from 0.
	impl.failNext = true
	if _, err := c.Allocate(context.Background(), &AllocateRequest{BaseVersion: 3, TargetVersion: 3, Now: 2000}); err == nil {
		t.Fatal("the failing call succeeded")
	}
	cycle(t, c, 3)
	req, out = wire.last()
	if d := req.GetIds(); d.Epoch == epoch || d.Base != 0 || len(d.Added) != 5 || out.IdsEpoch != d.Epoch {
		t.Errorf("after a failure: dictionary %v answered with epoch %d; want a new epoch with all 5 IDs", d, out.IdsEpoch)
	}
	epoch = req.GetIds().Epoch

	// A re-Init resets the dictionary to the new snapshot's IDs.
	snap2 := &Snapshot{Version: 10, Agents: []Agent{{ID: "b1", Total: resources.MustParse("cpus:1"), Active: true}},
		Frameworks: []Framework{{ID: "f1", Roles: []string{"r1"}, Active: true}}}
	if _, err := c.Init(context.Background(), snap2); err != nil {
		t.Fatal(err)
	}
	impl.offers = []Proposal{{FrameworkID: "f1", Role: "r1", AgentID: "b1", Resources: resources.MustParse("cpus:1")}}
	resp = cycle(t, c, 10)
	req, out = wire.last()
	if d := req.GetIds(); d.Epoch == epoch || d.Base != 0 || !slices.Equal(d.Added, []string{"b1", "f1", "r1"}) {
		t.Errorf("after re-Init: dictionary %v, want a new epoch holding b1, f1, r1", d)
	}
	if o := out.Offers[0]; o.AgentHandle != 1 || o.FrameworkHandle != 2 || !proposalsEqual(resp.Offers, impl.offers) {
		t.Errorf("after re-Init: offer %v decoded as %+v", o, resp.Offers)
	}
}

// TestInternedIDsOldPeers: a plugin built before interned IDs ignores the
// dictionary and answers with strings, after which the host stops sending
// it; a host built before sends none and gets strings. Both decode alike.
func TestInternedIDsOldPeers(t *testing.T) {
	offers := []Proposal{{FrameworkID: "f1", Role: "r1", AgentID: "a2", Resources: resources.MustParse("cpus:1")}}
	for _, tc := range []struct {
		name         string
		host, plugin WireOptions
		announced    []bool // per cycle: the request carried ids
	}{
		{"old plugin", WireOptions{}, WireOptions{NoInternedIDs: true}, []bool{true, false, false}},
		{"old host", WireOptions{NoInternedIDs: true}, WireOptions{}, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			impl := &echoPlugin{offers: offers}
			c, wire := wirePair(t, impl, tc.host, tc.plugin)
			if _, err := c.Init(context.Background(), idSnap); err != nil {
				t.Fatal(err)
			}
			for i, announced := range tc.announced {
				deltas := []Delta{{Kind: Allocated, Allocation: &Allocation{FrameworkID: "f1", Role: "r1", AgentID: "a1", Resources: resources.MustParse("cpus:1")}}}
				resp := cycle(t, c, uint64(1+i), deltas...)
				req, out := wire.last()
				if (req.GetIds() != nil) != announced {
					t.Errorf("cycle %d: request carried ids %v, want %v", i, req.GetIds(), announced)
				}
				if out.IdsEpoch != 0 || out.Offers[0].AgentId != "a2" || out.Offers[0].AgentHandle != 0 {
					t.Errorf("cycle %d: response epoch %d offer %v, want strings", i, out.IdsEpoch, out.Offers[0])
				}
				if al := req.Deltas[0].GetAllocated(); al.AgentId != "a1" || al.AgentHandle != 0 {
					t.Errorf("cycle %d: allocation on the wire %v, want strings", i, al)
				}
				if !proposalsEqual(resp.Offers, offers) {
					t.Errorf("cycle %d: offers %+v, want %+v", i, resp.Offers, offers)
				}
			}
			// A re-Init keeps no dictionary for a plugin or host that
			// does not intern.
			if _, err := c.Init(context.Background(), idSnap); err != nil {
				t.Fatal(err)
			}
			cycle(t, c, 1)
			if req, _ := wire.last(); req.GetIds() != nil || len(c.ids.strs) != 0 {
				t.Errorf("after re-Init: request ids %v, host table of %d IDs; want neither", req.GetIds(), len(c.ids.strs))
			}
		})
	}
}

// TestInternedIDsOutOfStep: a dictionary that does not follow what the
// plugin holds is refused with FAILED_PRECONDITION, and a handle past the
// table is an error naming it, on either side.
func TestInternedIDsOutOfStep(t *testing.T) {
	var p pluginIDs
	if err := p.apply(&allocatorpb.IdDictionary{Epoch: 7, Base: 0, Added: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*allocatorpb.IdDictionary{
		{Epoch: 7, Base: 1, Added: []string{"c"}},
		{Epoch: 8, Base: 2, Added: []string{"c"}},
		{Epoch: 0},
	} {
		if err := p.apply(d); err == nil {
			t.Errorf("dictionary %v accepted after epoch 7 with 2 IDs", d)
		}
	}
	if _, err := (idTable{"a"}).decode("", 2, "agent"); err == nil || !strings.Contains(err.Error(), "agent handle 2") {
		t.Errorf("decoding handle 2 of a 1-ID table: %v", err)
	}
	if _, err := allocateResponseFromProto(&allocatorpb.AllocateResponse{Offers: []*allocatorpb.OfferProposal{{AgentHandle: 3}}}, idTable{"a"}); err == nil {
		t.Error("a response naming handle 3 of a 1-ID table decoded")
	}
}

// TestInternedIDsCompaction: once removed agents are most of the
// dictionary, the host rebuilds it without them in a new epoch.
func TestInternedIDsCompaction(t *testing.T) {
	var h hostIDs
	h.reset()
	for i := range 3 * compactAt {
		h.add(strings.Repeat("x", 1+i%7) + string(rune('A'+i%26)) + itoa(i))
	}
	h.add("keep")
	epoch := h.epoch
	var deltas []Delta
	for _, s := range h.strs[:2*compactAt] {
		deltas = append(deltas, Delta{Kind: AgentRemoved, AgentID: s})
	}
	h.noteRemovals(deltas)
	if h.epoch == epoch || len(h.strs) != compactAt+1 || h.enc["keep"] != uint32(compactAt+1) || h.sent != 0 {
		t.Errorf("after removing 2/3 of the IDs: epoch %d (was %d), %d IDs, keep=%d, sent %d", h.epoch, epoch, len(h.strs), h.enc["keep"], h.sent)
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}

func proposalsEqual(a, b []Proposal) bool {
	return slices.EqualFunc(a, b, func(x, y Proposal) bool {
		return x.FrameworkID == y.FrameworkID && x.Role == y.Role && x.AgentID == y.AgentID && x.Resources.Equal(y.Resources)
	})
}
