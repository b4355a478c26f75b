package scheduler

import (
	"context"

	"github.com/corral-project/corral/sdk/acl"
)

// Credential is a framework's principal and secret (see Config.Credential).
// It is a gRPC per-call credential carrying HTTP basic authentication, or
// a bearer token when Token is set.
type Credential struct {
	Principal string
	Secret    string
	// Token, when set, is sent alone as a bearer token (a principal's
	// secret from the master's credentials file names its principal, as a
	// Nomad or Consul ACL token does); Principal and Secret are then not
	// sent.
	Token string
}

// Authorization is the Authorization header value the credential sends.
func (c *Credential) Authorization() string {
	if c.Token != "" {
		return acl.BearerAuth(c.Token)
	}
	return acl.BasicAuth(c.Principal, c.Secret)
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *Credential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": c.Authorization()}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// credential is also accepted over plain text (a dev or test cluster), as
// Mesos accepts basic authentication over plain HTTP.
func (c *Credential) RequireTransportSecurity() bool { return false }
