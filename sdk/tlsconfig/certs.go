package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// Role is what a certificate is for; it sets the key usages and the
// names a certificate carries by default.
type Role string

// The roles of `corral tls cert create`.
const (
	RoleServer Role = "server" // masters: server and client auth (masters dial each other and agents)
	RoleAgent  Role = "agent"  // agents: server (their HTTP API) and client (to the master)
	RoleClient Role = "client" // schedulers, the CLI, operators: client auth only
)

// CertRequest describes a certificate to sign.
type CertRequest struct {
	Role Role
	// CommonName is the principal the certificate identifies (the
	// framework principal, the agent's or operator's name).
	CommonName string
	// DNSNames and IPs are the names a server certificate is valid for;
	// servers and agents always get localhost and 127.0.0.1 too.
	DNSNames []string
	IPs      []net.IP
	Validity time.Duration // default one year
	// IssuedAt starts the validity (default now); set in the past, with a
	// short Validity, it makes an expired certificate for tests.
	IssuedAt time.Time
}

// CreateCA writes a new self-signed CA certificate and key (PEM) to
// certPath and keyPath, refusing to overwrite either.
func CreateCA(certPath, keyPath, commonName string, validity time.Duration) error {
	if validity <= 0 {
		validity = 5 * 365 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"corral"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	return writePair(certPath, keyPath, der, key)
}

// CreateCert signs a certificate for req with the CA at caCert/caKey and
// writes it and its new key to certPath and keyPath.
func CreateCert(caCert, caKey, certPath, keyPath string, req CertRequest) error {
	ca, err := tls.LoadX509KeyPair(caCert, caKey)
	if err != nil {
		return fmt.Errorf("load CA %s: %w", caCert, err)
	}
	caX509, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse CA %s: %w", caCert, err)
	}
	if !caX509.IsCA {
		return fmt.Errorf("%s is not a CA certificate", caCert)
	}
	if req.CommonName == "" {
		return errors.New("a certificate needs a common name (the principal it identifies)")
	}
	if req.Validity <= 0 {
		req.Validity = 365 * 24 * time.Hour
	}
	if req.IssuedAt.IsZero() {
		req.IssuedAt = time.Now()
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: []string{"corral"}, OrganizationalUnit: []string{string(req.Role)}},
		NotBefore:    req.IssuedAt.Add(-time.Minute),
		NotAfter:     req.IssuedAt.Add(req.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
	}
	switch req.Role {
	case RoleServer, RoleAgent:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = append(tmpl.DNSNames, "localhost")
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
	case RoleClient:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return fmt.Errorf("certificate role %q: want server, agent or client", req.Role)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caX509, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return fmt.Errorf("sign certificate: %w", err)
	}
	return writePair(certPath, keyPath, der, key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return n
}

// writePair writes a certificate (0644) and its key (0600), refusing to
// replace existing files: overwriting a CA key would orphan every
// certificate it signed.
func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	for _, f := range []struct {
		path  string
		block *pem.Block
		mode  os.FileMode
	}{
		{keyPath, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}, 0o600},
		{certPath, &pem.Block{Type: "CERTIFICATE", Bytes: der}, 0o644},
	} {
		out, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if err := pem.Encode(out, f.block); err != nil {
			out.Close()
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return nil
}

// PeerName is the principal of a verified client certificate on a
// connection: its common name, "" without one.
func PeerName(state *tls.ConnectionState) string {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return state.VerifiedChains[0][0].Subject.CommonName
}
