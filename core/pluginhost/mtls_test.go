package pluginhost

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/procfs"
)

// TestExecutorMutualTLSAcrossReattach: an executor started with AutoMTLS
// checkpoints the host's side of the TLS; a later host reattaches with it
// and talks to the same process, while a host without it (plain text) or
// with another client certificate is refused, and the executor lives on.
func TestExecutorMutualTLSAcrossReattach(t *testing.T) {
	ctx := context.Background()
	opts := execOptions(t)
	inst, info, err := StartExecutor(ctx, execSpec(), opts)
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, inst.Pid())
	if info.TLS == nil || !strings.Contains(info.TLS.ClientKey, "PRIVATE KEY") || !strings.Contains(info.TLS.ServerCert, "CERTIFICATE") {
		t.Fatalf("reattach info carries no TLS: %+v", info.TLS)
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var saved ReattachInfo
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	inst.Detach()

	// Without the TLS state: the executor's server speaks only TLS.
	plain := saved
	plain.TLS = nil
	short := opts
	short.StartTimeout = 3 * time.Second
	if again, err := ReattachExecutor(ctx, execSpec(), &plain, short); err == nil {
		again.Detach()
		t.Fatal("a host without the executor's TLS state reattached in plain text")
	}
	// Another host's certificate: the executor trusts only the one it was
	// started with.
	other, otherInfo, err := StartExecutor(ctx, execSpec(), execOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, other.Pid())
	forged := saved
	forged.TLS = &ReattachTLS{ClientCert: otherInfo.TLS.ClientCert, ClientKey: otherInfo.TLS.ClientKey, ServerCert: saved.TLS.ServerCert}
	if again, err := ReattachExecutor(ctx, execSpec(), &forged, short); err == nil {
		again.Detach()
		t.Fatal("a host with another client certificate reattached")
	}
	if !procfs.Alive(saved.Pid, saved.StartTicks) {
		t.Fatal("a refused reattach killed the executor")
	}

	again, err := ReattachExecutor(ctx, execSpec(), &saved, opts)
	if err != nil {
		t.Fatalf("reattach with the checkpointed TLS state: %v", err)
	}
	if v := version(t, again); v.Pid != saved.Pid {
		t.Errorf("reattached Version pid %d, want %d", v.Pid, saved.Pid)
	}
	again.Kill()
	other.Kill()
}
