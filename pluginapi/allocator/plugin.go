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
	// Wire tunes the wire protocol of the side this plugin set builds.
	Wire WireOptions
}

// WireOptions turn off optional parts of the wire protocol on one side,
// which then behaves as a host or plugin built before them: for tests of
// compatibility between versions, and to rule a part out when debugging.
// The zero value uses everything.
type WireOptions struct {
	// NoInternedIDs: a host does not announce an ID dictionary, a plugin
	// ignores one and answers with strings (see idtable.go).
	NoInternedIDs bool
	// NoCompactRefs: a host never sends offer references in the compact
	// forms of WIRE_REF_RANGES, a plugin does not announce that it reads
	// them.
	NoCompactRefs bool
	// NoMetricDeltas: a host always asks for all metrics (no
	// metrics_base), a plugin always sends them all (see metrics.go).
	NoMetricDeltas bool
	// NoOfferColumns: a host does not announce that it reads offers in
	// columns (WIRE_OFFER_COLUMNS), a plugin never sends them.
	NoOfferColumns bool
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the allocator and base services on s.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: p.Impl, wire: p.Wire}
	srv.ids.off = p.Wire.NoInternedIDs
	allocatorpb.RegisterAllocatorServer(s, srv)
	base.RegisterServer(s, p.Impl)
	return nil
}

// GRPCClient returns an Allocator that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return newClient(conn, p.Wire), nil
}

// PluginSet is the go-plugin plugin set for an allocator: impl in the
// plugin binary, nil in the host.
func PluginSet(impl Allocator) plugin.PluginSet {
	return PluginSetWith(impl, WireOptions{})
}

// PluginSetWith is PluginSet with wire options.
func PluginSetWith(impl Allocator, opts WireOptions) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl, Wire: opts}}
}
