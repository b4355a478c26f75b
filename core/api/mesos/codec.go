package mesos

import "github.com/corral-project/corral/core/api/mesos/wire"

// The transport helpers live in package wire, shared with the agent's
// executor endpoint; these names keep this package's code short.
const (
	typeJSON     = wire.TypeJSON
	typeProtobuf = wire.TypeProtobuf
	maxBody      = wire.MaxBody
)

var (
	requestType  = wire.RequestType
	responseType = wire.ResponseType
	accepts      = wire.Accepts
	decode       = wire.Decode
	encode       = wire.Encode
	marshalJSON  = wire.MarshalJSON
	appendDouble = wire.AppendDouble
	recordIO     = wire.RecordIO
	textError    = wire.TextError
	readCall     = wire.ReadCall
	deprecated   = wire.Deprecated
)
