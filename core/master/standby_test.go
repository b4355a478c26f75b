package master_test

import (
	"context"
	"testing"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// A hot-standby scheduler waits without events while the active one is
// connected, and is promoted (SUBSCRIBED, same framework ID) when the
// active one's stream ends; the framework is never disconnected.
func TestHotStandbySchedulerPromotedOnDisconnect(t *testing.T) {
	c := startMaster(t, master.Config{})
	active := c.subscribeInfo(&corralpb.FrameworkInfo{Name: "svc", FailoverTimeoutSeconds: 60})
	id := active.header.FrameworkId

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := corralpb.NewSchedulerClient(c.conn).Subscribe(ctx, &corralpb.SubscribeRequest{
		Framework: &corralpb.FrameworkInfo{Id: id, Name: "svc", FailoverTimeoutSeconds: 60}, Standby: true})
	if err != nil {
		t.Fatal(err)
	}
	view := func() master.FrameworkView {
		for _, f := range c.m.Snapshot().Frameworks {
			if f.ID == id {
				return f
			}
		}
		t.Fatalf("framework %s gone", id)
		return master.FrameworkView{}
	}
	waitFor(t, "the standby to be parked", func() bool { return view().StandbySchedulers == 1 })
	if !view().Connected {
		t.Fatal("the active scheduler lost the framework to its standby")
	}

	active.cancel()
	ev, err := stream.Recv()
	if err != nil {
		t.Fatalf("standby stream: %v", err)
	}
	sub := ev.GetSubscribed()
	if sub == nil || sub.GetFrameworkId() != id {
		t.Fatalf("first event to the standby: %v; want SUBSCRIBED for %s", ev, id)
	}
	v := view()
	if !v.Connected || v.StandbySchedulers != 0 {
		t.Fatalf("after promotion: connected=%v standbys=%d", v.Connected, v.StandbySchedulers)
	}
	// The promoted scheduler's calls are accepted on its stream.
	if _, err := corralpb.NewSchedulerClient(c.conn).Revive(ctx, &corralpb.ReviveRequest{
		Header: &corralpb.CallHeader{FrameworkId: id, StreamId: sub.GetStreamId()}}); err != nil {
		t.Fatalf("revive from the promoted standby: %v", err)
	}
}
