package agent

import (
	"context"

	"github.com/corral-project/corral/sdk/acl"
)

// Credential is the agent's principal and secret (Config.Credential),
// sent with every call to the master's agent gateway as HTTP basic
// credentials in the "authorization" metadata, as frameworks send theirs.
// It lets an agent without a client certificate be a principal that
// register_agents rules can name (Mesos's agent --credential).
type Credential struct {
	Principal string
	Secret    string
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *Credential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": acl.BasicAuth(c.Principal, c.Secret)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: also
// over plain text (a dev or test cluster), as Mesos accepts its agents'
// credentials without TLS. Use TLS where the network is not trusted.
func (c *Credential) RequireTransportSecurity() bool { return false }
