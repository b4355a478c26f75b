package allocator

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"github.com/corral-project/corral/sdk/resources"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// numbered answers every request with offers named after its logical time,
// as many as the time's last digit plus a thousand.
type numbered struct{ Allocator }

func (numbered) Allocate(_ context.Context, req *AllocateRequest) (*AllocateResponse, error) {
	n := 1000 + int(req.Now%10)
	resp := &AllocateResponse{AppliedVersion: req.TargetVersion, Offers: make([]Proposal, n)}
	for i := range resp.Offers {
		resp.Offers[i] = Proposal{FrameworkID: fmt.Sprint("f", req.Now), Role: "r", AgentID: fmt.Sprint("a", i),
			Resources: resources.NewScalar("cpus", float64(1+i%3))}
	}
	return resp, nil
}

// TestRecycledResponses: with the recycling codec, concurrent calls each
// get their own response intact (a buffer handed back before its response
// was marshalled would show another call's offers), and the buffers do go
// back (nothing stays leased).
func TestRecycledResponses(t *testing.T) {
	t.Cleanup(func() { recycling.Store(false) })
	srv := grpc.NewServer(recyclingServerOption())
	allocatorpb.RegisterAllocatorServer(srv, &server{impl: numbered{}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	rpc := allocatorpb.NewAllocatorClient(conn)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				now := int64(w*100 + i)
				p, err := rpc.Allocate(context.Background(), &allocatorpb.AllocateRequest{BaseVersion: 1, TargetVersion: 1, LogicalNowMs: now})
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := allocateResponseFromProto(p, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if want := 1000 + int(now%10); len(resp.Offers) != want {
					t.Errorf("call %d: %d offers, want %d", now, len(resp.Offers), want)
					return
				}
				for j, o := range resp.Offers {
					if o.FrameworkID != fmt.Sprint("f", now) || o.AgentID != fmt.Sprint("a", j) ||
						!o.Resources.Equal(resources.NewScalar("cpus", float64(1+j%3))) {
						t.Errorf("call %d offer %d = %+v", now, j, o)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	leasedMu.Lock()
	defer leasedMu.Unlock()
	if len(leased) != 0 {
		t.Errorf("%d responses still leased after every call returned", len(leased))
	}
}
