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
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/allocator/fairshare"
)

// Name and Version identify the plugin.
const (
	Name    = "quota"
	Version = "0.1.0"
)

// Info identifies the plugin.
func Info() base.Info {
	return base.Info{Kind: base.KindAllocator, Name: Name, Version: Version, APIVersions: allocator.APIVersions}
}

// Schema describes the config body the operator writes in HCL.
func Schema() base.Schema { return fairshare.Schema(fairshare.PolicyQuota) }

// ParseConfig decodes and validates a config JSON object.
func ParseConfig(configJSON []byte) (fairshare.Options, error) {
	return fairshare.ParseOptions(fairshare.PolicyQuota, configJSON)
}

// NewPlugin returns the quota allocator plugin.
func NewPlugin() allocator.Allocator {
	return sdk.NewPlugin(Info(), Schema(), func(configJSON []byte) (sdk.Policy, error) {
		opts, err := ParseConfig(configJSON)
		if err != nil {
			return nil, err
		}
		return New(opts), nil
	})
}

// Policy is the quota policy.
type Policy struct {
	*fairshare.Engine
}

// New returns a quota policy.
func New(opts fairshare.Options) *Policy {
	opts.Quota, opts.Tiers, opts.Preemption = true, false, false
	return &Policy{Engine: fairshare.New(opts)}
}
