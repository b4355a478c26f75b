// Command corral-isolator-runc serves the runc isolator plugin. Its tasks
// are started by corral-runc-start, which must sit beside it.
package main

import (
	"os"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/plugins/isolator/runc"
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
	isolator.Serve(runc.New(logger), logger)
}
