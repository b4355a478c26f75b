package agentproto

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Handshake is the agent's half of registration, shared by core/agent and
// the emulated agents: open the Connect stream on ctx (cancelling ctx ends
// it), send the Register message, and wait for Registered. A master that
// ends the stream at once (a standby's redirect, a refused secret) is
// reported with its own status, which discovery.LeaderFrom reads.
func Handshake(ctx context.Context, client AgentGatewayClient, register *AgentMessage) (AgentGateway_ConnectClient, *Registered, error) {
	stream, err := client.Connect(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open stream: %w", err)
	}
	if err := stream.Send(register); err != nil {
		// io.EOF means the master ended the stream; its status comes
		// with Recv.
		if _, rerr := stream.Recv(); errors.Is(err, io.EOF) && rerr != nil {
			err = rerr
		}
		return nil, nil, fmt.Errorf("send register: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, fmt.Errorf("await registered: %w", err)
	}
	reg := first.GetRegistered()
	if reg == nil {
		return nil, nil, fmt.Errorf("master answered registration with %T, want Registered", first.GetMsg())
	}
	return stream, reg, nil
}
