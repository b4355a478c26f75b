package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

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
		Executors: &PluginExecutors{Spec: execSpec, SocketDir: full.pluginDir(),
			LogPath: filepath.Join(full.WorkDir, "executor-"+execSpec.Name+".log"), Logger: logger.Named("executor")},
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

// PluginExecutors runs one executor plugin process for the whole agent
// (API v2) and hands every task a view of it bound to the task's ID. The
// process is started by the first Launch and again, once, by the first
// Launch after it died (the tasks it held are taken over by the new one
// through Recover). After an agent restart, the tasks' Reattach calls
// share one reattach per process. The process lives in its own session and
// outlives the agent; Close decides whether it stays for the next agent.
type PluginExecutors struct {
	Spec      pluginhost.Spec
	SocketDir string
	// LogPath receives the executor process's own log; "" means the log
	// path of the Launch that starts it.
	LogPath string
	Logger  hclog.Logger

	// startMu serializes starts and reattaches: a burst of launches, or a
	// thousand tasks finding their executor dead, start one process.
	startMu sync.Mutex
	mu      sync.Mutex
	rec     ExecutorRecorder           // where started processes are recorded; nil: nowhere
	cur     *sharedExecutor            // the process new tasks go to
	byKey   map[string]*sharedExecutor // reattached or started, by reattachKey
	failed  map[string]error           // reattach failures, by reattachKey
}

// sharedExecutor is one executor plugin process and the tasks using it.
type sharedExecutor struct {
	key  string // reattachKey of info
	inst *pluginhost.Instance
	ex   executor.Executor
	info json.RawMessage
	refs int // tasks holding a handle
}

// reattachKey identifies a process in reattach info: its pid and start time.
func reattachKey(info json.RawMessage) (string, error) {
	var ri pluginhost.ReattachInfo
	if err := json.Unmarshal(info, &ri); err != nil {
		return "", fmt.Errorf("executor reattach info %s: %w", info, err)
	}
	return fmt.Sprintf("%d/%d", ri.Pid, ri.StartTicks), nil
}

