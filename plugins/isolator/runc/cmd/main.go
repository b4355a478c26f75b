// Command corral-isolator-runc serves the runc isolator plugin. Its tasks
// are started by corral-runc-start, which must sit beside it.
package main

import (
	"os"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/isolator/runc"
	"github.com/corral-project/corral/sdk/cpuprofile"
	"github.com/hashicorp/go-hclog"
)

func main() {
	// stdout carries the go-plugin handshake: log JSON to stderr only.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "corral-isolator-runc",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv("CORRAL_PLUGIN_LOG_LEVEL")),
	})
	// CORRAL_PLUGIN_CPUPROFILE=DIR: CPU profiles in phases (make bench-isolation).
	defer cpuprofile.FromEnv("corral-isolator-runc", logger)()
	isolator.Serve(runc.New(logger), logger)
}
