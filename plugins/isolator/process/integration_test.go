package process

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// pluginBinary returns the built corral-isolator-process: from
// $CORRAL_BIN_DIR (set by `make test`) or built now into a temp dir.
func pluginBinary(t *testing.T) string {
	t.Helper()
	const name = "corral-isolator-process"
	if dir := os.Getenv("CORRAL_BIN_DIR"); dir != "" {
		bin := filepath.Join(dir, "plugins", name)
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("CORRAL_BIN_DIR is set but: %v", err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", bin, "./cmd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd: %v\n%s", err, out)
	}
	return bin
}

// TestRealBinary drives the built plugin through go-plugin, as the agent does.
func TestRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin binary")
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  isolator.Handshake,
		Plugins:          isolator.PluginSet(nil),
		Cmd:              exec.Command(pluginBinary(t)),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr, Level: hclog.Warn}),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	raw, err := rpc.Dispense(isolator.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	iso := raw.(isolator.Isolator)
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

	client.Kill()
	if !client.Exited() {
		t.Error("plugin process still running after Kill")
	}
}
