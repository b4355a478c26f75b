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
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/allocator/fairshare"
)

// Name and Version identify the plugin.
const (
	Name    = "priority"
	Version = "0.1.0"
)

// Info identifies the plugin.
func Info() base.Info {
	return base.Info{Kind: base.KindAllocator, Name: Name, Version: Version, APIVersions: allocator.APIVersions}
}

// Schema describes the config body the operator writes in HCL.
func Schema() base.Schema { return fairshare.Schema(fairshare.PolicyPriority) }

// ParseConfig decodes and validates a config JSON object.
func ParseConfig(configJSON []byte) (fairshare.Options, error) {
	return fairshare.ParseOptions(fairshare.PolicyPriority, configJSON)
}

// NewPlugin returns the priority allocator plugin.
func NewPlugin() allocator.Allocator {
	return sdk.NewPlugin(Info(), Schema(), func(configJSON []byte) (sdk.Policy, error) {
		opts, err := ParseConfig(configJSON)
		if err != nil {
			return nil, err
		}
		return New(opts), nil
	})
}

// Policy is the priority policy.
type Policy struct {
	*fairshare.Engine
}

var _ sdk.Revoker = (*Policy)(nil)

// New returns a priority policy.
func New(opts fairshare.Options) *Policy {
	opts.Tiers, opts.Quota = true, false
	return &Policy{Engine: fairshare.New(opts)}
}
