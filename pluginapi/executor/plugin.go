package executor

import (
	"context"

	"github.com/corral-project/corral/pluginapi/base"
	executorpb "github.com/corral-project/corral/pluginapi/executor/proto"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// GRPCPlugin connects an Executor to go-plugin. The plugin binary sets Impl;
// the host leaves it nil and gets an Executor from Dispense. Both sides use
// the broker: the host serves a ContainerService on it for each Launch.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Executor
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the executor and base services on s.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	executorpb.RegisterExecutorServer(s, &server{impl: p.Impl, broker: broker})
	base.RegisterServer(s, p.Impl)
	return nil
}

// GRPCClient returns an Executor that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return NewClient(conn, broker), nil
}

// PluginSet is the go-plugin plugin set for an executor: impl in the plugin
// binary, nil in the host.
func PluginSet(impl Executor) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
