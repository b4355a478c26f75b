// Command corral-executor-command serves the command executor plugin.
package main

import (
	"os"

	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/plugins/executor/command"
	"github.com/hashicorp/go-hclog"
)

func main() {
	// The same binary is the launcher stage of its task: that must happen
	// before anything else runs (and it never serves a plugin).
	command.MaybeRunLauncher()

	// stdout carries the go-plugin handshake: log JSON to stderr only.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "corral-executor-command",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv("CORRAL_PLUGIN_LOG_LEVEL")),
	})
	executor.Serve(command.New(logger), logger)
}
