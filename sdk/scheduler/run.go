package scheduler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/sdk/discovery"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Config tells Run where the master is and who the framework is.
type Config struct {
	// Master is where the masters are (see sdk/discovery): one host:port
	// (an "http://" prefix is tolerated), a list host:port,host:port, or
	// consul://host:port/prefix. Run follows redirects and leader changes.
	// Required.
	Master string
	// Framework is sent at subscription. Set Framework.Id to fail over to an
	// existing framework; otherwise the master assigns one, which Run reuses
	// for every re-subscription. Required.
	Framework *corralpb.FrameworkInfo
	// SuppressedRoles start suppressed, as Mesos' FrameworkOptions. Later
	// Suppress and Revive calls update the set Run sends when it
	// re-subscribes, so a reconnection does not undo them.
	SuppressedRoles []string
	Logger          hclog.Logger
	// Reconnection backoff: starts at ReconnectMin, doubles up to
	// ReconnectMax, and starts over after each successful subscription.
	ReconnectMin time.Duration // default 200ms
	ReconnectMax time.Duration // default 10s
	// TLS, when set, connects over TLS (mutual when it holds a client
	// certificate; see sdk/tlsconfig). nil speaks plain text.
	TLS *tls.Config
	// Credential, when set, authenticates the framework with a principal
	// and secret from the master's credentials file (HTTP basic
	// credentials sent with every call), for clusters where frameworks
	// have no client certificate. Send it over TLS: without TLS the
	// secret crosses the network in the clear.
	Credential *Credential
	// Standby makes this scheduler a hot standby of Framework.Id (which
	// must be set): it subscribes but gets no events until the active
	// scheduler of the framework disconnects, when the master promotes it
	// and Subscribed is called. Without an active scheduler it becomes
	// active at once.
	Standby bool
	// MaxAcksInFlight bounds the acknowledgements sent or waiting to be
	// sent and not yet answered (default 64). Acks are pipelined and go
	// in batches (one AcknowledgeBatch call for all that are ready, one
	// Acknowledge each with a master that lacks it), so a framework
	// acknowledges at most MaxAcksInFlight per round trip. More is not
	// faster once the master or the machine is saturated: in bench-scale
	// at 10k agents, 512 acks (and 128 launches) in flight per framework
	// lengthened the queues a probe task waits in from a p50 of 114 ms to
	// seconds, without placing more tasks.
	MaxAcksInFlight int
}

// heartbeatMisses is how many heartbeat intervals may pass without any event
// before the stream is considered dead.
const heartbeatMisses = 5

// subscribeTimeout bounds the wait for the SUBSCRIBED event, before the
// heartbeat interval is known.
const subscribeTimeout = 30 * time.Second

var errHeartbeatTimeout = errors.New("no event from the master within 5 heartbeat intervals")

func (c Config) withDefaults() (Config, error) {
	if c.Master == "" {
		return c, errors.New("scheduler: master address is required")
	}
	if c.Framework == nil {
		return c, errors.New("scheduler: framework info is required")
	}
	if c.Standby && c.Framework.GetId() == "" {
		return c, errors.New("scheduler: a standby needs the framework ID (Framework.Id) it stands by for")
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 200 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 10 * time.Second
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.MaxAcksInFlight <= 0 {
		c.MaxAcksInFlight = defaultAcksInFlight
	}
	return c, nil
}

// Run subscribes the framework and delivers events to s until the framework
// tears down (nil), ctx ends (nil; the framework stays registered on the
// master for its failover timeout) or the master refuses it for good.
//
// A refusal is permanent when the master answers InvalidArgument,
// PermissionDenied, Unauthenticated, NotFound, FailedPrecondition or
// Unimplemented, or closes the stream right after an ERROR event. Any other
// break (network, master restart, missed heartbeats) is retried with
// exponential backoff, re-subscribing with the same framework ID so the
// master keeps the framework's tasks.
func Run(ctx context.Context, cfg Config, s Scheduler) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	finder, err := discovery.Parse(cfg.Master)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	r := &runner{
		cfg:    cfg,
		log:    cfg.Logger.Named("scheduler"),
		finder: finder,
		sched:  s,
	}
	r.d = newDriver(nil, cfg.Framework.GetId(), cfg.Framework.GetRoles(), cfg.SuppressedRoles)
	return r.loop(ctx)
}

