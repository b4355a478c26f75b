package main

import (
	"net/http"
	"os"

	"github.com/corral-project/corral/sdk/scheduler"
)

// The CLI's credentials come from the environment, beside its TLS
// settings: CORRAL_PRINCIPAL and CORRAL_SECRET name a principal of the
// master's credentials file (credentials_file), sent as HTTP basic
// credentials; or CORRAL_TOKEN, a principal's secret sent alone as a
// bearer token (it wins when both are set). They go to the operator API
// and with every scheduler call of `corral exec`. With a client
// certificate they are not needed: its common name is the principal.

// cliCredential is the CLI's credential, nil when unset.
func cliCredential() *scheduler.Credential {
	if t := os.Getenv("CORRAL_TOKEN"); t != "" {
		return &scheduler.Credential{Token: t}
	}
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
	return authTransport{next: rt, header: c.Authorization()}
}

type authTransport struct {
	next   http.RoundTripper
	header string
}

func (t authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", t.header)
	}
	return t.next.RoundTrip(r)
}
