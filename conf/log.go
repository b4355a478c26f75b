package conf

import (
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
)

// NewLogger returns the root logger of a corral process, named name, at
// cfg.LogLevel, as text on stderr or as JSON when cfg.LogJSON is set.
func NewLogger(cfg *Config, name string) hclog.Logger {
	return newLogger(cfg, name, os.Stderr)
}

func newLogger(cfg *Config, name string, w io.Writer) hclog.Logger {
	level := hclog.LevelFromString(cfg.LogLevel)
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		JSONFormat: cfg.LogJSON,
		Output:     w,
	})
}