type runner struct {
	cfg    Config
	log    hclog.Logger
	finder *discovery.Finder
	client corralpb.SchedulerClient
	sched  Scheduler
	d      *driver
	// failed is the master whose session just broke: with Consul, the next
	// Pick waits for the leader key to move away from it.
	failed string
	// reack are the updates whose acknowledgement failed without a
	// definite refusal, to acknowledge again at the next subscription
	// (touched by the session goroutine only; see ackPipe.deliver).
	reack []*corralpb.TaskStatus
}

// connect picks a master and runs one session against it. A redirect from
// a master that does not lead is returned as is; loop follows it.
func (r *runner) connect(ctx context.Context) (bool, error) {
	addr, err := r.finder.Pick(ctx, r.failed)
	if err != nil {
		return false, err
	}
	creds := insecure.NewCredentials()
	if r.cfg.TLS != nil {
		creds = credentials.NewTLS(r.cfg.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c := r.cfg.Credential; c != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(c))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return false, fmt.Errorf("scheduler: dial master %s: %w", addr, err)
	}
	defer conn.Close()
	r.client = corralpb.NewSchedulerClient(conn)
	r.d.setClient(r.client)
	subscribed, err := r.session(ctx)
	// A session that subscribed and then broke: its master most likely
	// died, and with Consul the next Pick waits for the leader key to name
	// another. One that broke before SUBSCRIBED (a master just elected and
	// not serving yet, which answers that it knows of no leader or resets
	// the connection as it switches to serving) tries whoever the key
	// names after the backoff: waiting for the key to move off a live
	// leader cost up to 5 s of a failover (make bench-ha, 1 run in 6).
	r.failed = ""
	if subscribed {
		r.failed = addr
	}
	return subscribed, err
}

