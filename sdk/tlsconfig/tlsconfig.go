// Package tlsconfig turns corral's TLS settings (the HCL `tls` block, the
// CLI's CORRAL_* variables, an SDK option) into crypto/tls configurations
// for servers and clients, and makes a CA and certificates for a test or a
// small cluster (`corral tls`). The shape follows Nomad's and Consul's:
// one CA, a certificate and key per process, and two switches saying
// whether incoming connections must present a client certificate and
// whether outgoing ones verify the server's.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Config is one process's TLS settings. The zero value is plain text.
type Config struct {
	// CAFile is the PEM bundle of CAs that sign the cluster's certificates.
	CAFile string
	// CertFile and KeyFile are this process's certificate and key (PEM).
	CertFile, KeyFile string
	// VerifyIncoming makes a server require a client certificate signed by
	// the CA (mutual TLS). Without it a server still speaks TLS.
	VerifyIncoming bool
	// VerifyOutgoing makes a client verify the server's certificate against
	// the CA and the server's name. Turning it off is for debugging only.
	VerifyOutgoing bool
	// ServerName overrides the name a client verifies (default: the host
	// it dials).
	ServerName string
}

// Enabled reports whether TLS is configured at all.
func (c Config) Enabled() bool { return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" }

// Validate names what is missing or unreadable.
func (c Config) Validate() error {
	if !c.Enabled() {
		if c.VerifyIncoming || c.VerifyOutgoing {
			return errors.New("tls: verify_incoming and verify_outgoing need ca_file, cert_file and key_file")
		}
		return nil
	}
	if c.CAFile == "" {
		return errors.New("tls: ca_file is required when TLS is on")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together")
	}
	pool, err := c.pool()
	if err != nil {
		return err
	}
	if c.CertFile == "" {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: certificate %s with key %s: %w", c.CertFile, c.KeyFile, err)
	}
	// Check here what the peer would refuse later with a terse alert (or,
	// under TLS 1.3, a broken pipe): an expired certificate, or one the
	// cluster's CA did not sign.
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("tls: certificate %s: %w", c.CertFile, err)
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("tls: certificate %s expired at %s", c.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("tls: certificate %s is not valid before %s", c.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("tls: certificate %s is not signed by the CA in %s: %w", c.CertFile, c.CAFile, err)
	}
	return nil
}

func (c Config) pool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls: ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: ca_file %s holds no PEM certificate", c.CAFile)
	}
	return pool, nil
}

// Server is the configuration of a listener: nil when TLS is off. It
// offers HTTP/2 (gRPC) and HTTP/1.1 on the same port.
func (c Config) Server() (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.CertFile == "" {
		return nil, errors.New("tls: a server needs cert_file and key_file")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s: %w", c.CertFile, err)
	}
	pool, err := c.pool()
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if c.VerifyIncoming {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Client is the configuration of a dialer: nil when TLS is off. It
// presents this process's certificate when it has one.
func (c Config) Client() (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pool, err := c.pool()
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            pool,
		ServerName:         c.ServerName,
		InsecureSkipVerify: !c.VerifyOutgoing, //nolint:gosec // the operator turned verification off
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s: %w", c.CertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// GRPCCredentials are the transport credentials for a gRPC client: TLS
// when configured, plain text otherwise.
func (c Config) GRPCCredentials() (credentials.TransportCredentials, error) {
	tc, err := c.Client()
	if err != nil {
		return nil, err
	}
	if tc == nil {
		return insecure.NewCredentials(), nil
	}
	return credentials.NewTLS(tc), nil
}

// Scheme is the URL scheme of an HTTP API under this configuration.
func (c Config) Scheme() string {
	if c.Enabled() {
		return "https"
	}
	return "http"
}

// FromEnv reads the CLI's settings, named as Nomad's NOMAD_CACERT family:
// CORRAL_CACERT, CORRAL_CLIENT_CERT, CORRAL_CLIENT_KEY, CORRAL_TLS_SERVER_NAME,
// and CORRAL_SKIP_VERIFY=1 to skip server verification (debugging only).
func FromEnv() Config {
	return Config{
		CAFile:         os.Getenv("CORRAL_CACERT"),
		CertFile:       os.Getenv("CORRAL_CLIENT_CERT"),
		KeyFile:        os.Getenv("CORRAL_CLIENT_KEY"),
		ServerName:     os.Getenv("CORRAL_TLS_SERVER_NAME"),
		VerifyOutgoing: os.Getenv("CORRAL_SKIP_VERIFY") != "1",
	}
}