// Launch implements ExecutorLauncher: the task gets the agent's executor,
// started now if none is running.
func (p *PluginExecutors) Launch(ctx context.Context, taskID, logPath string) (*ExecutorHandle, error) {
	p.mu.Lock()
	if se := p.cur; se != nil && !se.inst.Exited() {
		h := p.handleLocked(se, taskID)
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()
	p.startMu.Lock()
	defer p.startMu.Unlock()
	p.mu.Lock()
	if se := p.cur; se != nil && !se.inst.Exited() {
		// Another launch started it while this one waited.
		h := p.handleLocked(se, taskID)
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()
	if p.LogPath != "" {
		logPath = p.LogPath
	}
	inst, reattach, err := pluginhost.StartExecutor(ctx, p.Spec, pluginhost.ExecutorOptions{
		Logger:    p.Logger,
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
	key, _ := reattachKey(info) // just encoded
	se := &sharedExecutor{key: key, inst: inst, ex: ex, info: info}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rec != nil {
		// Before any task uses it: an agent killed after this line finds
		// the process in its checkpoint even if no task record names it.
		if err := p.rec.PutExecutor(key, info); err != nil {
			inst.Kill()
			return nil, fmt.Errorf("executor plugin %q: %w", p.Spec.Name, err)
		}
	}
	if p.byKey == nil {
		p.byKey = map[string]*sharedExecutor{}
	}
	p.byKey[key] = se
	p.cur = se
	p.Logger.Info("executor process started", "pid", inst.Pid())
	return p.handleLocked(se, taskID), nil
}

// Reattach implements ExecutorLauncher. Tasks naming the same process share
// one reattach; a process found gone is not tried again.
func (p *PluginExecutors) Reattach(ctx context.Context, taskID, logPath string, info json.RawMessage) (*ExecutorHandle, error) {
	key, err := reattachKey(info)
	if err != nil {
		return nil, err
	}
	get := func() (*ExecutorHandle, error, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if se := p.byKey[key]; se != nil && !se.inst.Exited() {
			return p.handleLocked(se, taskID), nil, true
		}
		if err := p.failed[key]; err != nil {
			return nil, err, true
		}
		return nil, nil, false
	}
	if h, err, ok := get(); ok {
		return h, err
	}
	p.startMu.Lock()
	defer p.startMu.Unlock()
	if h, err, ok := get(); ok {
		return h, err
	}
	var ri pluginhost.ReattachInfo
	_ = json.Unmarshal(info, &ri) // reattachKey decoded it
	inst, err := pluginhost.ReattachExecutor(ctx, p.Spec, &ri, p.reattachOptions(logPath))
	var ex executor.Executor
	if err == nil {
		var ok bool
		if ex, ok = inst.Raw().(executor.Executor); !ok {
			inst.Detach()
			err = fmt.Errorf("executor plugin %q dispensed %T", p.Spec.Name, inst.Raw())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			// Not for a caller's expired deadline: another task may try.
			if p.failed == nil {
				p.failed = map[string]error{}
			}
			p.failed[key] = err
		}
		return nil, err
	}
	se := &sharedExecutor{key: key, inst: inst, ex: ex, info: info}
	if p.byKey == nil {
		p.byKey = map[string]*sharedExecutor{}
	}
	p.byKey[key] = se
	if p.cur == nil || p.cur.inst.Exited() {
		p.cur = se
	}
	p.Logger.Info("reattached to executor process", "pid", inst.Pid())
	return p.handleLocked(se, taskID), nil
}

// handleLocked is task taskID's handle on se. Caller holds p.mu.
func (p *PluginExecutors) handleLocked(se *sharedExecutor, taskID string) *ExecutorHandle {
	se.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			p.mu.Lock()
			se.refs--
			p.mu.Unlock()
			if se.inst.Exited() {
				return
			}
			// The agent has the task's result: let the executor drop it,
			// off the path of the task's terminal update.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), pluginCallTimeout)
				defer cancel()
				if err := se.ex.Forget(ctx, taskID); err != nil {
					p.Logger.Debug("executor forget", "task_id", taskID, "error", err)
				}
			}()
		})
	}
	return &ExecutorHandle{
		Executor:    &boundExecutor{ex: se.ex, task: taskID},
		Release:     release,
		KillProcess: se.inst.HardKill,
		// Only a stopping agent detaches: every task lets go at once.
		Detach:   se.inst.Detach,
		Reattach: se.info,
	}
}

// Close ends the agent's use of its executor processes. With keep, a
// process that still holds tasks is left running for the next agent to
// reattach to; every other process is ended.
func (p *PluginExecutors) Close(keep bool) {
	p.mu.Lock()
	all := make([]*sharedExecutor, 0, len(p.byKey))
	for _, se := range p.byKey {
		all = append(all, se)
	}
	p.byKey, p.cur = nil, nil
	p.mu.Unlock()
	for _, se := range all {
		if se.inst.Exited() {
			continue
		}
		if keep && se.holdsTasks() {
			se.inst.Detach()
			continue
		}
		se.inst.Kill()
		p.forget(se.key)
	}
}

// ExecutorRecorder keeps the reattach info of executor processes across
// agent restarts (the agent's checkpoint).
type ExecutorRecorder interface {
	PutExecutor(key string, info []byte) error
	DeleteExecutor(key string) error
}

// SetRecorder makes p record every executor process it starts in rec,
// from then on.
func (p *PluginExecutors) SetRecorder(rec ExecutorRecorder) {
	p.mu.Lock()
	p.rec = rec
	p.mu.Unlock()
}

