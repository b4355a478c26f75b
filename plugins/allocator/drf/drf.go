// Package drf is corral's default allocator: hierarchical weighted
// Dominant Resource Fairness in the shape of Mesos' HierarchicalDRF
// allocator, with demand-sized offers by progressive filling for
// frameworks that declare their pending tasks, and hold-back against the
// starvation of large tasks. The engine is sdk/allocator/fairshare; this
// package chooses its features and names the plugin.
package drf

import (
	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/pluginapi/base"
	sdk "github.com/corral-project/corral/sdk/allocator"
	"github.com/corral-project/corral/sdk/allocator/fairshare"
)

// Name and Version identify the plugin.
const (
	Name    = "drf"
	Version = "0.2.0"
)

// Metric name prefixes in AllocateResponse.Metrics.
const (
	MetricRoleShare      = fairshare.MetricRoleShare      // + role: weighted dominant share
	MetricFrameworkShare = fairshare.MetricFrameworkShare // + framework ID: dominant share
)

// Info identifies the plugin.
func Info() base.Info {
	return base.Info{Kind: base.KindAllocator, Name: Name, Version: Version, APIVersions: allocator.APIVersions}
}

// NewPlugin returns the DRF allocator plugin, configured with the defaults
// until the host calls SetConfig.
func NewPlugin() allocator.Allocator {
	return sdk.NewPlugin(Info(), Schema(), func(configJSON []byte) (sdk.Policy, error) {
		cfg, err := ParseConfig(configJSON)
		if err != nil {
			return nil, err
		}
		return New(cfg), nil
	})
}

// Policy is the DRF policy: the shared engine with quota and tiers off.
type Policy struct {
	*fairshare.Engine
}

var (
	_ sdk.Policy          = (*Policy)(nil)
	_ sdk.MetricsReporter = (*Policy)(nil)
	_ sdk.Resetter        = (*Policy)(nil)
)

// New returns a DRF policy.
func New(cfg Config) *Policy {
	cfg.Quota, cfg.Tiers, cfg.Preemption = false, false, false
	return &Policy{Engine: fairshare.New(cfg)}
}
