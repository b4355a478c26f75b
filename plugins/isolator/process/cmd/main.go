// Command corral-isolator-process serves the plain-process isolator plugin.
package main

import (
	"os"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/isolator/process"
	"github.com/hashicorp/go-hclog"
)

func main() {
	// stdout carries the go-plugin handshake: log JSON to stderr only.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "corral-isolator-process",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv("CORRAL_PLUGIN_LOG_LEVEL")),
	})
	isolator.Serve(process.New(logger), logger)
}
