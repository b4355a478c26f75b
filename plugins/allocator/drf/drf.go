// Package drf is corral's default allocator: hierarchical weighted
// Dominant Resource Fairness in the shape of Mesos' HierarchicalDRF
// allocator, with demand-sized offers by progressive filling for
// frameworks that declare their pending tasks, and hold-back against the
// starvation of large tasks. The engine is sdk/allocator/fairshare; this
// package chooses its features and names the plugin.
package drf

import (
	"github.com/corral-project/corral/pluginapi/allocator"
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

// NewPlugin returns the DRF allocator plugin, configured with the defaults
// until the host calls SetConfig.
func NewPlugin() allocator.Allocator { return fairshare.NewPlugin(fairshare.PolicyDRF, Name, Version) }
