package acl

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Credentials are principals with their secrets, for callers without a
// client certificate (HTTP basic authentication, or the same header as
// gRPC metadata). The file format is Mesos's --credentials JSON:
//
//	{"credentials": [{"principal": "analytics", "secret": "s3cret"}]}
type Credentials struct {
	// sha256 of each secret, so that comparing takes the same time for
	// every guess of the same length.
	secrets map[string][sha256.Size]byte
	// owners maps the sha256 of a secret to the principals holding it, so
	// that a secret presented alone as a bearer token names its principal.
	// A secret shared by several principals names none of them.
	owners map[[sha256.Size]byte][]string
}

// LoadCredentials reads a credentials file. Every entry needs a principal
// and a secret, and a principal appears once.
func LoadCredentials(path string) (*Credentials, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	c, err := ParseCredentials(src)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return c, nil
}

// ParseCredentials parses the JSON of a credentials file.
func ParseCredentials(src []byte) (*Credentials, error) {
	var f struct {
		Credentials []struct {
			Principal string `json:"principal"`
			Secret    string `json:"secret"`
		} `json:"credentials"`
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf(`want {"credentials": [{"principal": ..., "secret": ...}]}: %w`, err)
	}
	c := &Credentials{secrets: map[string][sha256.Size]byte{}, owners: map[[sha256.Size]byte][]string{}}
	for i, e := range f.Credentials {
		switch {
		case strings.TrimSpace(e.Principal) == "":
			return nil, fmt.Errorf("credentials[%d]: principal is empty", i)
		case e.Principal == Any || e.Principal == None:
			return nil, fmt.Errorf("credentials[%d]: %q is reserved and cannot be a principal", i, e.Principal)
		case e.Secret == "":
			return nil, fmt.Errorf("credentials[%d]: principal %q has an empty secret", i, e.Principal)
		}
		if _, dup := c.secrets[e.Principal]; dup {
			return nil, fmt.Errorf("credentials[%d]: principal %q is listed twice", i, e.Principal)
		}
		h := sha256.Sum256([]byte(e.Secret))
		c.secrets[e.Principal] = h
		c.owners[h] = append(c.owners[h], e.Principal)
	}
	return c, nil
}

// Len is the number of principals.
func (c *Credentials) Len() int {
	if c == nil {
		return 0
	}
	return len(c.secrets)
}

// ErrBadCredentials is returned for an unknown principal or a wrong secret
// (the two are not told apart).
var ErrBadCredentials = errors.New("authentication failed: unknown principal or wrong secret")

// Verify checks a principal's secret.
func (c *Credentials) Verify(principal, secret string) error {
	if c == nil {
		return ErrBadCredentials
	}
	want, ok := c.secrets[principal]
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !ok {
		return ErrBadCredentials
	}
	return nil
}

// ErrAmbiguousToken is returned for a bearer token that is the secret of
// more than one principal: it cannot say who is calling.
var ErrAmbiguousToken = errors.New("authentication failed: the bearer token is the secret of more than one principal " +
	"in the credentials file; give each principal its own secret, or send basic credentials (principal and secret)")

// TokenPrincipal is the principal whose secret is token (a bearer token,
// as Nomad's ACL tokens and Consul's are: the secret alone names its
// holder). An unknown token is ErrBadCredentials.
func (c *Credentials) TokenPrincipal(token string) (string, error) {
	if c == nil || token == "" {
		return "", ErrBadCredentials
	}
	switch owners := c.owners[sha256.Sum256([]byte(token))]; len(owners) {
	case 0:
		return "", ErrBadCredentials
	case 1:
		return owners[0], nil
	default:
		return "", ErrAmbiguousToken
	}
}

// CertPrincipal is the principal a verified client certificate names: its
// common name, else its first URI SAN (a SPIFFE ID, say); "" for none.
func CertPrincipal(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	if cert.Subject.CommonName != "" {
		return cert.Subject.CommonName
	}
	if len(cert.URIs) > 0 {
		return cert.URIs[0].String()
	}
	return ""
}

// ConnPrincipal is the principal of a TLS connection's verified client
// certificate, "" when the peer presented none (or it was not verified).
func ConnPrincipal(state *tls.ConnectionState) string {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return CertPrincipal(state.VerifiedChains[0][0])
}

// BasicAuth is the Authorization header value carrying a principal's
// secret (HTTP basic authentication; gRPC clients send it as the
// "authorization" metadata).
func BasicAuth(principal, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(principal+":"+secret))
}

// BearerAuth is the Authorization header value carrying a bearer token
// (a principal's secret, which alone names the principal).
func BearerAuth(token string) string { return "Bearer " + token }

// Credential is one principal's own secret, as a client (an agent, say)
// presents it.
type Credential struct {
	Principal string `json:"principal"`
	Secret    string `json:"secret"`
}

// LoadCredential reads a client's credential file, Mesos's agent
// --credential JSON:
//
//	{"principal": "agent-7", "secret": "s3cret"}
//
// Both fields are required. The file holds a secret: keep it 0600.
func LoadCredential(path string) (Credential, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Credential{}, fmt.Errorf("credential: %w", err)
	}
	c, err := ParseCredential(src)
	if err != nil {
		return Credential{}, fmt.Errorf("credential file %s: %w", path, err)
	}
	return c, nil
}

// ParseCredential parses the JSON of a credential file.
func ParseCredential(src []byte) (Credential, error) {
	var c Credential
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Credential{}, fmt.Errorf(`want {"principal": ..., "secret": ...}: %w`, err)
	}
	switch {
	case strings.TrimSpace(c.Principal) == "":
		return Credential{}, errors.New("principal is empty")
	case c.Principal == Any || c.Principal == None:
		return Credential{}, fmt.Errorf("%q is reserved and cannot be a principal", c.Principal)
	case strings.Contains(c.Principal, ":"):
		return Credential{}, fmt.Errorf("principal %q has a colon, which basic credentials cannot carry", c.Principal)
	case c.Secret == "":
		return Credential{}, fmt.Errorf("principal %q has an empty secret", c.Principal)
	}
	return c, nil
}
