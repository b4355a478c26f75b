package isolator

import (
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-plugin"
)

// PluginName is the key under which go-plugin dispenses an isolator.
const PluginName = base.KindIsolator

// Handshake is shared by the agent and isolator binaries. The cookie only
// stops a binary of another kind from being started by mistake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "CORRAL_ISOLATOR_PLUGIN",
	MagicCookieValue: "75b0c42d3b2be541533a75641b30fd842c37a25192237a531df68eaa35e5bda5",
}
