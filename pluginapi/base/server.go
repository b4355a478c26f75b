package base

import "google.golang.org/grpc"

// MaxMessageSize bounds a single gRPC message between host and plugin. A
// large cluster's Allocate request (all deltas of one cycle) or response
// must fit; the snapshot is chunked and does not depend on it.
const MaxMessageSize = 64 << 20

// NewGRPCServer is the gRPC server constructor every plugin kind hands to
// go-plugin (ServeConfig.GRPCServer and GRPCBroker.AcceptAndServe). It
// keeps go-plugin's options (TLS when enabled) and raises the message
// size limits above gRPC's 4 MiB default.
func NewGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
	)
	return grpc.NewServer(opts...)
}
