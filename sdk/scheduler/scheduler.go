// Package scheduler is the SDK for corral frameworks. A framework implements
// Scheduler; Run subscribes it to the master, delivers events to it in order
// on one goroutine and hands it a Driver to answer with (launch, decline,
// kill, ...). Run takes care of what every Mesos framework otherwise writes
// by hand: acknowledging status updates, watching heartbeats, reconnecting
// with backoff under the same framework ID, and after each re-subscription
// re-declaring the framework's demand and reconciling.
package scheduler

import (
	"context"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Scheduler is what a framework implements. Run calls its methods one at a
// time, in the order the master sent the events, so implementations need no
// locking of their own for state touched only from these callbacks.
// A callback that blocks delays every later event, heartbeats excepted:
// heartbeats are watched on a separate goroutine, so a slow callback does not
// make Run believe the stream died.
type Scheduler interface {
	// Subscribed is called after every successful (re-)subscription.
	// reconnected is true when Run subscribed with a framework ID it already
	// held (after a dropped stream, or from Config.Framework.Id); Run then
	// requests an implicit reconciliation right after this callback returns.
	Subscribed(ctx context.Context, d Driver, frameworkID string, reconnected bool)
	// Offers delivers resource offers. Every offer must eventually be
	// launched on or declined; an offer left alone holds its resources until
	// the master rescinds it.
	Offers(ctx context.Context, d Driver, offers []*corralpb.Offer)
	// Rescinded tells that an offer is no longer valid.
	Rescinded(ctx context.Context, d Driver, offerID string)
	// Update delivers a task status update. Run acknowledges it (when it
	// carries a uuid) after Update returns, so a framework that crashes inside
	// Update gets the update again.
	Update(ctx context.Context, d Driver, status *corralpb.TaskStatus)
	// Error reports an asynchronous error from the master. If the master then
	// closes the stream, Run returns an error carrying this message.
	Error(ctx context.Context, d Driver, message string)
}

// MessageHandler is implemented by schedulers that want executor messages.
type MessageHandler interface {
	Message(ctx context.Context, d Driver, agentID, taskID string, data []byte)
}

// FailureHandler is implemented by schedulers that want agent or executor
// failure notices.
type FailureHandler interface {
	Failure(ctx context.Context, d Driver, agentID, message string)
}

// DisconnectHandler is implemented by schedulers that want to know when the
// stream to the master broke. Run reconnects on its own afterwards; Driver
// calls fail with ErrNotSubscribed until the next Subscribed.
type DisconnectHandler interface {
	Disconnected(ctx context.Context, err error)
}

// AckObserver is implemented by schedulers that want to see each automatic
// acknowledgement (err is nil when the master accepted it), right after it
// was sent: the place to act on an update once it is safely acknowledged,
// and handy for tests and metrics. An acknowledgement that failed without
// a definite refusal (the answer was lost with the master: it may have
// reached the agent, which then never resends the update) is sent again
// when Run re-subscribes, before Subscribed, and observed again.
type AckObserver interface {
	Acknowledged(ctx context.Context, d Driver, status *corralpb.TaskStatus, err error)
}

// Driver is the framework's handle on the master. It is safe for concurrent
// use; calls made while no stream is established fail with ErrNotSubscribed.
// Errors answered by the master are *CallError values.
type Driver interface {
	// Launch accepts the offers and launches tasks on them. Resources of the
	// offers not used by tasks are declined with filters.
	Launch(ctx context.Context, offerIDs []string, tasks []*corralpb.TaskInfo, filters *corralpb.Filters) error
	// Decline returns offers; filters.refuse_seconds keeps them away for a
	// while (nil filters mean the master's default, 5 s).
	Decline(ctx context.Context, offerIDs []string, filters *corralpb.Filters) error
	// Revive clears filters and asks for offers again (all roles when none
	// are given).
	Revive(ctx context.Context, roles ...string) error
	// Suppress stops offers (all roles when none are given) until Revive.
	Suppress(ctx context.Context, roles ...string) error
	// Kill asks for a task to be killed; the outcome arrives as an Update.
	Kill(ctx context.Context, taskID, agentID string) error
	// Reconcile asks for the latest state of the given tasks, or of all the
	// framework's non-terminal tasks when tasks is empty. Answers arrive as
	// Updates without uuid.
	Reconcile(ctx context.Context, tasks []*corralpb.ReconcileRequest_Task) error
	// Message sends opaque data to a task's executor.
	Message(ctx context.Context, agentID, taskID string, data []byte) error
	// Request declares the framework's demand under role ("" for the
	// framework's only role): the tasks it still wants to launch, by shape.
	// Each call replaces the previous declaration for the role; no shapes
	// (or only shapes with Count 0) withdraw it, and so does Suppress.
	// Allocators that understand demand size offers to whole tasks and
	// share an agent between frameworks (DRF's progressive filling); others
	// ignore it. A suppressed role must be revived before declaring.
	// Run re-sends the last accepted declaration of every role after a
	// re-subscription, since the master forgets demand when a stream ends.
	Request(ctx context.Context, role string, shapes ...TaskShape) error
	// Teardown removes the framework: the master kills its tasks and forgets
	// it. Run returns nil afterwards.
	Teardown(ctx context.Context) error
	// FrameworkID is the ID the master assigned, or "" before the first
	// subscription.
	FrameworkID() string
}
