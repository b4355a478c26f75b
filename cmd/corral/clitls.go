package main

import (
	"crypto/tls"
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
		return http.DefaultClient, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr}, nil
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
	msg := err.Error()
	tlsRefusal := strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate")
	if tc, _ := cliTLS(); tlsRefusal && tc != nil && len(tc.Certificates) == 0 {
		return fmt.Errorf("the master at %s refused the connection; it likely requires a client certificate: "+
			"set CORRAL_CLIENT_CERT and CORRAL_CLIENT_KEY (%w)", addr, err)
	}
	return fmt.Errorf("cannot reach the master at %s: %w", addr, err)
}
