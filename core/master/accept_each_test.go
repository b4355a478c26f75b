package master_test

import (
	"slices"
	"testing"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestAcceptEach: Mesos's per-task semantics. Invalid tasks and tasks that
// no longer fit are refused one by one, the others launch, and a
// whole-call problem (a stale offer) still refuses everything.
func TestAcceptEach(t *testing.T) {
	c := startMaster(t, master.Config{})
	a := c.addAgent("a1", "cpus:2;mem:1024")
	f := c.subscribe("fw")
	o := f.offers()[0]
	refused, err := c.m.AcceptEach(&corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o.Id}, Operations: launch(
		task("ok", "cpus:1;mem:128"), task("big", "cpus:100"), task("ok", "cpus:0.5"), task("", "cpus:0.1"), task("fits", "cpus:1"),
		task("over", "cpus:0.5"))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range refused {
		if master.ErrorCode(r.Err) != master.CodeInvalid {
			t.Errorf("refusal of %q: %v, want CodeInvalid", r.TaskID, r.Err)
		}
		ids = append(ids, r.TaskID)
	}
	if want := []string{"big", "ok", "", "over"}; !slices.Equal(ids, want) {
		t.Errorf("refused %q, want %q", ids, want)
	}
	for _, want := range []string{"ok", "fits"} {
		if got := a.next("run task").GetRunTask().GetTask().GetTaskId(); got != want {
			t.Fatalf("agent runs %q, want %q", got, want)
		}
	}
	if _, err := c.m.AcceptEach(&corralpb.AcceptRequest{Header: f.header, OfferIds: []string{o.Id},
		Operations: launch(task("late", "cpus:0.1"))}); master.ErrorCode(err) != master.CodeNotFound {
		t.Errorf("used offer: %v, want CodeNotFound", err)
	}
}
