package scheduler

import (
	"context"

	"github.com/corral-project/corral/sdk/acl"
)

// Credential is a framework's principal and secret (see Config.Credential).
// It is a gRPC per-call credential carrying HTTP basic authentication.
type Credential struct {
	Principal string
	Secret    string
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *Credential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": acl.BasicAuth(c.Principal, c.Secret)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// credential is also accepted over plain text (a dev or test cluster), as
// Mesos accepts basic authentication over plain HTTP.
func (c *Credential) RequireTransportSecurity() bool { return false }
