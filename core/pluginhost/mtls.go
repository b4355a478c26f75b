package pluginhost

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Host <-> plugin mutual TLS. Every plugin is started with go-plugin's
// AutoMTLS: the host makes a throwaway client certificate and passes it
// to the plugin (PLUGIN_CLIENT_CERT), the plugin makes its own server
// certificate and returns it in the handshake line, and each side then
// trusts exactly the other's certificate. Nothing else on the machine can
// talk to a plugin's socket, nor impersonate the host's broker.
//
// AutoMTLS alone breaks reattach: the certificates live only in the memory
// of the host that started the plugin, and a restarted agent reattaching
// to a live executor has neither. go-plugin's ReattachConfig carries no TLS,
// but ClientConfig.TLSConfig is what the client dials with on reattach too
// (and what its broker serves with). So for executors the host keeps the
// three pieces — its client certificate and key, and the plugin's server
// certificate — in the reattach info it checkpoints (the agent's bbolt
// file, mode 0600), and ReattachExecutor rebuilds the same TLS config from
// them. The executor still holds the client certificate it was given at
// start, so it accepts the restarted host, and the host checks the
// executor's certificate as the first host did.

// autoMTLS is always on in production; benchmarks turn it off to measure
// its cost against plain text in the same run.
var autoMTLS = true

// handshakeTap passes the plugin's stdout through to go-plugin and keeps
// its first line, the handshake, whose sixth field is the plugin's AutoMTLS
// server certificate (go-plugin does not expose it).
type handshakeTap struct {
	r    io.ReadCloser
	mu   sync.Mutex
	line []byte
	done bool
}

// maxHandshake bounds what the tap keeps of a plugin that never ends its
// first line.
const maxHandshake = 64 << 10

func (t *handshakeTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.mu.Lock()
	if !t.done && n > 0 {
		chunk := p[:n]
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			chunk, t.done = chunk[:i], true
		}
		t.line = append(t.line, chunk...)
		if len(t.line) > maxHandshake {
			t.done = true
		}
	}
	t.mu.Unlock()
	return n, err
}

func (t *handshakeTap) Close() error { return t.r.Close() }

// serverCert is the DER server certificate of the handshake line.
func (t *handshakeTap) serverCert() ([]byte, error) {
	t.mu.Lock()
	line := strings.TrimSpace(string(t.line))
	t.mu.Unlock()
	parts := strings.Split(line, "|")
	if len(parts) < 6 || len(parts[5]) <= 50 {
		return nil, errors.New("the plugin's handshake carries no AutoMTLS server certificate (a go-plugin server is required)")
	}
	der, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return nil, fmt.Errorf("the plugin's AutoMTLS server certificate: %w", err)
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("the plugin's AutoMTLS server certificate: %w", err)
	}
	return der, nil
}

// ReattachTLS is what a later host needs to talk mutual TLS to an
// executor it did not start: PEM certificates and the host's private key.
// It is a secret: the agent keeps it only in its 0600 checkpoint.
type ReattachTLS struct {
	ClientCert string `json:"client_cert"`
	ClientKey  string `json:"client_key"`
	ServerCert string `json:"server_cert"`
}

// reattachTLS captures the AutoMTLS state of a started plugin: the client
// certificate go-plugin generated (left in the ClientConfig it was given)
// and the plugin's server certificate.
func reattachTLS(cc *tls.Config, serverDER []byte) (*ReattachTLS, error) {
	if cc == nil || len(cc.Certificates) == 0 || len(cc.Certificates[0].Certificate) == 0 {
		return nil, errors.New("no AutoMTLS client certificate after start")
	}
	key, err := x509.MarshalPKCS8PrivateKey(cc.Certificates[0].PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("AutoMTLS client key: %w", err)
	}
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	return &ReattachTLS{
		ClientCert: enc("CERTIFICATE", cc.Certificates[0].Certificate[0]),
		ClientKey:  enc("PRIVATE KEY", key),
		ServerCert: enc("CERTIFICATE", serverDER),
	}, nil
}

// config rebuilds the TLS configuration go-plugin used with the plugin:
// our certificate, the plugin's as the only root (and the only client CA,
// for the broker the plugin dials back), server name "localhost".
func (r *ReattachTLS) config() (*tls.Config, error) {
	pair, err := tls.X509KeyPair([]byte(r.ClientCert), []byte(r.ClientKey))
	if err != nil {
		return nil, fmt.Errorf("checkpointed client certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(r.ServerCert)) {
		return nil, errors.New("checkpointed plugin certificate is not PEM")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
		ServerName:   "localhost",
	}, nil
}
