package agent

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/pluginhost"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/executor"
	"github.com/corral-project/corral/pluginapi/isolator"
)

// New builds an agent whose isolator and executors are the plugins
// cfg.Isolator and cfg.Executor from catalog, run as separate processes.
func New(cfg Config, catalog *pluginhost.Catalog, logger hclog.Logger) (*Agent, error) {
	if catalog == nil {
		return nil, fmt.Errorf("agent: plugin catalog is required")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	full, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	isoSpec, err := catalog.Resolve(base.KindIsolator, full.Isolator)
	if err != nil {
		return nil, fmt.Errorf("agent isolator: %w", err)
	}
	more := map[string]IsolatorHostFactory{}
	for _, name := range full.Isolators {
		spec, err := catalog.Resolve(base.KindIsolator, name)
		if err != nil {
			return nil, fmt.Errorf("agent isolators: %w", err)
		}
		more[name] = SupervisedIsolator(spec, logger.Named("isolator").With("isolator", name))
	}
	execSpec, err := catalog.Resolve(base.KindExecutor, full.Executor)
	if err != nil {
		return nil, fmt.Errorf("agent executor: %w", err)
	}
	return NewWithPlugins(cfg, Plugins{
		Isolator:      SupervisedIsolator(isoSpec, logger.Named("isolator")),
		MoreIsolators: more,
		Executors:     &PluginExecutors{Spec: execSpec, SocketDir: full.pluginDir(), Logger: logger.Named("executor")},
	}, logger)
}

// SupervisedIsolator runs the isolator plugin under a pluginhost
// Supervisor, which restarts it if it dies.
func SupervisedIsolator(spec pluginhost.Spec, logger hclog.Logger) IsolatorHostFactory {
	return func(onStart func(context.Context, isolator.Isolator) error) (IsolatorHost, error) {
		s := pluginhost.NewSupervisor(spec, pluginhost.Options{Logger: logger}, func(ctx context.Context, inst *pluginhost.Instance) error {
			iso, ok := inst.Raw().(isolator.Isolator)
			if !ok {
				return fmt.Errorf("isolator plugin %q dispensed %T", spec.Name, inst.Raw())
			}
			return onStart(ctx, iso)
		})
		return &supervisedIsolator{s: s}, nil
	}
}

type supervisedIsolator struct{ s *pluginhost.Supervisor }

func (h *supervisedIsolator) Start(ctx context.Context) error { return h.s.Start(ctx) }
func (h *supervisedIsolator) Stop()                           { h.s.Stop() }
func (h *supervisedIsolator) Current() (isolator.Isolator, error) {
	inst, err := h.s.Current()
	if err != nil {
		return nil, err
	}
	iso, ok := inst.Raw().(isolator.Isolator)
	if !ok {
		return nil, fmt.Errorf("isolator plugin dispensed %T", inst.Raw())
	}
	return iso, nil
}

// PluginExecutors starts one executor plugin process per task.
type PluginExecutors struct {
	Spec      pluginhost.Spec
	SocketDir string
	Logger    hclog.Logger
}

// Launch implements ExecutorLauncher.
func (p *PluginExecutors) Launch(ctx context.Context, taskID, logPath string) (*ExecutorHandle, error) {
	inst, reattach, err := pluginhost.StartExecutor(ctx, p.Spec, pluginhost.ExecutorOptions{
		Logger:    p.Logger.With("task_id", taskID),
		LogPath:   logPath,
		SocketDir: p.SocketDir,
	})
	if err != nil {
		return nil, err
	}
	ex, ok := inst.Raw().(executor.Executor)
	if !ok {
		inst.Kill()
		return nil, fmt.Errorf("executor plugin %q dispensed %T", p.Spec.Name, inst.Raw())
	}
	info, err := json.Marshal(reattach)
	if err != nil {
		inst.Kill()
		return nil, fmt.Errorf("executor plugin %q: encode reattach info: %w", p.Spec.Name, err)
	}
	return &ExecutorHandle{Executor: ex, Kill: inst.Kill, Detach: inst.Detach, Reattach: info}, nil
}

// Reattach implements ExecutorLauncher.
func (p *PluginExecutors) Reattach(ctx context.Context, taskID, logPath string, info json.RawMessage) (*ExecutorHandle, error) {
	var ri pluginhost.ReattachInfo
	if err := json.Unmarshal(info, &ri); err != nil {
		return nil, fmt.Errorf("executor reattach info %s: %w", info, err)
	}
	inst, err := pluginhost.ReattachExecutor(ctx, p.Spec, &ri, pluginhost.ExecutorOptions{
		Logger:    p.Logger.With("task_id", taskID),
		LogPath:   logPath,
		SocketDir: p.SocketDir,
	})
	if err != nil {
		return nil, err
	}
	ex, ok := inst.Raw().(executor.Executor)
	if !ok {
		inst.Detach()
		return nil, fmt.Errorf("executor plugin %q dispensed %T", p.Spec.Name, inst.Raw())
	}
	return &ExecutorHandle{Executor: ex, Kill: inst.Kill, Detach: inst.Detach, Reattach: info}, nil
}
