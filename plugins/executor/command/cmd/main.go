// Command corral-executor-command serves the command executor plugin.
package main

import (
	"os"
	"path/filepath"

	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/plugins/executor/command"
	"github.com/corral-project/corral/sdk/cpuprofile"
	"github.com/hashicorp/go-hclog"
)

func main() {
	// The same binary is the shim of its tasks where corral-shim is not
	// installed: that must happen before anything else runs (and it never
	// serves a plugin).
	command.MaybeRunShim()

	// stdout carries the go-plugin handshake: log JSON to stderr only.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "corral-executor-command",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv("CORRAL_PLUGIN_LOG_LEVEL")),
	})
	var opts []command.Option
	// The small shim binary beside this one starts in a fraction of the
	// time this binary takes, and stays a fraction of its size per task.
	if self, err := os.Executable(); err == nil {
		if s := command.ShimBeside(filepath.Dir(self)); s != "" {
			opts = append(opts, command.WithShim(s))
		}
	}
	// CORRAL_PLUGIN_CPUPROFILE=DIR: CPU profiles in phases (make bench-isolation).
	defer cpuprofile.FromEnv("corral-executor-command", logger)()
	executor.Serve(command.New(logger, opts...), logger)
}