func (r *runner) loop(ctx context.Context) error {
	backoff := r.cfg.ReconnectMin
	redirects := 0
	for {
		subscribed, err := r.connect(ctx)
		r.d.setDisconnected()
		switch {
		case r.d.isTornDown():
			r.log.Info("framework torn down", "framework_id", r.d.FrameworkID())
			return nil
		case ctx.Err() != nil:
			return nil
		}
		var re *refusedError
		if r.cfg.Standby && errors.As(err, &re) {
			// Another scheduler of the framework took over (a failover
			// after the masters changed leader): stand by again.
			r.log.Info("another scheduler took over the framework; standing by again", "error", err)
		} else if perm := permanent(err); perm != nil {
			r.log.Error("master refused the framework", "error", perm)
			return perm
		}
		if subscribed {
			backoff = r.cfg.ReconnectMin
		}
		if leader, ok := discovery.LeaderFrom(err); ok && leader != "" && redirects < 3 && !subscribed {
			// A standby named the leader: go there at once (a few hops at
			// most, so stale standbys cannot bounce us forever).
			redirects++
			r.finder.Hint(leader)
			r.failed = ""
			r.log.Info("master is not the leader; following the redirect", "leader", leader)
			continue
		}
		redirects = 0
		r.log.Warn("stream to master broken, reconnecting", "error", err, "backoff", backoff)
		if h, ok := r.sched.(DisconnectHandler); ok {
			h.Disconnected(ctx, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.d.tornDown:
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, r.cfg.ReconnectMax)
	}
}

// refusedError marks an error that must not be retried.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// permanent returns the error Run should give up with, or nil to retry.
func permanent(err error) error {
	var re *refusedError
	if errors.As(err, &re) {
		return re.err
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated,
		codes.NotFound, codes.FailedPrecondition, codes.Unimplemented:
		return fmt.Errorf("scheduler: subscribe refused: %w", callError("subscribe", err))
	}
	return nil
}

// session runs one subscription: it opens the stream, reads events on a
// separate goroutine (which also runs the heartbeat watchdog) and dispatches
// them here, in order. It returns why the stream ended and whether it got as
// far as SUBSCRIBED.
func (r *runner) session(ctx context.Context) (subscribed bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	fw := proto.Clone(r.cfg.Framework).(*corralpb.FrameworkInfo)
	fw.Id = r.d.FrameworkID()
	resubscribe := fw.Id != ""
	r.log.Debug("subscribing", "master", r.cfg.Master, "framework_id", fw.Id)

	stream, err := r.client.Subscribe(sctx, &corralpb.SubscribeRequest{Framework: fw, SuppressedRoles: r.d.suppressedRoles(),
		Standby: r.cfg.Standby, BatchUpdates: true})
	if err != nil {
		return false, err
	}

	events := make(chan *corralpb.Event, 64)
	var recvErr error // written by the reader before it closes events
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(events)
		recvErr = r.read(sctx, cancel, stream, events)
	}()
	defer wg.Wait() // after cancel (deferred later, so runs first)
	defer cancel(nil)

	acks := newAckPipe(ctx, r)
	defer acks.flush(ctx)

	var lastError string // message of an ERROR event, if it was the last one
	for {
		var ev *corralpb.Event
		var ok bool
		select {
		case ev, ok = <-events:
		case res := <-acks.done:
			acks.deliver(ctx, res)
			continue
		case <-r.d.tornDown:
			return subscribed, nil
		}
		if !ok {
			break
		}
		lastError = ""
		switch e := ev.GetEvent().(type) {
		case *corralpb.Event_Subscribed_:
			sub := e.Subscribed
			if fw.Id != "" && sub.GetFrameworkId() != fw.Id {
				r.log.Warn("master assigned a different framework ID", "asked", fw.Id, "got", sub.GetFrameworkId())
			}
			r.d.setSubscribed(sub.GetFrameworkId(), sub.GetStreamId())
			subscribed = true
			r.log.Info("subscribed", "framework_id", sub.GetFrameworkId(), "master_id", sub.GetMasterId(),
				"heartbeat_interval", sub.GetHeartbeatIntervalSeconds(), "reconnected", resubscribe)
			// Before the callback, so that the framework learns how the
			// acknowledgements of the last session ended before it acts
			// (say, reconciles tasks it still thinks are unacknowledged).
			acks.retry(ctx)
			// Before the callback, so that the framework finds its demand as
			// it left it and any Request it makes now replaces the old one.
			for role, err := range r.d.redeclare(ctx) {
				r.log.Warn("re-declaring demand failed", "role", role, "error", err)
			}
			r.sched.Subscribed(ctx, r.d, sub.GetFrameworkId(), resubscribe)
			if resubscribe && !r.d.isTornDown() {
				// Tasks may have changed state while we were away; implicit
				// reconciliation makes the master tell us about all of them.
				if err := r.d.Reconcile(ctx, nil); err != nil {
					r.log.Warn("implicit reconciliation failed", "error", err)
				}
			}
		case *corralpb.Event_Offers_:
			r.sched.Offers(ctx, r.d, e.Offers.GetOffers())
		case *corralpb.Event_Rescind_:
			r.sched.Rescinded(ctx, r.d, e.Rescind.GetOfferId())
		case *corralpb.Event_Update_:
			r.update(ctx, e.Update.GetStatus(), acks)
		case *corralpb.Event_Message_:
			if h, ok := r.sched.(MessageHandler); ok {
				h.Message(ctx, r.d, e.Message.GetAgentId(), e.Message.GetTaskId(), e.Message.GetData())
			}
		case *corralpb.Event_Failure_:
			if h, ok := r.sched.(FailureHandler); ok {
				h.Failure(ctx, r.d, e.Failure.GetAgentId(), e.Failure.GetMessage())
			}
		case *corralpb.Event_Error_:
			lastError = e.Error.GetMessage()
			r.log.Error("error from master", "message", lastError)
			r.sched.Error(ctx, r.d, lastError)
		case *corralpb.Event_InverseOffers_:
			offers := e.InverseOffers.GetInverseOffers()
			if h, ok := r.sched.(InverseOfferHandler); ok {
				h.InverseOffers(ctx, r.d, offers)
			} else {
				logInverseOffers(r.log, offers)
			}
		case *corralpb.Event_Heartbeat_:
		default:
			r.log.Debug("ignoring unknown event", "event", fmt.Sprintf("%T", e))
		}
		if r.d.isTornDown() {
			return subscribed, nil
		}
	}
	// events is closed: the reader has set recvErr.
	if errors.Is(recvErr, io.EOF) && lastError != "" {
		return subscribed, &refusedError{fmt.Errorf("scheduler: master closed the stream after error: %s", lastError)}
	}
	if errors.Is(recvErr, io.EOF) {
		recvErr = errors.New("master closed the stream")
	}
	return subscribed, recvErr
}

