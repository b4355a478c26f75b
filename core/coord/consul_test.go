package coord_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/coord/consultest"
)

// waitFor is generous: the CI machine has 2 busy cores.
const waitFor = 30 * time.Second

func newMaster(t *testing.T, ag *consultest.Agent, id, addr string) *coord.Consul {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := coord.NewConsul(ctx, coord.ConsulConfig{Address: ag.HTTPAddr, Prefix: "test/corral"}, id, addr, nil,
		hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func campaign(t *testing.T, c coord.Coordinator) <-chan coord.Term {
	ch := make(chan coord.Term, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		term, err := c.Campaign(ctx)
		if err != nil {
			t.Errorf("campaign: %v", err)
		}
		ch <- term
	}()
	return ch
}

func TestConsulElectionRegistryAndResign(t *testing.T) {
	ag := consultest.Start(t)
	a := newMaster(t, ag, "master-a", "127.0.0.1:1001")
	b := newMaster(t, ag, "master-b", "127.0.0.1:1002")
	ctx := context.Background()

	ta := <-campaign(t, a)
	if ta == nil {
		t.Fatal("a was not elected")
	}
	if l, err := b.Leader(ctx); err != nil || l != "127.0.0.1:1001" {
		t.Fatalf("leader seen by b = %q, %v; want a's address", l, err)
	}
	bc := campaign(t, b)

	// Only the leader writes the registry.
	if err := a.Registry().Store(ctx, []byte(`{"roles":{}}`)); err != nil {
		t.Fatalf("leader's registry write: %v", err)
	}
	if err := b.Registry().Store(ctx, []byte(`{"x":1}`)); !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("standby's registry write: err = %v, want ErrNotLeader", err)
	}
	select {
	case <-bc:
		t.Fatal("b elected while a leads")
	default:
	}

	// A clean resignation hands over at once (no lock-delay, no TTL).
	start := time.Now()
	ta.Resign()
	select {
	case <-ta.Lost():
	default:
		t.Fatal("Resign did not end a's term")
	}
	tb := <-bc
	if tb == nil {
		t.Fatal("b was not elected after a resigned")
	}
	t.Logf("handover after resign: %v", time.Since(start))
	if got, err := b.Registry().Load(ctx); err != nil || string(got) != `{"roles":{}}` {
		t.Fatalf("b loads %q, %v; want what a stored", got, err)
	}
	if err := a.Registry().Store(ctx, []byte(`{"stale":true}`)); !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("deposed leader's write: err = %v, want ErrNotLeader", err)
	}
	if err := b.Registry().Store(ctx, []byte(`{"roles":{"b":{}}}`)); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	if l, err := a.Leader(ctx); err != nil || l != "127.0.0.1:1002" {
		t.Fatalf("leader seen by a = %q, %v; want b's address", l, err)
	}
}

// A leader that cannot reach Consul steps down on its own, before its
// session expires there and before the standby is elected.
func TestConsulLeaderStepsDownWhenConsulPauses(t *testing.T) {
	ag := consultest.Start(t)
	a := newMaster(t, ag, "master-a", "127.0.0.1:1001")
	b := newMaster(t, ag, "master-b", "127.0.0.1:1002")
	ta := <-campaign(t, a)
	if ta == nil {
		t.Fatal("a was not elected")
	}
	bc := campaign(t, b)
	if err := ag.Stop(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	select {
	case <-ta.Lost():
		t.Logf("a stepped down %v after Consul paused (check TTL 1s)", time.Since(paused))
	case <-time.After(waitFor):
		_ = ag.Cont()
		t.Fatal("leader did not step down while Consul was paused")
	}
	select {
	case <-bc:
		t.Fatal("b elected while Consul was paused")
	default:
	}
	if err := ag.Cont(); err != nil {
		t.Fatal(err)
	}
	// Consul expires a's session (its check got no refresh), b takes over.
	if tb := <-bc; tb == nil {
		t.Fatal("b was not elected after Consul resumed")
	}
	if err := a.Registry().Store(context.Background(), []byte(`{}`)); !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("deposed leader's write: err = %v, want ErrNotLeader", err)
	}
}
