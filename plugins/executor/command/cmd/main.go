// Command corral-executor-command serves the command executor plugin.
package main

import (
	"os"
	"path/filepath"

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
	var opts []command.Option
	// The small launcher binary beside this one starts in a fraction of
	// the time this binary takes; without it, this binary is the launcher.
	if self, err := os.Executable(); err == nil {
		if l := filepath.Join(filepath.Dir(self), command.LauncherName); isExecutable(l) {
			opts = append(opts, command.WithLauncher(l))
		}
	}
	executor.Serve(command.New(logger, opts...), logger)
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
