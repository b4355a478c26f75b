package master

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/corral-project/corral/core/master/agentproto"
	"github.com/corral-project/corral/pluginapi/allocator"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// agentEntry is the master's record of one agent.
type agentEntry struct {
	info      *corralpb.AgentInfo
	total     resources.Resources
	used      resources.Resources // tasks + outstanding offers
	connected bool
	// conn is the live stream to the agent; nil while disconnected.
	conn *agentConn
	// disconnectedAt starts the re-registration timeout.
	disconnectedAt time.Time
	registeredAt   time.Time
	// drain is set while the operator drains the agent (maintenance): no
	// offers, tasks get notice and are killed at the deadline.
	drain *drainState
	// closedAt is the version of the delta with which the agent last
	// stopped taking offers as it was (disconnected, drained,
	// re-registered): an invalid proposal for it, made on a view older than
	// that, is stale, not an allocator fault.
	closedAt uint64
	// secretHash is the SHA-256 of the secret bound to the agent ID; a
	// re-registration must present the secret (Nomad's node SecretID).
	secretHash [32]byte
}

// drainState is an agent's maintenance window.
type drainState struct {
	since    time.Time
	deadline time.Time
}

// frameworkEntry is the master's record of one framework.
type frameworkEntry struct {
	info       *corralpb.FrameworkInfo
	roles      map[string]bool
	suppressed map[string]bool
	connected  bool
	sub        *subscription // nil while disconnected
	streamID   string
	// standbys are hot-standby schedulers, oldest first, promoted when
	// the active stream ends.
	standbys []*standby
	// disconnectedAt starts the failover timeout.
	disconnectedAt time.Time
	registeredAt   time.Time
	// limiter bounds the framework's calls per second; nil when unlimited.
	limiter *rate.Limiter
	// recovered marks an entry rebuilt from an agent's report after a
	// master failover: its scheduler has not subscribed to this master yet.
	recovered bool
	tasks     map[string]*taskEntry
	completed []*taskEntry // bounded, oldest first
	offers    map[string]*offerEntry
	// filters are the framework's decline filters, kept for snapshots;
	// expired ones linger until addFilter sweeps them.
	filters []allocator.Filter
	// filtersSweepAt is the length at which addFilter next drops the
	// expired filters.
	filtersSweepAt int
	// closedAt is the version of the delta with which the framework last
	// stopped taking offers as it was (suppressed a role, disconnected,
	// changed its roles): see agentEntry.closedAt.
	closedAt uint64
	// demands is what the framework declared it still wants, by role.
	demands map[string][]allocator.TaskShape
	// minAllocatable is FrameworkInfo.min_allocatable, converted once when
	// the framework subscribes.
	minAllocatable map[string][]resources.Resources
	// executors are the framework's custom executors, by agent and
	// executor ID; nil until it launches one.
	executors map[executorKey]*executorEntry
}

// taskEntry is one task the master knows.
type taskEntry struct {
	info        *corralpb.TaskInfo
	frameworkID string
	role        string
	agentID     string
	resources   resources.Resources
	state       corralpb.TaskState
	status      *corralpb.TaskStatus // latest
	// recovered is set once the task's resources went back to the pool.
	recovered bool
	createdAt time.Time
	// startedAt is the allocation clock when the master learnt of the task
	// (launch or adoption): the age policies and the guarantee order use.
	startedAt allocator.LogicalTime
	// withinGuarantee mirrors what the allocator was last told.
	withinGuarantee bool
	// history is the states the task went through, oldest first
	// (bounded by maxTaskHistory).
	history []transition
	// revocation is set while the allocator's revocation of the task is
	// pending, and kept once the master has sent the kill so that the
	// terminal update can be reported as a preemption.
	revocation *revocation
}

// transition is a state a task entered.
type transition struct {
	state           corralpb.TaskState
	at              time.Time
	reason, message string
	source          string
}

// maxTaskHistory bounds a task's history: a task flapping between states
// (health checks, reconnects) must not grow the master without bound.
const maxTaskHistory = 32

// offerEntry is an outstanding offer: its resources count as used on the
// agent until it is accepted, declined, rescinded or expires.
type offerEntry struct {
	id          string
	frameworkID string
	role        string
	agentID     string
	resources   resources.Resources
	createdAt   time.Time
}

func terminal(s corralpb.TaskState) bool {
	switch s {
	case corralpb.TaskState_TASK_FINISHED, corralpb.TaskState_TASK_FAILED, corralpb.TaskState_TASK_KILLED,
		corralpb.TaskState_TASK_LOST, corralpb.TaskState_TASK_ERROR:
		return true
	}
	return false
}

// agentConn is the master's half of an agent's Connect stream. Sends are
// queued so that the master never blocks on a slow agent while holding its
// lock.
type agentConn struct {
	out *queue[*agentproto.MasterMessage]
}

func (c *agentConn) send(m *agentproto.MasterMessage) { c.out.push(m) }

// subscription is a framework's event stream.
type subscription struct {
	streamID string
	events   *queue[*corralpb.Event]
}

func (s *subscription) send(e *corralpb.Event) { s.events.push(e) }
