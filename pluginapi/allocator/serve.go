package allocator

import (
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Serve runs impl as an allocator plugin until the host ends it. It is the
// whole body of an allocator binary's main. logger should write JSON to
// stderr; stdout belongs to the go-plugin handshake.
func Serve(impl Allocator, logger hclog.Logger) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(impl),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return base.NewGRPCServer(append(opts, recyclingServerOption()))
		},
		Logger: logger,
	})
}
