package master_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// connectedOf counts principal's frameworks with an open subscription.
func connectedOf(m *master.Master, principal string) int {
	n := 0
	for _, f := range m.Snapshot().Frameworks {
		if f.Principal == principal && f.Connected {
			n++
		}
	}
	return n
}

// TestSubscriptionsPerPrincipal: a principal at its cap is refused with
// ResourceExhausted naming it and the cap, its subscriptions and other
// principals' are untouched, a failover re-subscription is not a new
// subscription, a hot standby is, and a closed subscription frees its
// place.
func TestSubscriptionsPerPrincipal(t *testing.T) {
	m, c := startACLMasterWith(t, master.Config{ACLs: &acl.ACLs{Permissive: true}, MaxSubscriptionsPerPrincipal: 2},
		"analytics", "mallory")
	first := c["analytics"].subscribe("one")
	second := c["analytics"].subscribe("two")

	err := subscribeErr(c["analytics"], &corralpb.FrameworkInfo{Name: "three"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a third subscription: %v, want ResourceExhausted", err)
	}
	for _, want := range []string{`principal "analytics"`, "2 scheduler subscriptions", "max_subscriptions_per_principal = 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if n := connectedOf(m, "analytics"); n != 2 {
		t.Fatalf("after the refusal analytics has %d connected frameworks, want its 2 untouched", n)
	}
	// The refused caller's subscriptions still work.
	if _, err := first.client.Revive(context.Background(), &corralpb.ReviveRequest{Header: first.header}); err != nil {
		t.Fatalf("a call on a subscription held before the refusal: %v", err)
	}
	// Another principal has its own count.
	if err := subscribeErr(c["mallory"], &corralpb.FrameworkInfo{Name: "m1"}); err != nil {
		t.Fatalf("mallory's first subscription: %v", err)
	}
	// A failover re-subscription replaces its framework's stream: allowed.
	failover := c["analytics"].subscribeInfo(&corralpb.FrameworkInfo{Id: first.header.FrameworkId, Name: "one"})
	if failover.header.FrameworkId != first.header.FrameworkId {
		t.Fatalf("the failover got framework %s, want %s", failover.header.FrameworkId, first.header.FrameworkId)
	}
	// A hot standby would be a third stream: refused.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := corralpb.NewSchedulerClient(c["analytics"].conn).Subscribe(ctx,
		&corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{Id: second.header.FrameworkId, Name: "two"}, Standby: true})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a standby beyond the cap: %v, want ResourceExhausted", err)
	}

	// Closing a subscription frees its place.
	second.cancel()
	deadline := time.Now().Add(30 * time.Second)
	for connectedOf(m, "analytics") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the closed subscription is still counted as connected after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := subscribeErr(c["analytics"], &corralpb.FrameworkInfo{Name: "three"}); err != nil {
		t.Fatalf("a subscription after one closed: %v", err)
	}
}

// TestSubscriptionsUncapped: 0 is no cap, and anonymous callers are not
// counted.
func TestSubscriptionsUncapped(t *testing.T) {
	_, c := startACLMasterWith(t, master.Config{}, "analytics")
	for i := range 5 {
		if err := subscribeErr(c["analytics"], &corralpb.FrameworkInfo{Name: "f"}); err != nil {
			t.Fatalf("subscription %d without a cap: %v", i, err)
		}
	}
	_, c = startACLMasterWith(t, master.Config{MaxSubscriptionsPerPrincipal: 1}, "analytics")
	for i := range 3 {
		if err := subscribeErr(c[""], &corralpb.FrameworkInfo{Name: "anon"}); err != nil {
			t.Fatalf("anonymous subscription %d: %v", i, err)
		}
	}
}