// read receives events and passes them on. The watchdog only runs while the
// reader waits on the network, so a slow Scheduler callback (which makes the
// reader wait on the channel) is not mistaken for a dead master.
func (r *runner) read(ctx context.Context, cancel context.CancelCauseFunc,
	stream grpc.ServerStreamingClient[corralpb.Event], out chan<- *corralpb.Event) error {
	timeout := subscribeTimeout
	if r.cfg.Standby {
		// A standby waits for SUBSCRIBED as long as the active scheduler
		// lives; the stream's end (the master dying) still wakes it.
		timeout = 100 * 365 * 24 * time.Hour
	}
	watchdog := time.AfterFunc(timeout, func() { cancel(errHeartbeatTimeout) })
	defer watchdog.Stop()
	for {
		ev, err := stream.Recv()
		watchdog.Stop()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
				return cause
			}
			return err
		}
		if sub := ev.GetSubscribed(); sub != nil {
			timeout = 0 // no heartbeats promised: rely on the transport alone
			if iv := sub.GetHeartbeatIntervalSeconds(); iv > 0 {
				timeout = time.Duration(iv * heartbeatMisses * float64(time.Second))
			}
		}
		if err := pass(ctx, ev, out); err != nil {
			return err
		}
		if timeout > 0 {
			watchdog.Reset(timeout)
		}
	}
}