func (p *PluginExecutors) forget(key string) {
	p.mu.Lock()
	rec := p.rec
	p.mu.Unlock()
	if rec == nil {
		return
	}
	if err := rec.DeleteExecutor(key); err != nil {
		p.Logger.Warn("forgetting an ended executor process", "error", err)
	}
}

// Sweep ends the recorded executor processes that recovery did not
// reattach to: no task the checkpoint names runs on them, so nothing the
// agent knows of needs them, and left alone they would run forever (an
// agent killed while its executor sat idle). A task such a process may
// still hold is unknown to the agent: its container is an orphan the
// isolator's Recover destroys. Records of processes already gone are
// dropped. Call it after every task's Reattach.
func (p *PluginExecutors) Sweep(ctx context.Context, recorded map[string][]byte) {
	for key, info := range recorded {
		p.mu.Lock()
		_, used := p.byKey[key]
		p.mu.Unlock()
		if used {
			continue
		}
		var ri pluginhost.ReattachInfo
		if err := json.Unmarshal(info, &ri); err != nil {
			p.Logger.Warn("dropping an unreadable executor record", "key", key, "error", err)
			p.forget(key)
			continue
		}
		inst, err := pluginhost.ReattachExecutor(ctx, p.Spec, &ri, p.reattachOptions(""))
		if err != nil {
			p.Logger.Debug("recorded executor process is gone", "pid", ri.Pid, "error", err)
			p.forget(key)
			continue
		}
		p.Logger.Info("ending an executor process no recovered task uses", "pid", inst.Pid())
		inst.Kill()
		p.forget(key)
	}
}

// reattachOptions are the options a recorded executor process is
// reattached with, by Reattach and by Sweep alike; the agent's LogPath,
// when set, wins over the task's.
func (p *PluginExecutors) reattachOptions(logPath string) pluginhost.ExecutorOptions {
	if p.LogPath != "" {
		logPath = p.LogPath
	}
	return pluginhost.ExecutorOptions{Logger: p.Logger, LogPath: logPath, SocketDir: p.SocketDir}
}

// holdsTasks asks the process whether any of its tasks still runs; one
// that does not answer is assumed to (leaving it is safe, killing it is not).
func (se *sharedExecutor) holdsTasks() bool {
	ctx, cancel := context.WithTimeout(context.Background(), pluginCallTimeout)
	defer cancel()
	v, err := se.ex.Version(ctx)
	return err != nil || v.Tasks > 0
}

// boundExecutor is one task's view of a shared executor.
type boundExecutor struct {
	ex   executor.Executor
	task string
}

func (b *boundExecutor) Launch(ctx context.Context, req *executor.LaunchRequest, cs executor.ContainerService) (*executor.LaunchResponse, error) {
	if req.TaskID != b.task {
		return nil, fmt.Errorf("executor handle of task %q cannot launch task %q", b.task, req.TaskID)
	}
	return b.ex.Launch(ctx, req, cs)
}

func (b *boundExecutor) Wait(ctx context.Context) (*executor.ExitResult, error) {
	return b.ex.Wait(ctx, b.task)
}

func (b *boundExecutor) Signal(ctx context.Context, sig syscall.Signal) error {
	return b.ex.Signal(ctx, b.task, sig)
}

func (b *boundExecutor) Shutdown(ctx context.Context, grace time.Duration) error {
	return b.ex.Shutdown(ctx, b.task, grace)
}

func (b *boundExecutor) Stats(ctx context.Context) (*executor.Stats, error) {
	return b.ex.Stats(ctx, b.task)
}

func (b *boundExecutor) Recover(ctx context.Context, req *executor.RecoverRequest) (*executor.RecoverResponse, error) {
	if req.TaskID != b.task {
		return nil, fmt.Errorf("executor handle of task %q cannot recover task %q", b.task, req.TaskID)
	}
	r, ok := b.ex.(executor.Recoverer)
	if !ok {
		return nil, errors.New("the executor cannot take over tasks")
	}
	return r.Recover(ctx, req)
}
