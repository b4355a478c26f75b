package master

import (
	"context"
	"time"

	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// Stepper drives a master that is not Run: its caller owns the clock
// (Deps.Now) and decides when allocation cycles and timer work happen.
// The simulator (core/sim) uses it to run the master's real books,
// allocation cycle, proposal validation and offer ledger in virtual time.
// Agents and frameworks connect in-process, without a transport, and
// nothing happens behind the caller's back: every message a call produces
// is waiting in a queue when the call returns.
//
// A Stepper is not safe for concurrent use, and a master driven by one
// must not also be Run.
type Stepper struct {
	m             *Master
	lastHeartbeat time.Time
}

// Stepper returns a driver for m; call StartAllocator first.
func (m *Master) Stepper() *Stepper { return &Stepper{m: m, lastHeartbeat: m.now()} }

// TakeTrigger returns the allocation request pending since the last call
// (an agent, framework or recovered resources changed), if any. The
// running master's loop runs a cycle at once for such a request.
func (s *Stepper) TakeTrigger() (allocator.Trigger, bool) {
	select {
	case t := <-s.m.trigger:
		return t, true
	default:
		return 0, false
	}
}

// RunCycle runs one allocation cycle now, exactly as the allocation loop
// does on a tick or a trigger: one Allocate call with the deltas since the
// plugin's version, proposals validated against the ledger and turned into
// offers, revocations judged.
func (s *Stepper) RunCycle(ctx context.Context, trigger allocator.Trigger) {
	s.m.runCycle(ctx, trigger)
}

// Tick does the timer work due at the clock's now: offer expiry,
// heartbeats, agent and framework timeouts, revocation kills.
func (s *Stepper) Tick() { s.m.timerTick(&s.lastHeartbeat) }

// Stop stops the allocator plugins.
func (s *Stepper) Stop() { s.m.stopSlot() }

// LocalAgent is an agent connected in-process: it receives what the
// master sends agents (RunTask, KillTask, ...) and reports status updates,
// as an agent on the gRPC gateway does.
type LocalAgent struct {
	m    *Master
	id   string
	conn *agentConn
}

// ConnectAgent registers an agent in-process; the Registered message is
// the first one Poll returns.
func (s *Stepper) ConnectAgent(reg *agentproto.Register) (*LocalAgent, error) {
	if reg.GetAgent() == nil {
		return nil, invalid("connect: agent info is required")
	}
	total, err := resources.FromProto(reg.Agent.Resources)
	if err != nil {
		return nil, invalid("connect: agent resources: %v", err)
	}
	if total.IsEmpty() {
		return nil, invalid("connect: agent reports no resources")
	}
	conn := &agentConn{out: newQueue[*agentproto.MasterMessage]()}
	id, err := s.m.registerAgent(reg, total, conn, "")
	if err != nil {
		return nil, err
	}
	return &LocalAgent{m: s.m, id: id, conn: conn}, nil
}

// ID is the agent's ID.
func (a *LocalAgent) ID() string { return a.id }

// Poll returns the next message the master sent the agent, if any.
func (a *LocalAgent) Poll() (*agentproto.MasterMessage, bool) { return a.conn.out.tryPop() }

// Update delivers a status update from the agent; the master has recorded
// and relayed it when Update returns. The master keeps su's status as it
// is (as it keeps a message received on an agent's stream): the caller
// must not change it afterwards.
func (a *LocalAgent) Update(su *agentproto.StatusUpdate) { a.m.handleStatusUpdate(a.id, su) }

// Disconnect breaks the agent's connection, as a broken stream does.
func (a *LocalAgent) Disconnect() { a.m.agentDisconnected(a.id, a.conn) }

// Poll returns the next event of the stream, if one is waiting; it never
// blocks (Next does).
func (s *Subscription) Poll() (*corralpb.Event, bool) { return s.sub.events.tryPop() }

// Header is the call header every call on this stream carries.
func (s *Subscription) Header() *corralpb.CallHeader {
	return &corralpb.CallHeader{FrameworkId: s.frameworkID, StreamId: s.sub.streamID}
}

// tryPop returns the next item without waiting.
func (q *queue[T]) tryPop() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return v, false
	}
	v = q.items[0]
	var zero T
	q.items[0] = zero
	q.items = q.items[1:]
	return v, true
}
