// Package coord is how masters agree on a leader and where they keep the
// few facts a master cannot rebuild (the registry). Two implementations:
//
//   - Standalone (the embedded default): one master, always the leader, the
//     registry in a file under its work dir.
//   - Consul: masters contend for a lock under a KV prefix. The lock's
//     session is tied to a TTL health check that the master process itself
//     refreshes, so a master killed with -9 loses the lock within about a
//     second and one that shuts down cleanly releases it at once. The
//     registry is a KV entry written in a transaction that first checks the
//     lock is still held by the writer's session, so a deposed leader cannot
//     write.
//
// A master must stop acting as leader as soon as its Term's Lost channel
// closes; the Consul implementation closes it before the session could have
// expired on the Consul side (see Consul.stepDownMargin), so two masters
// never act as leader at once.
package coord

import (
	"context"
	"errors"
)

// ErrNotLeader is returned by Store.Store when the caller no longer holds
// the leadership the registry write is tied to.
var ErrNotLeader = errors.New("not the leading master")

// Coordinator elects the leading master and keeps the registry.
type Coordinator interface {
	// Campaign blocks until this master is the leader, or ctx ends (then it
	// returns ctx's error). Errors talking to the coordination service are
	// retried inside; Campaign returns other errors only when it cannot go
	// on at all.
	Campaign(ctx context.Context) (Term, error)
	// Leader returns the address of the current leader, "" when there is
	// none right now.
	Leader(ctx context.Context) (string, error)
	// Registry is the durable registry of the masters.
	Registry() Store
	// Close resigns any leadership at once and deregisters this master.
	Close() error
}

// Term is one period of leadership.
type Term interface {
	// Lost is closed when the leadership ends, for whatever reason. The
	// master must then stop allocating, refuse calls and close its streams.
	Lost() <-chan struct{}
	// Resign gives the leadership up at once (clean shutdown), so another
	// master can take over without waiting for a timeout.
	Resign()
}

// Store holds the registry as an opaque document (the master encodes it).
type Store interface {
	// Load returns the stored registry, nil when none was ever stored.
	Load(ctx context.Context) ([]byte, error)
	// Store replaces it. With Consul, only the current leader can write;
	// others get an error wrapping ErrNotLeader.
	Store(ctx context.Context, data []byte) error
	// String names where the registry lives, for logs and errors.
	String() string
}

// Records is a keyed set of small registry records of one kind (admitted
// agents, frameworks) kept beside the registry document: there can be tens
// of thousands of them, each written when it changes, so they are not
// rewritten as one document. Keys are IDs the master made (agent and
// framework IDs: letters, digits, '-', '_', '.').
type Records interface {
	// List returns every record, by key.
	List(ctx context.Context) (map[string][]byte, error)
	// Update puts and deletes records. With Consul only the current leader
	// can write (an error wrapping ErrNotLeader otherwise); a large update
	// may be applied in several steps, each all or nothing.
	Update(ctx context.Context, put map[string][]byte, del []string) error
	// String names where the records live.
	String() string
}

// RecordStore is a Store that also keeps Records of several kinds.
// FileStore and the Consul registry implement it.
type RecordStore interface {
	Store
	Records(kind string) Records
}
