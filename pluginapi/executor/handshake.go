package executor

import (
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-plugin"
)

// PluginName is the key under which go-plugin dispenses an executor.
const PluginName = base.KindExecutor

// Handshake is shared by the agent and executor binaries. The cookie only
// stops a binary of another kind from being started by mistake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  2, // 2: API v2, one executor per agent serving many tasks
	MagicCookieKey:   "CORRAL_EXECUTOR_PLUGIN",
	MagicCookieValue: "10c719618e8423a8d707ce186bbdfe2a9be9db30cba773726c28e65c032f7659",
}
