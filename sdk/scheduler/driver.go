package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// ErrNotSubscribed is returned by Driver calls made while Run has no live
// stream to the master (before the first Subscribed, or while reconnecting).
var ErrNotSubscribed = errors.New("not subscribed to the master")

// defaultCallTimeout bounds a Driver call whose context has no deadline, so
// that a master that accepted the connection but never answers cannot wedge
// the event loop forever.
const defaultCallTimeout = 15 * time.Second

// CallError is a call the master refused or that could not reach it. It
// keeps the gRPC code and the master's own message; errors.Unwrap gives the
// original gRPC error, so status.Code works on it too.
type CallError struct {
	Call    string // "accept", "decline", ...
	Code    codes.Code
	Message string // the master's message, verbatim
	err     error
}

func (e *CallError) Error() string {
	// The master often names the call itself; say it once.
	msg := strings.TrimPrefix(e.Message, e.Call+": ")
	return fmt.Sprintf("%s: %s: %s", e.Call, e.Code, msg)
}

func (e *CallError) Unwrap() error { return e.err }

// GRPCStatus lets status.FromError and status.Code see the master's status.
func (e *CallError) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

func callError(call string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", call, err)
	}
	return &CallError{Call: call, Code: st.Code(), Message: st.Message(), err: err}
}

// driver implements Driver on top of the generated gRPC client. The header
// changes at each (re-)subscription; calls take a snapshot of it.
type driver struct {
	// client is the connection to the master of the current session; it
	// changes when Run follows the leader to another master.
	clientMu sync.Mutex
	client   corralpb.SchedulerClient

	mu          sync.Mutex
	frameworkID string
	streamID    string          // "" while not subscribed
	roles       []string        // the framework's roles, for role-less Suppress/Revive
	suppressed  map[string]bool // roles suppressed now, re-sent at re-subscription
	// demand is the last declaration the master accepted per role, re-sent
	// at re-subscription (the master drops demand with the old stream).
	demand map[string][]*corralpb.TaskShape

	// requestMu serializes Request calls (the framework's and Run's re-sends)
	// so that the master receives declarations in the order demand records
	// them; otherwise a re-send racing a newer Request could win.
	requestMu sync.Mutex

	teardownOnce sync.Once
	tornDown     chan struct{} // closed once the master accepted Teardown
}

func newDriver(client corralpb.SchedulerClient, frameworkID string, roles, suppressed []string) *driver {
	if len(roles) == 0 {
		roles = []string{"*"} // the master's default too
	}
	d := &driver{client: client, frameworkID: frameworkID, roles: roles,
		suppressed: map[string]bool{}, demand: map[string][]*corralpb.TaskShape{}, tornDown: make(chan struct{})}
	for _, r := range suppressed {
		d.suppressed[r] = true
	}
	return d
}

func (d *driver) cli() corralpb.SchedulerClient {
	d.clientMu.Lock()
	defer d.clientMu.Unlock()
	return d.client
}

func (d *driver) setClient(c corralpb.SchedulerClient) {
	d.clientMu.Lock()
	d.client = c
	d.clientMu.Unlock()
}

// setSuppressed records a successful Suppress (on=true) or Revive. No roles
// means all of the framework's roles, as on the wire.
func (d *driver) setSuppressed(on bool, roles []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(roles) == 0 {
		roles = d.roles
	}
	for _, r := range roles {
		if on {
			d.suppressed[r] = true
			delete(d.demand, r) // the master drops it too
		} else {
			delete(d.suppressed, r)
		}
	}
}

// suppressedRoles is what a re-subscription must carry so that the master,
// which takes suppression from SUBSCRIBE, keeps what the framework asked for.
func (d *driver) suppressedRoles() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.suppressed))
	for r := range d.suppressed {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func (d *driver) setSubscribed(frameworkID, streamID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.frameworkID, d.streamID = frameworkID, streamID
}

// setDisconnected keeps the framework ID (needed to re-subscribe) and drops
// the stream ID so calls fail fast instead of being refused as stale.
func (d *driver) setDisconnected() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.streamID = ""
}

func (d *driver) FrameworkID() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.frameworkID
}

func (d *driver) isTornDown() bool {
	select {
	case <-d.tornDown:
		return true
	default:
		return false
	}
}

// header returns the call header, or an error naming the call when there is
// no stream to attach it to.
func (d *driver) header(call string) (*corralpb.CallHeader, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.streamID == "" {
		return nil, fmt.Errorf("%s: %w", call, ErrNotSubscribed)
	}
	return &corralpb.CallHeader{FrameworkId: d.frameworkID, StreamId: d.streamID}, nil
}

