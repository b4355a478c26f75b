package process

import (
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/pluginapi/plugintest"
)

// TestRealBinary drives the built plugin through go-plugin, as the agent does.
func TestRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin binary")
	}
	inst := plugintest.Start(t, base.KindIsolator, plugintest.Binary(t, "corral-isolator-process", "./cmd"))
	iso := inst.Raw.(isolator.Isolator)
	ctx := testCtx(t)

	info, err := iso.PluginInfo(ctx)
	if err != nil || info.Name != Name || info.Kind != "isolator" {
		t.Fatalf("PluginInfo = %+v, %v", info, err)
	}
	if err := iso.SetConfig(ctx, []byte(`{"rlimits": {"nofiles": "1"}}`), "v1"); err == nil {
		t.Error("SetConfig with an unknown rlimit succeeded over the wire")
	}
	if err := iso.SetConfig(ctx, []byte(`{"rlimits": {"core": "0:unlimited"}}`), "v1"); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	spec, err := iso.Prepare(ctx, isolator.PrepareRequest{ContainerID: "it", SandboxDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !spec.NewSession || len(spec.Rlimits) != 1 || spec.Rlimits[0] != (isolator.Rlimit{Name: "core", Soft: 0, Hard: ^uint64(0)}) {
		t.Errorf("Prepare = %+v, want a new session and core 0:unlimited", spec)
	}

	s := startSession(t, `sleep 300 & sleep 300 & wait`)
	if err := iso.Isolate(ctx, "it", s.pid); err != nil {
		t.Fatalf("Isolate: %v", err)
	}
	var u []isolator.Usage
	poll(t, 10*time.Second, "three processes in the usage", func() bool {
		u, err = iso.Usage(ctx, []string{"it"})
		return err == nil && len(u) == 1 && u[0].Found && u[0].Processes == 3 && u[0].MemRSSBytes > 0
	})
	if err := iso.Cleanup(ctx, "it"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("session leader still running 10s after Cleanup")
	}
	if u, err := iso.Usage(ctx, []string{"it"}); err != nil || u[0].Found {
		t.Errorf("Usage after Cleanup = %+v, %v; want Found=false", u, err)
	}

	inst.Kill()
	if !inst.Exited() {
		t.Error("plugin process still running after Kill")
	}
}
