package master_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/plugins/allocator/drf"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// A framework that suppresses while the plugin computes a cycle gets no
// offer from that cycle. The proposals the plugin made for it, on the view
// it was sent, are counted stale, not as an allocator fault: a plugin
// that offers to a suppressed framework is faulty, one that was not told
// yet is not.
func TestProposalsOvertakenWhileAllocatingAreNoFault(t *testing.T) {
	plugin := drf.NewPlugin()
	if err := plugin.SetConfig(context.Background(), []byte("{}"), "v2"); err != nil {
		t.Fatal(err)
	}
	g := &gatedAllocator{entered: make(chan struct{}), release: make(chan struct{})}
	c := startMasterWith(t, master.Config{},
		wrappedAllocator{fixedAllocator{plugin}, func(a allocator.Allocator) allocator.Allocator { return gated{a, g} }})
	c.addAgent("", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	o := f.offers()[0]

	// The cycle that hears of the declined resources is held in the plugin
	// until the framework has suppressed.
	g.arm()
	if _, err := f.client.Decline(context.Background(), &corralpb.DeclineRequest{Header: f.header, OfferIds: []string{o.Id},
		Filters: &corralpb.Filters{RefuseSeconds: ptr(0.0)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no allocation cycle carried the declined resources to the plugin")
	}
	if _, err := f.client.Suppress(context.Background(), &corralpb.SuppressRequest{Header: f.header}); err != nil {
		t.Fatal(err)
	}
	close(g.release)

	reg := c.m.Registry()
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, reg, "corral_master_allocator_stale_proposals_total", nil) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the proposal made before the suppress was not counted stale")
		}
	}
	if n := metricValue(t, reg, "corral_plugin_errors_total", map[string]string{"kind": "invalid_proposals"}); n != 0 {
		t.Errorf("%v allocator faults for invalid proposals, want 0", n)
	}
	select {
	case ev := <-f.events:
		if ev.GetOffers() != nil {
			t.Fatalf("offer to a suppressed framework: %v", ev)
		}
	default:
	}
}

// gatedAllocator holds, once armed, the first Allocate call that carries
// recovered resources until release is closed (through gated, which wraps
// the real DRF plugin).
type gatedAllocator struct {
	entered, release chan struct{}

	mu    sync.Mutex
	armed bool
}

func (g *gatedAllocator) arm() {
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
}

type gated struct {
	allocator.Allocator
	g *gatedAllocator
}

func (w gated) Allocate(ctx context.Context, req *allocator.AllocateRequest) (*allocator.AllocateResponse, error) {
	w.g.mu.Lock()
	hold := false
	if w.g.armed {
		for _, d := range req.Deltas {
			if d.Kind == allocator.Recovered {
				hold, w.g.armed = true, false
			}
		}
	}
	w.g.mu.Unlock()
	if hold {
		close(w.g.entered)
		select {
		case <-w.g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return w.Allocator.Allocate(ctx, req)
}
