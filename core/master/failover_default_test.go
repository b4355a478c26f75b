package master_test

import (
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// A framework that sets no failover_timeout keeps its registration (and
// tasks) when its scheduler disconnects: the default is one week, not
// Mesos's 0.
func TestFailoverTimeoutDefaultsToOneWeek(t *testing.T) {
	c := startMaster(t, master.Config{})
	s := c.subscribeInfo(&corralpb.FrameworkInfo{Name: "no-timeout"})
	id := s.header.FrameworkId
	s.cancel()
	var fv master.FrameworkView
	waitFor(t, "the framework to disconnect", func() bool {
		for _, f := range c.m.Snapshot().Frameworks {
			if f.ID == id && !f.Connected {
				fv = f
				return true
			}
		}
		return false
	})
	if fv.RemovedAt != nil {
		t.Fatalf("framework removed at disconnect: %+v", fv)
	}
	if got, want := c.m.FailoverTimeout(id), 7*24*time.Hour; got != want {
		t.Fatalf("effective failover timeout %v, want %v", got, want)
	}
}
