package drf

import (
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/sdk/allocator/fairshare"
	"github.com/corral-project/corral/sdk/resources"
)

// DefaultMinOffer is Mesos' default --min_allocatable_resources.
const DefaultMinOffer = fairshare.DefaultMinOffer

// Config is the DRF allocator's configuration: the shared engine's options
// with quota and tiers off.
type Config = fairshare.Options

// DefaultConfig is the configuration an empty config body yields.
func DefaultConfig() Config { return fairshare.DefaultOptions(fairshare.PolicyDRF) }

// Schema describes the config body the operator writes in HCL.
func Schema() base.Schema { return fairshare.Schema(fairshare.PolicyDRF) }

// ParseConfig decodes and validates a config JSON object. Missing
// attributes take their defaults; errors name the offending attribute.
func ParseConfig(configJSON []byte) (Config, error) {
	return fairshare.ParseOptions(fairshare.PolicyDRF, configJSON)
}

// ParseMinOffer parses Mesos' min_allocatable_resources syntax.
func ParseMinOffer(s string) ([]resources.Resources, error) { return fairshare.ParseMinOffer(s) }
