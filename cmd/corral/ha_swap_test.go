package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/core/master"
)

// TestHASwapSurvivesFailover: an allocator swapped in on the leader is
// durable in Consul KV, so the master elected after a kill -9 of that
// leader starts the swapped policy with its config, not the HCL one.
func TestHASwapSurvivesFailover(t *testing.T) {
	skipSwapShort(t)
	c := startHACluster(t, 2)
	l := c.leader("first election")
	conf := filepath.Join(t.TempDir(), "quota.hcl")
	if err := os.WriteFile(conf, []byte("min_offer = \"cpus:0.25\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := setAllocator(t, l, "quota", "-config", conf); code != 0 || out == nil || out.Event != "swap" {
		t.Fatalf("swap on the leader: exit %d, %+v, %s", code, out, errOut)
	}
	c.kill9(l)
	l2 := c.leader("after kill -9 of the leader that swapped")
	st := waitAllocator(t, l2, "the new leader's allocator", 60*time.Second, func(s master.AllocatorStatus) bool {
		return s.Active.Name != ""
	})
	if st.Active.Name != "quota" || !strings.Contains(st.Active.Config, "cpus:0.25") {
		t.Fatalf("new leader %s runs %q with config %q; want quota with the swapped config", l2, st.Active.Name, st.Active.Config)
	}
}
