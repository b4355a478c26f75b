package main

import (
	"net/http"
	"os"

	"github.com/corral-project/corral/sdk/acl"
	"github.com/corral-project/corral/sdk/scheduler"
)

// The CLI's credentials come from the environment, beside its TLS
// settings: CORRAL_PRINCIPAL and CORRAL_SECRET name a principal of the
// master's credentials file (credentials_file). They are sent as HTTP
// basic credentials to the operator API and with every scheduler call of
// `corral exec`. With a client certificate they are not needed: its
// common name is the principal.

// cliCredential is the CLI's principal and secret, nil when unset.
func cliCredential() *scheduler.Credential {
	p, s := os.Getenv("CORRAL_PRINCIPAL"), os.Getenv("CORRAL_SECRET")
	if p == "" {
		return nil
	}
	return &scheduler.Credential{Principal: p, Secret: s}
}

// withCredential wraps an HTTP transport so that every request carries
// the CLI's credentials (when set).
func withCredential(rt http.RoundTripper) http.RoundTripper {
	c := cliCredential()
	if c == nil {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return basicAuthTransport{next: rt, header: acl.BasicAuth(c.Principal, c.Secret)}
}

type basicAuthTransport struct {
	next   http.RoundTripper
	header string
}

func (t basicAuthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", t.header)
	}
	return t.next.RoundTrip(r)
}
