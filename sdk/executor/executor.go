// Package executor is how a framework writes its own custom executor for
// corral: a program the agent starts once per (framework, executor ID) on
// an agent, in a container sized by the executor's resources, which then
// runs many of the framework's tasks (Spark-style) and talks to the agent
// over gRPC on a unix socket in its sandbox.
//
// Implement Handler and call Run from main; see README.md and
// sdk/examples/customexec. The protocol follows the Mesos v1 executor API:
// subscribe, then events (Launch, Kill, Acknowledged, Message, Shutdown)
// and calls (Update, Message). Updates are kept until the agent
// acknowledges them and resent when the executor re-subscribes, so an
// agent restart loses nothing: Run reconnects on its own.
package executor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Environment variables the agent sets for a custom executor.
const (
	EnvEndpoint    = "CORRAL_EXECUTOR_ENDPOINT" // unix:///path/to/socket
	EnvFrameworkID = "CORRAL_FRAMEWORK_ID"
	EnvExecutorID  = "CORRAL_EXECUTOR_ID"
	EnvSandbox     = "CORRAL_SANDBOX"
)

// Handler receives the agent's events, one at a time, in order. A method
// must not block for long: start the task's work in a goroutine and report
// its progress with Driver.Update.
type Handler interface {
	// Launch runs a task. Report TASK_RUNNING once it runs, and a terminal
	// state when it ends.
	Launch(ctx context.Context, d *Driver, task *corralpb.TaskInfo)
	// Kill stops a task within grace, then reports TASK_KILLED.
	Kill(ctx context.Context, d *Driver, taskID string, grace time.Duration)
	// Message is opaque data from the framework's scheduler.
	Message(ctx context.Context, d *Driver, data []byte)
	// Shutdown asks the executor to kill its tasks and exit within grace
	// (Run returns after Shutdown has returned).
	Shutdown(ctx context.Context, d *Driver, grace time.Duration)
}

// Config says how to reach the agent. ConfigFromEnv fills it from what
// the agent sets.
type Config struct {
	Endpoint    string // unix:///path
	FrameworkID string
	ExecutorID  string
	// RecoveryTimeout is how long Run keeps trying to re-subscribe after
	// losing the agent (an agent restart) before it gives up. Default 15 min.
	RecoveryTimeout time.Duration
	// BackoffMax caps the wait between re-subscription attempts (2 s).
	BackoffMax time.Duration
	Logger     hclog.Logger
}

// ConfigFromEnv reads the agent's environment.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Endpoint:    os.Getenv(EnvEndpoint),
		FrameworkID: os.Getenv(EnvFrameworkID),
		ExecutorID:  os.Getenv(EnvExecutorID),
	}
	var missing []string
	for k, v := range map[string]string{EnvEndpoint: c.Endpoint, EnvFrameworkID: c.FrameworkID, EnvExecutorID: c.ExecutorID} {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("executor: %s not set; is this process started by a corral agent?", strings.Join(missing, ", "))
	}
	return c, nil
}

// Driver is the executor's side of the connection: what a Handler calls.
type Driver struct {
	cfg    Config
	client corralpb.ExecutorClient
	logger hclog.Logger

	mu sync.Mutex
	// Kept until acknowledged and resent on re-subscription: the tasks
	// launched without an acknowledged update, and the updates.
	unackedTasks   map[string]*corralpb.TaskInfo
	unackedUpdates []*corralpb.TaskStatus
	subscribed     *corralpb.ExecutorEvent_Subscribed
}

// Info is what the agent said at subscription: the executor's own info
// (with its data), the framework's and the agent's.
func (d *Driver) Info() *corralpb.ExecutorEvent_Subscribed {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.subscribed
}

// Update reports a task's state. The update is kept and resent until the
// framework acknowledges it; an error means only that this attempt did
// not reach the agent (it is resent on the next subscription).
func (d *Driver) Update(ctx context.Context, taskID string, state corralpb.TaskState, message string) error {
	return d.UpdateStatus(ctx, &corralpb.TaskStatus{TaskId: taskID, State: state, Message: message})
}

// UpdateStatus is Update with every TaskStatus field (reason, healthy,
// exit code). Its uuid is chosen here.
func (d *Driver) UpdateStatus(ctx context.Context, st *corralpb.TaskStatus) error {
	st = proto.Clone(st).(*corralpb.TaskStatus)
	st.Uuid = newUUID()
	st.Source = corralpb.TaskStatus_SOURCE_EXECUTOR
	st.TimestampUnixMs = time.Now().UnixMilli()
	d.mu.Lock()
	d.unackedUpdates = append(d.unackedUpdates, st)
	d.mu.Unlock()
	_, err := d.client.Update(ctx, &corralpb.ExecutorUpdateRequest{FrameworkId: d.cfg.FrameworkID, ExecutorId: d.cfg.ExecutorID, Status: st})
	if status.Code(err) == codes.InvalidArgument {
		d.forget(st.GetTaskId(), st.GetUuid()) // refused for good: resending would not help
	}
	return err
}

