package mesos

import (
	"errors"

	"github.com/corral-project/corral/core/api/mesos/wire"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

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

// writeEvent sends one event on a subscription's stream: false once the
// client is gone. An event that cannot be encoded is logged and skipped.
func writeEvent(log hclog.Logger, s *wire.Stream, ev proto.Message, typ string) bool {
	err := s.Write(ev)
	var ee *wire.EncodeError
	if errors.As(err, &ee) {
		log.Error("encoding an event failed", "type", typ, "error", ee.Err)
		return true
	}
	return err == nil
}