// call runs one unary RPC with the current header and converts its error.
func call[Req any](ctx context.Context, d *driver, name string, build func(h *corralpb.CallHeader) Req,
	rpc func(context.Context, Req) error) error {
	h, err := d.header(name)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCallTimeout)
		defer cancel()
	}
	return callError(name, rpc(ctx, build(h)))
}

func (d *driver) Launch(ctx context.Context, offerIDs []string, tasks []*corralpb.TaskInfo, filters *corralpb.Filters) error {
	return call(ctx, d, "accept", func(h *corralpb.CallHeader) *corralpb.AcceptRequest {
		req := &corralpb.AcceptRequest{Header: h, OfferIds: offerIDs, Filters: filters}
		if len(tasks) > 0 {
			req.Operations = []*corralpb.Operation{{Op: &corralpb.Operation_Launch_{
				Launch: &corralpb.Operation_Launch{Tasks: tasks}}}}
		}
		return req
	}, func(ctx context.Context, r *corralpb.AcceptRequest) error {
		_, err := d.cli().Accept(ctx, r)
		return err
	})
}

func (d *driver) Decline(ctx context.Context, offerIDs []string, filters *corralpb.Filters) error {
	return call(ctx, d, "decline", func(h *corralpb.CallHeader) *corralpb.DeclineRequest {
		return &corralpb.DeclineRequest{Header: h, OfferIds: offerIDs, Filters: filters}
	}, func(ctx context.Context, r *corralpb.DeclineRequest) error {
		_, err := d.cli().Decline(ctx, r)
		return err
	})
}

func (d *driver) Revive(ctx context.Context, roles ...string) error {
	err := call(ctx, d, "revive", func(h *corralpb.CallHeader) *corralpb.ReviveRequest {
		return &corralpb.ReviveRequest{Header: h, Roles: roles}
	}, func(ctx context.Context, r *corralpb.ReviveRequest) error {
		_, err := d.cli().Revive(ctx, r)
		return err
	})
	if err == nil {
		d.setSuppressed(false, roles)
	}
	return err
}

func (d *driver) Suppress(ctx context.Context, roles ...string) error {
	err := call(ctx, d, "suppress", func(h *corralpb.CallHeader) *corralpb.SuppressRequest {
		return &corralpb.SuppressRequest{Header: h, Roles: roles}
	}, func(ctx context.Context, r *corralpb.SuppressRequest) error {
		_, err := d.cli().Suppress(ctx, r)
		return err
	})
	if err == nil {
		d.setSuppressed(true, roles)
	}
	return err
}

func (d *driver) Kill(ctx context.Context, taskID, agentID string) error {
	return call(ctx, d, "kill", func(h *corralpb.CallHeader) *corralpb.KillRequest {
		return &corralpb.KillRequest{Header: h, TaskId: taskID, AgentId: agentID}
	}, func(ctx context.Context, r *corralpb.KillRequest) error {
		_, err := d.cli().Kill(ctx, r)
		return err
	})
}

func (d *driver) Reconcile(ctx context.Context, tasks []*corralpb.ReconcileRequest_Task) error {
	return call(ctx, d, "reconcile", func(h *corralpb.CallHeader) *corralpb.ReconcileRequest {
		return &corralpb.ReconcileRequest{Header: h, Tasks: tasks}
	}, func(ctx context.Context, r *corralpb.ReconcileRequest) error {
		_, err := d.cli().Reconcile(ctx, r)
		return err
	})
}

func (d *driver) Message(ctx context.Context, agentID, taskID string, data []byte) error {
	return call(ctx, d, "message", func(h *corralpb.CallHeader) *corralpb.MessageRequest {
		return &corralpb.MessageRequest{Header: h, AgentId: agentID, TaskId: taskID, Data: data}
	}, func(ctx context.Context, r *corralpb.MessageRequest) error {
		_, err := d.cli().Message(ctx, r)
		return err
	})
}

func (d *driver) Teardown(ctx context.Context) error {
	err := call(ctx, d, "teardown", func(h *corralpb.CallHeader) *corralpb.TeardownRequest {
		return &corralpb.TeardownRequest{Header: h}
	}, func(ctx context.Context, r *corralpb.TeardownRequest) error {
		_, err := d.cli().Teardown(ctx, r)
		return err
	})
	if err == nil {
		d.teardownOnce.Do(func() { close(d.tornDown) })
	}
	return err
}

