// Package priority is corral's priority allocator: strict tiers between
// roles (a role's priority, or its nearest ancestor's), higher tiers
// offered first and ties by hierarchical weighted DRF. With preemption on,
// declared demand of a higher tier that fits nowhere makes the plugin
// propose revoking lower-tier tasks: the core sends the owning framework
// an inverse offer, waits the grace period and kills with reason
// PREEMPTED. Tasks within their role's guarantee are never proposed.
package priority

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/allocator/fairshare"
)

// Name and Version identify the plugin.
const (
	Name    = "priority"
	Version = "0.1.0"
)

// NewPlugin returns the priority allocator plugin.
func NewPlugin() allocator.Allocator {
	return fairshare.NewPlugin(fairshare.PolicyPriority, Name, Version)
}

// ParseConfig decodes and validates a config JSON object.
func ParseConfig(configJSON []byte) (fairshare.Options, error) {
	return fairshare.ParseOptions(fairshare.PolicyPriority, configJSON)
}