// pass hands ev to the event loop; an UPDATES event (several updates in
// one message, as Run asks the master for) as its UPDATE events, in order.
func pass(ctx context.Context, ev *corralpb.Event, out chan<- *corralpb.Event) error {
	ups := ev.GetUpdates()
	if ups == nil {
		select {
		case out <- ev:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	for _, u := range ups.GetUpdates() {
		select {
		case out <- &corralpb.Event{Event: &corralpb.Event_Update_{Update: u}}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// update hands a status to the scheduler, then acknowledges it. Acking after
// the callback means a framework that dies inside Update gets it again.
func (r *runner) update(ctx context.Context, st *corralpb.TaskStatus, acks *ackPipe) {
	r.sched.Update(ctx, r.d, st)
	if len(st.GetUuid()) == 0 || r.d.isTornDown() {
		return
	}
	acks.send(ctx, st)
}

// defaultAcksInFlight is Config.MaxAcksInFlight's default.
const defaultAcksInFlight = 64

// ackPipe sends acknowledgements without waiting for each answer before
// the next event: one round trip per update, in series, capped a
// framework at a few thousand updates a second (a few hundred on a loaded
// machine), far below what the master and agents deliver. Pipelining is
// safe because an agent keeps one update per task unacknowledged at a
// time; a task's next ack still waits for the answer to its previous one
// (a master that sent several updates of a task, say after a failover,
// gets their acks in order). Answers come back to the event loop, which
// calls AckObserver, so scheduler callbacks still run one at a time.
//
// Acks ready to go are sent together, in one AcknowledgeBatch call, by
// one sender goroutine: the acks that became ready while its previous
// call was in flight make up the next one. A unary call per ack cost the
// master about five times the ack's own work in gRPC and scheduling
// (bench-scale at 10k agents: Acknowledge was 8.9% of the master's CPU,
// 1.7% of it the ack itself). A master without AcknowledgeBatch answers Unimplemented;
// the pipe then falls back to one Acknowledge per ack for the rest of the
// session.
type ackPipe struct {
	r     *runner
	slots chan struct{} // one per ack in flight or queued for the sender
	done  chan ackResult
	// busy are the tasks with an ack in flight (touched by the event loop
	// only).
	busy map[string]bool

	mu    sync.Mutex
	ready []*corralpb.TaskStatus // queued for the sender's next batch
	kick  chan struct{}          // wakes the sender (capacity 1)
	stop  chan struct{}          // closed by flush: the sender returns
	idle  chan struct{}          // closed by the sender when it returned
	// unary is set once the master answered AcknowledgeBatch with
	// Unimplemented: acks go one call each from then on.
	unary atomic.Bool
}

type ackResult struct {
	st  *corralpb.TaskStatus
	err error
}

// newAckPipe starts the pipe's sender; flush stops it. ctx is what the
// acks are sent under.
func newAckPipe(ctx context.Context, r *runner) *ackPipe {
	n := r.cfg.MaxAcksInFlight
	p := &ackPipe{r: r, slots: make(chan struct{}, n), done: make(chan ackResult, n),
		busy: map[string]bool{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), idle: make(chan struct{})}
	go p.sender(ctx)
	return p
}

// send starts the acknowledgement of st once fewer than MaxAcksInFlight
// are in flight and none for the same task, delivering answers while it
// waits.
func (p *ackPipe) send(ctx context.Context, st *corralpb.TaskStatus) {
	key := st.GetAgentId() + "\x00" + st.GetTaskId()
	for p.busy[key] {
		p.deliver(ctx, <-p.done)
	}
	for {
		select {
		case p.slots <- struct{}{}:
			p.busy[key] = true
			if p.unary.Load() {
				go p.sendOne(ctx, st)
				return
			}
			p.mu.Lock()
			p.ready = append(p.ready, st)
			p.mu.Unlock()
			select {
			case p.kick <- struct{}{}:
			default: // the sender is already due to look
			}
			return
		case res := <-p.done:
			p.deliver(ctx, res)
		}
	}
}

// sendOne acknowledges st with one unary call and hands back the answer.
func (p *ackPipe) sendOne(ctx context.Context, st *corralpb.TaskStatus) {
	err := p.r.d.acknowledge(ctx, st)
	p.answer(st, err)
}

// answer queues st's result and frees its slot. Queued before the slot is
// freed: done never holds more than MaxAcksInFlight, so this never blocks.
func (p *ackPipe) answer(st *corralpb.TaskStatus, err error) {
	p.done <- ackResult{st, err}
	<-p.slots
}

// sender sends the queued acks, all that are ready in one call, until
// flush stops it.
func (p *ackPipe) sender(ctx context.Context) {
	defer close(p.idle)
	for {
		select {
		case <-p.kick:
		case <-p.stop:
			return
		}
		for {
			p.mu.Lock()
			batch := p.ready[:min(len(p.ready), maxAckBatch)]
			p.ready = p.ready[len(batch):]
			if len(p.ready) == 0 {
				p.ready = nil // do not keep the sent ones reachable
			}
			p.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			p.sendBatch(ctx, batch)
		}
	}
}

// sendBatch acknowledges batch in one AcknowledgeBatch call, or one
// Acknowledge each when the master does not have it.
func (p *ackPipe) sendBatch(ctx context.Context, batch []*corralpb.TaskStatus) {
	if errs, ok := p.batchCall(ctx, batch); ok {
		for i, st := range batch {
			p.answer(st, errs[i])
		}
		return
	}
	for _, st := range batch {
		go p.sendOne(ctx, st)
	}
}

// batchCall acknowledges batch in one AcknowledgeBatch call and returns
// each ack's answer (the call's own error for all when it failed as a
// whole). ok is false, and nothing was acknowledged, when the pipe is
// unary or the master turns out not to have the call: from then on the
// pipe acknowledges one call each.
func (p *ackPipe) batchCall(ctx context.Context, batch []*corralpb.TaskStatus) (errs []error, ok bool) {
	if p.unary.Load() {
		return nil, false
	}
	errs, err := p.r.d.acknowledgeBatch(ctx, batch)
	if status.Code(err) == codes.Unimplemented {
		p.r.log.Info("master does not batch acknowledgements; acknowledging one call each",
			"framework_id", p.r.d.FrameworkID())
		p.unary.Store(true)
		return nil, false
	}
	if err != nil {
		errs = make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs, true
}

func (p *ackPipe) deliver(ctx context.Context, res ackResult) {
	delete(p.busy, res.st.GetAgentId()+"\x00"+res.st.GetTaskId())
	if res.err != nil {
		// An ack the master refused (it is not the leader, the stream is
		// stale) never reached the agent, which resends the update. But
		// one whose answer was lost (the master died or stepped down
		// after relaying it: "server closed the stream", "connection
		// reset") may have: the agent is done with the update and will
		// never resend it, and a master elected since knows nothing of a
		// task whose terminal update was acknowledged. Acknowledging
		// again at the next subscription turns such an ack into a
		// definite answer; for the others it is harmless (the agent
		// ignores an ack that matches no update it still holds), and
		// telling the two apart from the client side is guesswork.
		retry := ctx.Err() == nil && !p.r.d.isTornDown() && ackRetryable(res.err)
		p.r.log.Warn("acknowledge failed", "task_id", res.st.GetTaskId(), "error", res.err, "retry_at_resubscribe", retry)
		if retry {
			p.r.reack = append(p.r.reack, res.st)
		}
	}
	if o, ok := p.r.sched.(AckObserver); ok {
		o.Acknowledged(ctx, p.r.d, res.st, res.err)
	}
}

// retry acknowledges again the updates whose acknowledgement failed in an
// earlier session and returns once every one is answered. A framework
// whose leader died with thousands of acks in flight waits for them
// before Subscribed, while the new master is busy taking its agents back,
// so they go in as few round trips as the master takes: AcknowledgeBatch
// calls of maxAckBatch, one after another (a task's acks keep their
// order: within a call the master relays them in order). Held to
// MaxAcksInFlight like the acks of a running session, 6.7k of them took
// over a hundred round trips and delayed Subscribed by 5.9 s in make
// bench-ha at 10k agents; sent in series, one each, it was 44 s. A master
// without the batch call gets them pipelined, one call each.
func (p *ackPipe) retry(ctx context.Context) {
	sts := p.r.reack
	p.r.reack = nil
	for len(sts) > 0 {
		batch := sts[:min(len(sts), maxAckBatch)]
		errs, ok := p.batchCall(ctx, batch)
		if !ok {
			break
		}
		sts = sts[len(batch):]
		for i, st := range batch {
			p.deliver(ctx, ackResult{st, errs[i]})
		}
	}
	for _, st := range sts {
		p.send(ctx, st)
	}
	for len(p.busy) > 0 {
		p.deliver(ctx, <-p.done)
	}
}

// ackRetryable reports whether a failed acknowledgement is worth sending
// again: not when the master answered that it is malformed, not allowed,
// or for an agent it does not know and does not expect back.
func ackRetryable(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.NotFound:
		return false
	}
	return true
}

// flush waits for every ack in flight and delivers the answers (at the end
// of a session, before its connection closes), then stops the sender.
func (p *ackPipe) flush(ctx context.Context) {
	for n := 0; n < cap(p.slots); {
		select {
		case p.slots <- struct{}{}:
			n++
		case res := <-p.done:
			p.deliver(ctx, res)
		}
	}
	for {
		select {
		case res := <-p.done:
			p.deliver(ctx, res)
		default:
			close(p.stop)
			<-p.idle
			return
		}
	}
}
