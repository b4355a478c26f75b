// Package cpuprofile lets a plugin process write CPU profiles (go tool
// pprof) in phases a benchmark chooses, so that the cost of, say, launching
// a thousand tasks can be told apart from starting the plugin or
// destroying them.
//
// With CORRAL_PLUGIN_CPUPROFILE=DIR in its environment (plugins inherit
// the agent's), a process calling FromEnv profiles itself into
// DIR/<name>-<pid>-1.pprof from that moment; each SIGUSR2 ends the current
// profile and starts the next (-2, -3, ...), and the stop function ends
// the last. Without the variable FromEnv does nothing.
package cpuprofile

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// Env names the directory profiles are written to.
const Env = "CORRAL_PLUGIN_CPUPROFILE"

// FromEnv starts profiling if Env is set and returns what ends it.
func FromEnv(name string, logger hclog.Logger) (stop func()) {
	dir := os.Getenv(Env)
	if dir == "" {
		return func() {}
	}
	p := &phases{dir: dir, name: name, logger: logger}
	if err := p.next(); err != nil {
		logger.Error("cpu profile not started", "dir", dir, "error", err)
		return func() {}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				if err := p.next(); err != nil {
					logger.Error("next cpu profile not started", "error", err)
				}
			case <-done:
				return
			}
		}
	}()
	return sync.OnceFunc(func() {
		signal.Stop(sig)
		close(done)
		p.end()
	})
}

type phases struct {
	dir, name string
	logger    hclog.Logger
	mu        sync.Mutex
	n         int
	f         *os.File
}

// next ends the current profile, if any, and starts the next.
func (p *phases) next() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
	p.n++
	path := filepath.Join(p.dir, fmt.Sprintf("%s-%d-%d.pprof", p.name, os.Getpid(), p.n))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	p.f = f
	p.logger.Info("writing a cpu profile until SIGUSR2 or exit", "path", path)
	return nil
}

func (p *phases) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
}

func (p *phases) endLocked() {
	if p.f == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := p.f.Close(); err != nil {
		p.logger.Error("cpu profile not written", "path", p.f.Name(), "error", err)
	}
	p.f = nil
}
