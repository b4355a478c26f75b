package cgroups

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/pluginapi/plugintest"
	"github.com/corral-project/corral/sdk/resources"
)

// TestRealBinary drives the built plugin through go-plugin, as the agent
// does: config, limits, usage and cleanup over the wire.
func TestRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin binary")
	}
	h := needRoot(t)
	inst := plugintest.Start(t, base.KindIsolator, plugintest.Binary(t, "corral-isolator-cgroups", "github.com/corral-project/corral/plugins/isolator/cgroups/cmd"))
	iso := inst.Raw.(isolator.Isolator)
	ctx := testCtx(t)

	info, err := iso.PluginInfo(ctx)
	if err != nil || info.Name != Name || info.Kind != base.KindIsolator {
		t.Fatalf("PluginInfo = %+v, %v", info, err)
	}
	if err := iso.SetConfig(ctx, []byte(`{"pids_limit": -3}`), "v1"); err == nil {
		t.Error("SetConfig with a negative pids_limit succeeded over the wire")
	}
	parent := fmt.Sprintf("%s/%d-bin-{agent_id}", testRoot, os.Getpid())
	cfg, _ := json.Marshal(map[string]any{"parent": parent, "pids_limit": 10})
	if err := iso.SetConfig(ctx, cfg, "v1"); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	agentParent := fmt.Sprintf("%s/%d-bin-agent-7", testRoot, os.Getpid())
	t.Cleanup(func() { checkNoCgroupsLeft(t, h, agentParent) })
	if orphans, err := iso.Recover(ctx, "agent-7", nil); err != nil || len(orphans) != 0 {
		t.Fatalf("Recover = %v, %v; want no orphans", orphans, err)
	}
	if _, err := iso.Prepare(ctx, isolator.PrepareRequest{ContainerID: "bin", AgentID: "agent-7",
		Resources: resources.MustParse("cpus:0.5;mem:16"), SandboxDir: t.TempDir()}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !h.Exists(agentParent + "/bin") {
		t.Fatalf("no cgroup at %s/bin: the agent ID did not make the parent", agentParent)
	}
	w := start(t, iso, "bin", shell("exec sleep 600"))
	var u []isolator.Usage
	waitFor(t, time.Minute, "usage of the running container", func() bool {
		u, err = iso.Usage(ctx, []string{"bin"})
		return err == nil && len(u) == 1 && u[0].Found && u[0].Processes == 1
	})
	if u[0].MemLimitBytes != 16*mib || u[0].PidsLimit != 10 {
		t.Errorf("usage over the wire = %+v, want limit 16 MiB and pids 10", u[0])
	}
	if err := iso.Cleanup(ctx, "bin"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("task still running a minute after Cleanup")
	}
	inst.Kill()
}
