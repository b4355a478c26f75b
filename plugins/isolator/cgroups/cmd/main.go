// Command corral-isolator-cgroups serves the cgroups isolator plugin.
package main

import (
	"os"

	"github.com/corral-project/corral/pluginapi/isolator"
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
	isolator.Serve(cgroups.New(logger), logger)
}
