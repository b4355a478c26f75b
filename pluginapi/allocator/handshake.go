package allocator

import (
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-plugin"
)

// PluginName is the key under which go-plugin dispenses an allocator.
const PluginName = base.KindAllocator

// Handshake is shared by the master and allocator binaries. The cookie only
// stops a binary of another kind (or a non-plugin) from being started by
// mistake; it is not a secret.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "CORRAL_ALLOCATOR_PLUGIN",
	MagicCookieValue: "36670069c609bc2b39c0ddaa1d49cb4186d7e5f8ca886fefc77660a54e6d6c40",
}
