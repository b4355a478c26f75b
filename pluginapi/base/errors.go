package base

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrPluginUnavailable means the plugin process cannot be reached: it
// exited, crashed, or its connection was closed. Hosts test for it with
// errors.Is to decide between restarting a plugin and blaming its answer.
var ErrPluginUnavailable = errors.New("plugin unavailable")

// HandleRPCError turns an error returned by a gRPC call to a plugin into one
// that callers can reason about without importing gRPC:
//   - nil stays nil;
//   - when ctx ended, the context's error is wrapped, so errors.Is(err,
//     context.DeadlineExceeded) works for timeouts;
//   - Unavailable, and Canceled while ctx is still live (the connection was
//     closed under the call), wrap ErrPluginUnavailable;
//   - Unknown (a plain error returned by the plugin) becomes an error with
//     just the plugin's message, without gRPC's prefix;
//   - anything else is returned unchanged, so status.Code still works.
func HandleRPCError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: %v", ctxErr, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrPluginUnavailable, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%w: %w", ErrPluginUnavailable, err)
	case codes.Unknown:
		return errors.New(st.Message())
	}
	return err
}
