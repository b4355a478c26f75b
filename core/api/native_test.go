package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corral-project/corral/core/api"
	"github.com/corral-project/corral/sdk/discovery"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestSwitchServesGRPCAndHTTPOnOnePort: on a plaintext port gRPC (h2c)
// connections go to the current gRPC server and HTTP/1.1 requests to the
// HTTP handler; a Set closes the connections of the previous gRPC server,
// so a connected client's next calls reach the new one.
func TestSwitchServesGRPCAndHTTPOnOnePort(t *testing.T) {
	a := api.StandbyGRPC(func() string { return "10.0.0.1:5050" })
	b := api.StandbyGRPC(func() string { return "10.0.0.2:5050" })
	defer a.Stop()
	defer b.Stop()
	var sw api.Switch
	sw.Set(a, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "http "+r.URL.Path) }))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sw.Serve(ctx, l, nil, hclog.NewNullLogger()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	resp, err := http.Get("http://" + l.Addr().String() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "http /x" {
		t.Fatalf("HTTP/1.1 GET /x: %q; want the HTTP handler's %q", body, "http /x")
	}

	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := corralpb.NewSchedulerClient(conn)
	leader := func() string {
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := client.Decline(callCtx, &corralpb.DeclineRequest{})
		l, _ := discovery.LeaderFrom(err)
		return l
	}
	if got := leader(); got != "10.0.0.1:5050" {
		t.Fatalf("gRPC call: leader %q; want the first server's 10.0.0.1:5050", got)
	}
	sw.Set(b, nil, http.NotFoundHandler())
	// The client's connection to a was closed; it reconnects and reaches b.
	deadline := time.Now().Add(30 * time.Second)
	for got := leader(); got != "10.0.0.2:5050"; got = leader() {
		if time.Now().After(deadline) {
			t.Fatalf("gRPC call after Set: leader %q; want the new server's 10.0.0.2:5050", got)
		}
	}
}
