package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/sdk/acl"
)

func testCreds(t *testing.T) *acl.Credentials {
	t.Helper()
	c, err := acl.ParseCredentials([]byte(`{"credentials": [
		{"principal": "analytics", "secret": "s3cret"},
		{"principal": "etl", "secret": "shared"},
		{"principal": "reports", "secret": "shared"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func certState(cn string) *tls.ConnectionState {
	return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
}

func TestMiddleware(t *testing.T) {
	a := &Authenticator{Credentials: testCreds(t)}
	for _, tc := range []struct {
		name      string
		tls       *tls.ConnectionState
		header    string
		code      int
		principal string
		want      string
	}{
		{"anonymous", nil, "", http.StatusOK, "", ""},
		{"client certificate", certState("ops"), "", http.StatusOK, "ops", ""},
		{"basic credentials", nil, acl.BasicAuth("analytics", "s3cret"), http.StatusOK, "analytics", ""},
		{"certificate and the same principal's credentials", certState("analytics"), acl.BasicAuth("analytics", "x"), http.StatusOK, "analytics", ""},
		{"wrong secret", nil, acl.BasicAuth("analytics", "nope"), http.StatusUnauthorized, "", "unknown principal or wrong secret"},
		{"unknown principal", nil, acl.BasicAuth("mallory", "s3cret"), http.StatusUnauthorized, "", "unknown principal or wrong secret"},
		{"bearer token", nil, acl.BearerAuth("s3cret"), http.StatusOK, "analytics", ""},
		{"bearer token, scheme in lower case", nil, "bearer s3cret", http.StatusOK, "analytics", ""},
		{"unknown bearer token", nil, acl.BearerAuth("abc"), http.StatusUnauthorized, "", "unknown principal or wrong secret"},
		{"bearer token shared by two principals", nil, acl.BearerAuth("shared"), http.StatusUnauthorized, "", "more than one principal"},
		{"certificate and the same principal's token", certState("analytics"), acl.BearerAuth("s3cret"), http.StatusOK, "analytics", ""},
		{"token of another principal than the certificate", certState("ops"), acl.BearerAuth("s3cret"), http.StatusUnauthorized, "", `claim \"analytics\"`},
		{"neither basic nor bearer", nil, "Digest abc", http.StatusUnauthorized, "", "neither HTTP basic credentials"},
		{"credentials claiming another principal than the certificate", certState("ops"), acl.BasicAuth("analytics", "s3cret"), http.StatusUnauthorized, "", `names principal \"ops\"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = Principal(r.Context()) }))
			r := httptest.NewRequest(http.MethodGet, "/api/v1/state", nil)
			r.TLS = tc.tls
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.code || got != tc.principal || !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("got %d %q principal %q; want %d, principal %q, body with %q", w.Code, w.Body, got, tc.code, tc.principal, tc.want)
			}
		})
	}
}

func TestGRPCPrincipal(t *testing.T) {
	a := &Authenticator{Credentials: testCreds(t)}
	withCert := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: *certState("ops")}})
	basic := func(ctx context.Context, p, s string) context.Context {
		return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", acl.BasicAuth(p, s)))
	}
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		principal string
		code      codes.Code
	}{
		{"anonymous", context.Background(), "", codes.OK},
		{"certificate", withCert, "ops", codes.OK},
		{"credentials", basic(context.Background(), "analytics", "s3cret"), "analytics", codes.OK},
		{"bad secret", basic(context.Background(), "analytics", "x"), "", codes.Unauthenticated},
		{"bearer token", metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", acl.BearerAuth("s3cret"))), "analytics", codes.OK},
		{"bad bearer token", metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", acl.BearerAuth("x"))), "", codes.Unauthenticated},
	} {
		ctx, err := a.grpcPrincipal(tc.ctx)
		if status.Code(err) != tc.code {
			t.Errorf("%s: error %v, want code %s", tc.name, err, tc.code)
			continue
		}
		if err == nil && Principal(ctx) != tc.principal {
			t.Errorf("%s: principal %q, want %q", tc.name, Principal(ctx), tc.principal)
		}
	}
}
