package executor

import (
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Serve runs impl as an executor plugin until the host ends it. logger
// should write JSON to stderr; stdout belongs to the go-plugin handshake.
// The host starts executors with AutoMTLS off so that a restarted agent can
// reattach to them from the checkpointed ReattachConfig alone.
func Serve(impl Executor, logger hclog.Logger) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(impl),
		GRPCServer:      base.NewGRPCServer,
		Logger:          logger,
	})
}