func (d *driver) Request(ctx context.Context, role string, shapes ...TaskShape) error {
	wire, err := shapesToProto(shapes)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	d.requestMu.Lock()
	defer d.requestMu.Unlock()
	return d.request(ctx, role, wire)
}

// request sends one RequestCall and records it once accepted. The caller
// holds requestMu.
func (d *driver) request(ctx context.Context, role string, shapes []*corralpb.TaskShape) error {
	err := call(ctx, d, "request", func(h *corralpb.CallHeader) *corralpb.RequestCall {
		return &corralpb.RequestCall{Header: h, Role: role, Shapes: shapes}
	}, func(ctx context.Context, r *corralpb.RequestCall) error {
		_, err := d.cli().Request(ctx, r)
		return err
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if role == "" && len(d.roles) == 1 {
		role = d.roles[0] // what the master resolves "" to
	}
	if len(shapes) == 0 {
		delete(d.demand, role)
	} else {
		d.demand[role] = shapes
	}
	return nil
}

// redeclare re-sends every recorded declaration on the current stream. A
// failure is returned per role; the record stays, so the next
// re-subscription tries again.
func (d *driver) redeclare(ctx context.Context) map[string]error {
	d.requestMu.Lock()
	defer d.requestMu.Unlock()
	d.mu.Lock()
	roles := make([]string, 0, len(d.demand))
	for r := range d.demand {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	shapes := make([][]*corralpb.TaskShape, len(roles))
	for i, r := range roles {
		shapes[i] = d.demand[r]
	}
	d.mu.Unlock()
	var errs map[string]error
	for i, r := range roles {
		if err := d.request(ctx, r, shapes[i]); err != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[r] = err
		}
	}
	return errs
}

// acknowledge is the automatic ACKNOWLEDGE Run sends after Update returns.
func (d *driver) acknowledge(ctx context.Context, st *corralpb.TaskStatus) error {
	return call(ctx, d, "acknowledge", func(h *corralpb.CallHeader) *corralpb.AcknowledgeRequest {
		return &corralpb.AcknowledgeRequest{Header: h, AgentId: st.GetAgentId(), TaskId: st.GetTaskId(), Uuid: st.GetUuid()}
	}, func(ctx context.Context, r *corralpb.AcknowledgeRequest) error {
		_, err := d.cli().Acknowledge(ctx, r)
		return err
	})
}

// maxAckBatch is the most acks one AcknowledgeBatch carries: the master's
// limit (sdk/proto/corral.proto).
const maxAckBatch = 1024

// acknowledgeBatch acknowledges sts in one AcknowledgeBatch call. The
// first error is the call's own (not subscribed, refused as a whole, the
// master unreachable or without the RPC: Unimplemented); otherwise errs[i]
// is how the master answered sts[i], nil when it took it, a *CallError
// (call "acknowledge") as the unary call would have returned when not.
func (d *driver) acknowledgeBatch(ctx context.Context, sts []*corralpb.TaskStatus) (errs []error, err error) {
	err = call(ctx, d, "acknowledge", func(h *corralpb.CallHeader) *corralpb.AcknowledgeBatchRequest {
		req := &corralpb.AcknowledgeBatchRequest{Header: h, Acks: make([]*corralpb.AcknowledgeBatchRequest_Ack, len(sts))}
		for i, st := range sts {
			req.Acks[i] = &corralpb.AcknowledgeBatchRequest_Ack{AgentId: st.GetAgentId(), TaskId: st.GetTaskId(), Uuid: st.GetUuid()}
		}
		return req
	}, func(ctx context.Context, r *corralpb.AcknowledgeBatchRequest) error {
		resp, err := d.cli().AcknowledgeBatch(ctx, r)
		if err != nil {
			return err
		}
		errs, err = ackResults(resp, len(sts))
		return err
	})
	return errs, err
}

// ackResults turns an AcknowledgeBatchResponse into one error per ack. A
// response without exactly one result per ack is a broken master: every
// ack's outcome is then unknown.
func ackResults(resp *corralpb.AcknowledgeBatchResponse, n int) ([]error, error) {
	res := resp.GetResults()
	if len(res) != n {
		return nil, status.Errorf(codes.Internal, "the master answered %d results for %d acks", len(res), n)
	}
	errs := make([]error, n)
	for i, r := range res {
		if c := codes.Code(r.GetCode()); c != codes.OK {
			errs[i] = callError("acknowledge", status.Error(c, r.GetMessage()))
		}
	}
	return errs, nil
}
