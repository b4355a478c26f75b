package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthServer is a gRPC server whose health service reports only name as
// serving: which server answered tells the role.
func healthServer(name string) *grpc.Server {
	g := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	return g
}

// One cleartext port: HTTP/1.1 reaches net/http, gRPC reaches the current
// gRPC server natively; after a role change the client's next call reaches
// the new server (the old one's connections were closed), and HTTP is
// unaffected throughout.
func TestPortSplitRoutesAndSwitchesGRPCServers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newPortSplit(l, hclog.NewNullLogger())
	defer p.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "http "+r.Proto)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(p.HTTP()) }()
	defer srv.Close()
	p.serve(healthServer("standby"))

	get := func() string {
		t.Helper()
		resp, err := http.Get("http://" + l.Addr().String() + "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "http HTTP/1.1" {
		t.Fatalf("HTTP/1.1 answered %q", got)
	}

	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	serving := func(name string) (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			return false, err
		}
		return resp.Status == healthpb.HealthCheckResponse_SERVING, nil
	}
	if ok, err := serving("standby"); err != nil || !ok {
		t.Fatalf("gRPC call to the first server: serving=%v err=%v", ok, err)
	}

	// The role changes: new connections go to the leader's server and the
	// standby's are closed, so the same ClientConn ends up there.
	p.serve(healthServer("leader"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, err := serving("leader"); err == nil && ok {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the client never reached the second server: serving=%v err=%v", ok, err)
		}
	}
	if got := get(); got != "http HTTP/1.1" {
		t.Fatalf("HTTP/1.1 after the switch answered %q", got)
	}

	// A connection that sends a short non-HTTP/2 start is HTTP's at once
	// (not after the sniffing timeout), and one that sends nothing and
	// closes is dropped.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout / 2))
	b, err := io.ReadAll(c)
	if err != nil || !strings.Contains(string(b), "http HTTP/1.0") {
		t.Fatalf("short HTTP/1.0 request: %q, %v", b, err)
	}
	probe, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()

	// Closed: the port refuses.
	p.Close()
	if _, err := serving("leader"); err == nil {
		t.Fatal("gRPC call succeeded after the port closed")
	}
}
