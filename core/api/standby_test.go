package api_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corral-project/corral/core/api"
	"github.com/corral-project/corral/sdk/discovery"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

func TestStandbyServesReadsAndRedirectsTheRest(t *testing.T) {
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("local")) })
	leader := "10.0.0.1:5050"
	h := api.Standby(local, func() string { return leader })
	cases := []struct {
		method, target string
		code           int
		location       string
	}{
		{"GET", "/api/v1/state", 200, ""},
		{"GET", "/api/v1/roles/eng/ml", 200, ""},
		{"GET", "/health", 200, ""},
		{"GET", "/metrics", 200, ""},
		{"PUT", "/api/v1/roles/eng", 307, "//10.0.0.1:5050/api/v1/roles/eng"},
		{"POST", "/api/v1/allocator?wait=1", 307, "//10.0.0.1:5050/api/v1/allocator?wait=1"},
		{"POST", "/api/v1/scheduler", 307, "//10.0.0.1:5050/api/v1/scheduler"},
		{"POST", "/master/api/v1/scheduler", 307, "//10.0.0.1:5050/master/api/v1/scheduler"},
		{"POST", "/api/v1", 307, "//10.0.0.1:5050/api/v1"},
		{"GET", "/state", 307, "//10.0.0.1:5050/state"},
		{"GET", "/api/v1/agents/a1/sandbox/f/t/stdout", 307, "//10.0.0.1:5050/api/v1/agents/a1/sandbox/f/t/stdout"},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, strings.NewReader("{}")))
		if rec.Code != tc.code || rec.Header().Get("Location") != tc.location {
			t.Errorf("%s %s: %d Location %q; want %d %q", tc.method, tc.target, rec.Code, rec.Header().Get("Location"), tc.code, tc.location)
		}
	}
	leader = ""
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/api/v1/roles/eng", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("no leader: %d Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestStandbyGRPCRedirectsEveryCall(t *testing.T) {
	g := api.StandbyGRPC(func() string { return "10.0.0.2:5050" })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, l, nil, g, http.NotFoundHandler(), hclog.NewNullLogger()) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := corralpb.NewSchedulerClient(conn)
	_, err = client.Decline(ctx, &corralpb.DeclineRequest{})
	if leader, ok := discovery.LeaderFrom(err); !ok || leader != "10.0.0.2:5050" {
		t.Fatalf("unary call on a standby: %v; want a redirect to 10.0.0.2:5050", err)
	}
	stream, err := client.Subscribe(ctx, &corralpb.SubscribeRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if leader, ok := discovery.LeaderFrom(err); !ok || leader != "10.0.0.2:5050" {
		t.Fatalf("subscribe on a standby: %v; want a redirect to 10.0.0.2:5050", err)
	}
}
