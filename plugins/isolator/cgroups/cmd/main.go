// Command corral-isolator-cgroups serves the cgroups isolator plugin.
package main

import (
	"os"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/cpuprofile"
	"github.com/corral-project/corral/sdk/isolation/cgroups"
	"github.com/hashicorp/go-hclog"
)

func main() {
	// stdout carries the go-plugin handshake: log JSON to stderr only.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "corral-isolator-cgroups",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv("CORRAL_PLUGIN_LOG_LEVEL")),
	})
	// CORRAL_PLUGIN_CPUPROFILE=DIR: CPU profiles in phases (make bench-isolation).
	defer cpuprofile.FromEnv("corral-isolator-cgroups", logger)()
	isolator.Serve(cgroups.New(logger), logger)
}
