package fairshare

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
)

var (
	_ sdk.Policy           = (*Engine)(nil)
	_ sdk.MetricsReporter  = (*Engine)(nil)
	_ sdk.Revoker          = (*Engine)(nil)
	_ sdk.Resetter         = (*Engine)(nil)
	_ sdk.FairnessExcluder = (*Engine)(nil)
)

// NewPlugin returns an allocator plugin that runs the engine for a policy
// kind (PolicyDRF, PolicyQuota or PolicyPriority), configured from the
// kind's schema; the shipped plugins are this plus a name.
func NewPlugin(kind, name, version string) allocator.Allocator {
	info := base.Info{Kind: base.KindAllocator, Name: name, Version: version, APIVersions: allocator.APIVersions}
	return sdk.NewPlugin(info, Schema(kind), func(configJSON []byte) (sdk.Policy, error) {
		opts, err := ParseOptions(kind, configJSON)
		if err != nil {
			return nil, err
		}
		return New(opts), nil
	})
}
