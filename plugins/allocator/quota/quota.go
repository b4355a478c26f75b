// Package quota is corral's quota allocator: hierarchical weighted DRF (as
// the drf plugin) plus per-role guarantees and limits. Roles under their
// guarantee are served first; what an unmet guarantee still needs is held
// back from other roles only while that role has demand; a role subtree's
// offers plus tasks never exceed its limit or an ancestor's; above the
// guarantees DRF shares the rest. Quota changes at run time arrive as
// role updates and apply from the next cycle.
package quota

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/allocator/fairshare"
)

// Name and Version identify the plugin.
const (
	Name    = "quota"
	Version = "0.1.0"
)

// NewPlugin returns the quota allocator plugin.
func NewPlugin() allocator.Allocator {
	return fairshare.NewPlugin(fairshare.PolicyQuota, Name, Version)
}

// ParseConfig decodes and validates a config JSON object.
func ParseConfig(configJSON []byte) (fairshare.Options, error) {
	return fairshare.ParseOptions(fairshare.PolicyQuota, configJSON)
}
