package master_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestBatchUpdates: the gRPC adapter sends the UPDATE events queued behind
// one together, in order, stops at the first other event (sent next, on
// its own) and at 256 updates, and pops nothing it does not send.
func TestBatchUpdates(t *testing.T) {
	upd := func(id string) *corralpb.Event {
		return &corralpb.Event{Event: &corralpb.Event_Update_{Update: &corralpb.Event_Update{Status: &corralpb.TaskStatus{TaskId: id}}}}
	}
	offers := &corralpb.Event{Event: &corralpb.Event_Offers_{Offers: &corralpb.Event_Offers{}}}
	many := func(n int) []*corralpb.Event {
		var evs []*corralpb.Event
		for i := range n {
			evs = append(evs, upd(fmt.Sprintf("q%d", i)))
		}
		return evs
	}
	// show is an event as the test compares it: "t1", "offers", or
	// "[t1 t2]" for an UPDATES event.
	show := func(ev *corralpb.Event) string {
		switch {
		case ev == nil:
			return ""
		case ev.GetUpdate() != nil:
			return ev.GetUpdate().GetStatus().GetTaskId()
		case ev.GetUpdates() != nil:
			var ids []string
			for _, u := range ev.GetUpdates().GetUpdates() {
				ids = append(ids, u.GetStatus().GetTaskId())
			}
			if len(ids) > 4 {
				ids = append(ids[:2], "...", fmt.Sprint(len(ids)))
			}
			return "[" + strings.Join(ids, " ") + "]"
		case ev.GetOffers() != nil:
			return "offers"
		}
		return "?"
	}
	cases := []struct {
		name       string
		queued     []*corralpb.Event
		send, held string
		left       int // events still queued after
	}{
		{"nothing queued", nil, "t0", "", 0},
		{"updates queued", []*corralpb.Event{upd("t1"), upd("t2"), upd("t0")}, "[t0 t1 t2 t0]", "", 0},
		{"another event behind", []*corralpb.Event{upd("t1"), offers, upd("t2")}, "[t0 t1]", "offers", 1},
		{"another event first", []*corralpb.Event{offers, upd("t1")}, "t0", "offers", 1},
		{"more than a batch", many(300), "[t0 q0 ... 256]", "", 45},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			queue := slices.Clone(tc.queued)
			poll := func() (*corralpb.Event, bool) {
				if len(queue) == 0 {
					return nil, false
				}
				ev := queue[0]
				queue = queue[1:]
				return ev, true
			}
			send, held := master.BatchUpdates(upd("t0"), poll)
			if show(send) != tc.send || show(held) != tc.held || len(queue) != tc.left {
				t.Errorf("sent %q, held %q, %d left; want %q, %q, %d", show(send), show(held), len(queue), tc.send, tc.held, tc.left)
			}
		})
	}
}
