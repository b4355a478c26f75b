package isolator

import (
	"context"

	"github.com/corral-project/corral/pluginapi/base"
	isolatorpb "github.com/corral-project/corral/pluginapi/isolator/proto"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// GRPCPlugin connects an Isolator to go-plugin. The plugin binary sets Impl;
// the host leaves it nil and gets an Isolator from Dispense.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Isolator
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the isolator and base services on s.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	isolatorpb.RegisterIsolatorServer(s, &server{impl: p.Impl})
	base.RegisterServer(s, p.Impl)
	return nil
}

// GRPCClient returns an Isolator that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return NewClient(conn), nil
}

// PluginSet is the go-plugin plugin set for an isolator: impl in the plugin
// binary, nil in the host.
func PluginSet(impl Isolator) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
