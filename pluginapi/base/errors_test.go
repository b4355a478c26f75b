package base

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestHandleRPCError(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name        string
		ctx         context.Context
		err         error
		unavailable bool
		ctxErr      error
		code        codes.Code // checked when not unavailable and no ctxErr
		msg         string     // exact message when set
	}{
		{name: "unavailable", ctx: live, err: status.Error(codes.Unavailable, "connection refused"), unavailable: true},
		{name: "conn closed under call", ctx: live, err: status.Error(codes.Canceled, "grpc: the client connection is closing"), unavailable: true},
		{name: "eof", ctx: live, err: fmt.Errorf("recv: %w", io.EOF), unavailable: true},
		{name: "caller canceled", ctx: ended, err: status.Error(codes.Canceled, "context canceled"), ctxErr: context.Canceled},
		{name: "plugin error", ctx: live, err: status.Error(codes.Unknown, "bad config: x"), code: codes.Unknown, msg: "bad config: x"},
		{name: "typed status kept", ctx: live, err: status.Error(codes.InvalidArgument, "no"), code: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HandleRPCError(tt.ctx, tt.err)
			if got == nil {
				t.Fatal("got nil error")
			}
			if errors.Is(got, ErrPluginUnavailable) != tt.unavailable {
				t.Errorf("errors.Is(%v, ErrPluginUnavailable) = %v, want %v", got, !tt.unavailable, tt.unavailable)
			}
			if tt.ctxErr != nil && !errors.Is(got, tt.ctxErr) {
				t.Errorf("errors.Is(%v, %v) = false", got, tt.ctxErr)
			}
			if !tt.unavailable && tt.ctxErr == nil && tt.msg == "" && status.Code(got) != tt.code {
				t.Errorf("status.Code(%v) = %v, want %v", got, status.Code(got), tt.code)
			}
			if tt.msg != "" && got.Error() != tt.msg {
				t.Errorf("message = %q, want %q", got.Error(), tt.msg)
			}
		})
	}
	if HandleRPCError(live, nil) != nil {
		t.Error("HandleRPCError(nil) != nil")
	}
}
