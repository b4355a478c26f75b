// Package contracttest holds the checks every executor plugin must pass,
// and a helper that puts an implementation behind a real go-plugin gRPC
// connection (broker included) so the same checks also cover the wire.
package contracttest

import (
	"testing"

	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/hashicorp/go-plugin"
)

// InProcess serves impl over an in-process go-plugin gRPC connection and
// returns the host's client for it. The connection is closed when t ends.
func InProcess(t *testing.T, impl executor.Executor) executor.Executor {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, executor.PluginSet(impl))
	t.Cleanup(func() {
		// Stop the server first: closing the client first would have it
		// ask the server to stop itself, racing with this Stop.
		server.Stop()
		_ = client.Close()
	})
	raw, err := client.Dispense(executor.PluginName)
	if err != nil {
		t.Fatalf("dispense %s: %v", executor.PluginName, err)
	}
	e, ok := raw.(executor.Executor)
	if !ok {
		t.Fatalf("dispensed %T, want executor.Executor", raw)
	}
	return e
}