// SendMessage sends opaque data to the framework's scheduler (best
// effort, as framework messages are in Mesos).
func (d *Driver) SendMessage(ctx context.Context, data []byte) error {
	_, err := d.client.Message(ctx, &corralpb.ExecutorMessageRequest{FrameworkId: d.cfg.FrameworkID, ExecutorId: d.cfg.ExecutorID, Data: data})
	return err
}

func (d *Driver) forget(taskID string, uuid []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, u := range d.unackedUpdates {
		if u.GetTaskId() == taskID && string(u.GetUuid()) == string(uuid) {
			d.unackedUpdates = append(d.unackedUpdates[:i], d.unackedUpdates[i+1:]...)
			break
		}
	}
	delete(d.unackedTasks, taskID)
}

func newUUID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// ErrShutdown is returned by Run after the agent's Shutdown was handled.
var ErrShutdown = errors.New("executor shut down by the agent")

// Run subscribes and dispatches events to h until the agent shuts the
// executor down (nil), ctx ends, or the agent stays unreachable for the
// recovery timeout.
func Run(ctx context.Context, cfg Config, h Handler) error {
	if cfg.RecoveryTimeout <= 0 {
		cfg.RecoveryTimeout = 15 * time.Minute
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	target := cfg.Endpoint
	if !strings.HasPrefix(target, "unix://") {
		return fmt.Errorf("executor: endpoint %q is not unix:///path", target)
	}
	conn, err := grpc.NewClient("unix://"+strings.TrimPrefix(target, "unix://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("executor: dial %s: %w", target, err)
	}
	defer conn.Close()
	d := &Driver{cfg: cfg, client: corralpb.NewExecutorClient(conn), logger: cfg.Logger, unackedTasks: map[string]*corralpb.TaskInfo{}}
	backoff := 100 * time.Millisecond
	lostSince := time.Time{}
	for {
		done, err := d.session(ctx, h)
		if done {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if status.Code(err) == codes.InvalidArgument || status.Code(err) == codes.PermissionDenied {
			return fmt.Errorf("executor: the agent refused the subscription: %w", err)
		}
		if lostSince.IsZero() {
			lostSince = time.Now()
		}
		if time.Since(lostSince) > cfg.RecoveryTimeout {
			return fmt.Errorf("executor: agent unreachable for %s: %w", cfg.RecoveryTimeout, err)
		}
		d.logger.Warn("agent connection lost; re-subscribing", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, cfg.BackoffMax)
		if err == nil {
			lostSince = time.Time{}
		}
	}
}

// session runs one subscription; done is true after Shutdown.
func (d *Driver) session(ctx context.Context, h Handler) (done bool, err error) {
	d.mu.Lock()
	req := &corralpb.ExecutorSubscribeRequest{FrameworkId: d.cfg.FrameworkID, ExecutorId: d.cfg.ExecutorID}
	for _, t := range d.unackedTasks {
		req.UnacknowledgedTasks = append(req.UnacknowledgedTasks, t)
	}
	req.UnacknowledgedUpdates = append(req.UnacknowledgedUpdates, d.unackedUpdates...)
	d.mu.Unlock()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := d.client.Subscribe(sctx, req)
	if err != nil {
		return false, err
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return false, err
		}
		switch e := ev.Event.(type) {
		case *corralpb.ExecutorEvent_Subscribed_:
			d.mu.Lock()
			d.subscribed = e.Subscribed
			d.mu.Unlock()
			d.logger.Info("subscribed", "agent_id", e.Subscribed.GetAgentInfo().GetId())
		case *corralpb.ExecutorEvent_Launch_:
			t := e.Launch.GetTask()
			d.mu.Lock()
			d.unackedTasks[t.GetTaskId()] = t
			d.mu.Unlock()
			h.Launch(ctx, d, t)
		case *corralpb.ExecutorEvent_Kill_:
			h.Kill(ctx, d, e.Kill.GetTaskId(), time.Duration(e.Kill.GetGraceSeconds()*float64(time.Second)))
		case *corralpb.ExecutorEvent_Acknowledged_:
			d.forget(e.Acknowledged.GetTaskId(), e.Acknowledged.GetUuid())
		case *corralpb.ExecutorEvent_Message_:
			h.Message(ctx, d, e.Message.GetData())
		case *corralpb.ExecutorEvent_Shutdown_:
			h.Shutdown(ctx, d, time.Duration(e.Shutdown.GetGraceSeconds()*float64(time.Second)))
			return true, nil
		case *corralpb.ExecutorEvent_Error_:
			d.logger.Error("agent error", "message", e.Error.GetMessage())
		}
	}
}
