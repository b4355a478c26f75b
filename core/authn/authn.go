// Package authn finds out who is calling the master: the principal of a
// verified client certificate (mutual TLS), else the principal of HTTP
// basic credentials or of a bearer token (the Authorization header, which
// gRPC carries as metadata) checked against the credentials file. A bearer
// token is a principal's secret on its own, as Nomad's and Consul's ACL
// tokens are. The transports run it
// once per request (HTTP middleware, gRPC interceptors) and put the
// principal into the request's context, where the master's authorization
// checks read it.
//
// A caller with neither is anonymous (principal ""); whether it may do
// anything is the ACLs' decision (sdk/acl). Credentials that do not verify
// are refused outright (401 / Unauthenticated) rather than treated as
// anonymous, so a typo in a secret is reported as such.
package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/sdk/acl"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying an authenticated principal.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// Principal is the authenticated principal of a request, "" when anonymous.
func Principal(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// Authenticator resolves principals. The zero value knows no credentials
// and trusts client certificates only.
type Authenticator struct {
	// Credentials verify basic authentication; nil refuses every
	// Authorization header. Set before use; SetCredentials replaces them
	// while serving.
	Credentials *acl.Credentials
	replaced    atomic.Pointer[acl.Credentials]
}

// SetCredentials replaces the credentials (a SIGHUP reload).
// nil removes them.
func (a *Authenticator) SetCredentials(c *acl.Credentials) {
	if c == nil {
		c = &acl.Credentials{}
	}
	a.replaced.Store(c)
}

func (a *Authenticator) credentials() *acl.Credentials {
	if c := a.replaced.Load(); c != nil {
		return c
	}
	return a.Credentials
}

// basic parses "Basic base64(principal:secret)".
func basic(header string) (principal, secret string, ok bool) {
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// bearer parses "Bearer TOKEN".
func bearer(header string) (token string, ok bool) {
	const prefix = "bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", false
	}
	token = strings.TrimSpace(header[len(prefix):])
	return token, token != ""
}

// resolve picks the principal of a request from its certificate principal
// and its Authorization header.
func (a *Authenticator) resolve(certPrincipal, authorization string) (string, error) {
	if certPrincipal != "" {
		// The certificate is the stronger proof; a header beside it must
		// not claim another identity.
		if p, _, ok := basic(authorization); ok && p != certPrincipal {
			return "", errMismatch(certPrincipal, p)
		}
		if tok, ok := bearer(authorization); ok {
			if p, err := a.credentials().TokenPrincipal(tok); err == nil && p != certPrincipal {
				return "", errMismatch(certPrincipal, p)
			}
		}
		return certPrincipal, nil
	}
	if authorization == "" {
		return "", nil
	}
	if tok, ok := bearer(authorization); ok {
		return a.credentials().TokenPrincipal(tok)
	}
	p, secret, ok := basic(authorization)
	if !ok {
		return "", errNotBasic
	}
	if err := a.credentials().Verify(p, secret); err != nil {
		return "", err
	}
	return p, nil
}

type authError string

func (e authError) Error() string { return string(e) }

const errNotBasic = authError("authentication failed: the Authorization header is neither HTTP basic credentials " +
	"(Basic base64(principal:secret)) nor a bearer token (Bearer SECRET)")

func errMismatch(cert, claimed string) error {
	return authError("authentication failed: the client certificate names principal " + quote(cert) +
		" but the credentials claim " + quote(claimed))
}

func quote(s string) string { return `"` + s + `"` }

// Middleware authenticates every HTTP request and passes it on with its
// principal in the context. Bad credentials get 401 naming the problem.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.resolve(acl.ConnPrincipal(r.TLS), r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Add("WWW-Authenticate", `Basic realm="corral"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="corral"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": ` + jsonString(err.Error()) + "}\n"))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// grpcPrincipal authenticates a gRPC call from its peer and metadata.
func (a *Authenticator) grpcPrincipal(ctx context.Context) (context.Context, error) {
	var cert string
	if pr, ok := peer.FromContext(ctx); ok {
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			cert = acl.ConnPrincipal(&ti.State)
		}
	}
	var authz string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authz = v[0]
		}
	}
	p, err := a.resolve(cert, authz)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return WithPrincipal(ctx, p), nil
}

// ServerOptions are the gRPC server options that authenticate every call.
func (a *Authenticator) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := a.grpcPrincipal(ctx)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := a.grpcPrincipal(ss.Context())
			if err != nil {
				return err
			}
			return h(srv, &stream{ServerStream: ss, ctx: ctx})
		}),
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }
