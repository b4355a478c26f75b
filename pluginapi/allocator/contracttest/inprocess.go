// Package contracttest holds the checks every allocator plugin must pass,
// and a helper that puts an implementation behind a real go-plugin gRPC
// connection so the same checks also cover the wire.
package contracttest

import (
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/hashicorp/go-plugin"
)

// InProcess serves impl over an in-process go-plugin gRPC connection and
// returns the host's client for it. The connection is closed when t ends.
func InProcess(t testing.TB, impl allocator.Allocator) allocator.Allocator {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, allocator.PluginSet(impl))
	t.Cleanup(func() {
		// Stop the server first: closing the client first would have it
		// ask the server to stop itself, racing with this Stop.
		server.Stop()
		_ = client.Close()
	})
	raw, err := client.Dispense(allocator.PluginName)
	if err != nil {
		t.Fatalf("dispense %s: %v", allocator.PluginName, err)
	}
	a, ok := raw.(allocator.Allocator)
	if !ok {
		t.Fatalf("dispensed %T, want allocator.Allocator", raw)
	}
	return a
}
