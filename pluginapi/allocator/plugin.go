package allocator

import (
	"context"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// GRPCPlugin connects an Allocator to go-plugin. The plugin binary sets
// Impl; the host leaves it nil and gets an Allocator from Dispense.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Allocator
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the allocator and base services on s.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	allocatorpb.RegisterAllocatorServer(s, &server{impl: p.Impl})
	base.RegisterServer(s, p.Impl)
	return nil
}

// GRPCClient returns an Allocator that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return NewClient(conn), nil
}

// PluginSet is the go-plugin plugin set for an allocator: impl in the
// plugin binary, nil in the host.
func PluginSet(impl Allocator) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
