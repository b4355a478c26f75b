package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/corral-project/corral/sdk/tlsconfig"
)

// The CLI's TLS settings come from the environment, as Nomad's and
// Consul's CLIs take theirs: CORRAL_CACERT, CORRAL_CLIENT_CERT,
// CORRAL_CLIENT_KEY (see tlsconfig.FromEnv). Read once per process.
var cliTLS = sync.OnceValues(func() (*tls.Config, error) {
	tc, err := tlsconfig.FromEnv().Client()
	if err != nil {
		return nil, fmt.Errorf("%w (from CORRAL_CACERT, CORRAL_CLIENT_CERT, CORRAL_CLIENT_KEY)", err)
	}
	return tc, nil
})

// cliClients are the HTTP clients of the CLI, one per TLS setting.
var cliClient = sync.OnceValues(func() (*http.Client, error) {
	tc, err := cliTLS()
	if err != nil {
		return nil, err
	}
	if tc == nil {
		return &http.Client{Transport: withCredential(http.DefaultTransport)}, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: withCredential(tr)}, nil
})

// masterHTTP is the client and base URL ("https://host:port") for the
// master at addr, which may carry a scheme; without one the scheme follows
// the CLI's TLS settings.
func masterHTTP(addr string) (*http.Client, string, error) {
	client, err := cliClient()
	if err != nil {
		return nil, "", err
	}
	switch {
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		return client, strings.TrimSuffix(addr, "/"), nil
	}
	tc, _ := cliTLS()
	scheme := "http"
	if tc != nil {
		scheme = "https"
	}
	return client, scheme + "://" + addr, nil
}

// plainToTLS explains Go's answer to a plain-HTTP request on a TLS port
// (400, "Client sent an HTTP request to an HTTPS server"), nil otherwise.
func plainToTLS(addr string, status int, body []byte) error {
	if status == http.StatusBadRequest && strings.Contains(string(body), "HTTP request to an HTTPS server") {
		return fmt.Errorf("the master at %s speaks TLS: set CORRAL_CACERT to the cluster's CA, and CORRAL_CLIENT_CERT and CORRAL_CLIENT_KEY to your certificate", addr)
	}
	return nil
}

// unreachable words a failed request to the master. Under TLS 1.3 a server
// that refuses the client's certificate (or the lack of one) only closes
// the connection after the handshake, so the client sees a broken pipe or
// a reset: say what is most likely wrong.
func unreachable(addr string, err error) error {
	// The connection was made (not refused, not unresolvable, not timed
	// out) but the exchange broke: with TLS on and no client certificate,
	// the server's refusal is the likely cause. How the break reads
	// varies (broken pipe, reset, "http2: client conn could not be
	// established", an alert), so it is not matched on.
	msg := err.Error()
	connected := !strings.Contains(msg, "connection refused") && !strings.Contains(msg, "no such host") &&
		!strings.Contains(msg, "timeout") && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
	var unknownAuthority x509.UnknownAuthorityError
	if tc, _ := cliTLS(); connected && tc != nil && len(tc.Certificates) == 0 && !errors.As(err, &unknownAuthority) {
		return fmt.Errorf("the master at %s refused the connection; it likely requires a client certificate: "+
			"set CORRAL_CLIENT_CERT and CORRAL_CLIENT_KEY (%w)", addr, err)
	}
	return fmt.Errorf("cannot reach the master at %s: %w", addr, err)
}
