// Package checkpoint is the agent's durable memory: a bbolt file under its
// work dir that holds what a restarted agent needs to find its tasks again
// (agent ID, frameworks, tasks with their containers, last states and
// executor reattach info) and the status updates the master has not yet
// acknowledged. The agent writes a record before each step others can see,
// so a crash at any point leaves a file recovery can act on.
//
// Every write is one bbolt transaction, fsynced on commit; concurrent
// writers are coalesced (bbolt Batch), so a burst of task launches costs a
// few fsyncs rather than one per step.
package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this code reads and writes. A file with
// another version is refused rather than misread.
const SchemaVersion = 1

// FileName is the store's name under the agent's work dir.
const FileName = "checkpoint.db"

var (
	bucketMeta       = []byte("meta")
	bucketFrameworks = []byte("frameworks")
	bucketTasks      = []byte("tasks")
	bucketUpdates    = []byte("updates")
	// bucketExecutors holds the reattach info of every executor process
	// the agent started, by process key, until it is ended: an executor
	// that outlives its tasks is found by the next agent even when no task
	// record names it. Added without a schema bump: Open creates it in
	// older files, which simply had none recorded.
	bucketExecutors = []byte("executors")

	keySchema  = []byte("schema_version")
	keyAgentID = []byte("agent_id")
	keyAgent   = []byte("agent_info")
)

// Task is what the agent remembers of one task.
type Task struct {
	FrameworkID string `json:"framework_id"`
	TaskID      string `json:"task_id"`
	// Info is the TaskInfo as the master sent it (protobuf wire format).
	Info        []byte `json:"info"`
	ContainerID string `json:"container_id"`
	Isolator    string `json:"isolator"`
	Sandbox     string `json:"sandbox,omitempty"`
	// State is the last state the agent reported (corralpb.TaskState).
	State    int32 `json:"state"`
	Pid      int   `json:"pid,omitempty"`
	Launched bool  `json:"launched,omitempty"` // the executor's Launch returned a pid
	Terminal bool  `json:"terminal,omitempty"`
	Cleaned  bool  `json:"cleaned,omitempty"` // the container was cleaned up
	// Executor is the opaque information needed to reattach to the task's
	// executor process; empty before it was started.
	Executor json.RawMessage `json:"executor,omitempty"`
}

// Update is one status update not yet acknowledged by the master.
type Update struct {
	FrameworkID string
	TaskID      string
	UUID        []byte
	// Status is the corralpb.TaskStatus (protobuf wire format).
	Status []byte
}

// State is everything a store holds, as Load returns it.
type State struct {
	AgentID    string
	AgentInfo  []byte            // corralpb.AgentInfo as last registered
	Frameworks map[string][]byte // corralpb.FrameworkInfo by framework ID
	Tasks      []Task
	Updates    []Update // in the order they were produced
	// Executors is the reattach info of executor processes by key
	// (PutExecutor), whether or not a task still uses them.
	Executors map[string][]byte
}

// Store is an open checkpoint file. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string

	// updKeys finds a pending update's record key by framework, task and
	// UUID, so that an acknowledgement deletes one key instead of decoding
	// every pending update (a burst of a thousand launches has thousands
	// pending, and each ack scanned them all). Filled by Load and by
	// PutTaskAndUpdate; a miss falls back to the scan.
	mu      sync.Mutex
	updKeys map[string][]byte
}

func updKey(frameworkID, taskID string, uuid []byte) string {
	return frameworkID + "\x00" + taskID + "\x00" + string(uuid)
}

func (s *Store) noteUpdate(u *updateRecord, key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.updKeys == nil {
		s.updKeys = map[string][]byte{}
	}
	s.updKeys[updKey(u.FrameworkID, u.TaskID, u.UUID)] = key
}

// Error is a checkpoint that cannot be used; it names the file.
type Error struct {
	Path    string
	Problem string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("checkpoint %s: %s: %v", e.Path, e.Problem, e.Err)
	}
	return fmt.Sprintf("checkpoint %s: %s", e.Path, e.Problem)
}

func (e *Error) Unwrap() error { return e.Err }

// Open opens the store at path, creating it (with the current schema) if
// it does not exist. A file that is not a bbolt database, or holds another
// schema version, or is missing its buckets, is an *Error.
func Open(path string) (*Store, error) {
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, os.ErrNotExist)
	db, err := openDB(path)
	if err != nil {
		return nil, &Error{Path: path, Problem: "cannot open (corrupt or not a checkpoint)", Err: err}
	}
	s := &Store{db: db, path: path}
	if fresh {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketMeta, bucketFrameworks, bucketTasks, bucketUpdates, bucketExecutors} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
		})
		if err != nil {
			_ = db.Close()
			return nil, &Error{Path: path, Problem: "cannot initialise", Err: err}
		}
		return s, nil
	}
	if err := s.checkSchema(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketExecutors)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, &Error{Path: path, Problem: "cannot add the executors bucket", Err: err}
	}
	return s, nil
}

// openDB opens bbolt, turning its panics on some kinds of corruption into
// errors: a damaged file must stop start-up with a message, not a trace.
func openDB(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%v", r)
		}
	}()
	// The agent already holds the work dir lock; the timeout only guards
	// against a second process opening this file by hand.
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
}

func (s *Store) checkSchema() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &Error{Path: s.path, Problem: "corrupt", Err: fmt.Errorf("%v", r)}
		}
	}()
	return s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return &Error{Path: s.path, Problem: "no meta bucket (not a corral checkpoint, or corrupt)"}
		}
		v := string(meta.Get(keySchema))
		n, err := strconv.Atoi(v)
		if err != nil {
			return &Error{Path: s.path, Problem: fmt.Sprintf("schema version %q is not a number", v)}
		}
		if n != SchemaVersion {
			return &Error{Path: s.path, Problem: fmt.Sprintf("schema version %d, this agent reads version %d", n, SchemaVersion)}
		}
		for _, b := range [][]byte{bucketFrameworks, bucketTasks, bucketUpdates} {
			if tx.Bucket(b) == nil {
				return &Error{Path: s.path, Problem: fmt.Sprintf("bucket %q missing", b)}
			}
		}
		return nil
	})
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Load reads the whole store. A record that does not decode is an *Error
// naming it: recovering around it could lose a task.
func (s *Store) Load() (st *State, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, &Error{Path: s.path, Problem: "corrupt", Err: fmt.Errorf("%v", r)}
		}
	}()
	st = &State{Frameworks: map[string][]byte{}, Executors: map[string][]byte{}}
	err = s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st.AgentID = string(meta.Get(keyAgentID))
		st.AgentInfo = clone(meta.Get(keyAgent))
		if err := tx.Bucket(bucketFrameworks).ForEach(func(k, v []byte) error {
			st.Frameworks[string(k)] = clone(v)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketExecutors).ForEach(func(k, v []byte) error {
			st.Executors[string(k)] = clone(v)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			var t Task
			if err := json.Unmarshal(v, &t); err != nil {
				return &Error{Path: s.path, Problem: fmt.Sprintf("task record %q does not decode", k), Err: err}
			}
			st.Tasks = append(st.Tasks, t)
			return nil
		}); err != nil {
			return err
		}
		// Keys are big-endian sequence numbers: ForEach yields them in order.
		return tx.Bucket(bucketUpdates).ForEach(func(k, v []byte) error {
			var u updateRecord
			if err := json.Unmarshal(v, &u); err != nil {
				return &Error{Path: s.path, Problem: fmt.Sprintf("status update record %x does not decode", k), Err: err}
			}
			st.Updates = append(st.Updates, Update(u))
			s.noteUpdate(&u, clone(k))
			return nil
		})
	})
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			err = &Error{Path: s.path, Problem: "unreadable", Err: err}
		}
		return nil, err
	}
	return st, nil
}

type updateRecord struct {
	FrameworkID string `json:"framework_id"`
	TaskID      string `json:"task_id"`
	UUID        []byte `json:"uuid"`
	Status      []byte `json:"status"`
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func taskKey(frameworkID, taskID string) []byte {
	return []byte(frameworkID + "\x00" + taskID)
}

// write runs fn in a transaction shared with concurrent writers.
func (s *Store) write(op string, fn func(tx *bolt.Tx) error) error {
	if err := s.db.Batch(fn); err != nil {
		return fmt.Errorf("checkpoint %s: %s: %w", s.path, op, err)
	}
	return nil
}

// PutAgent records the agent's ID and info (corralpb.AgentInfo bytes).
func (s *Store) PutAgent(id string, info []byte) error {
	return s.write("put agent", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyAgentID, []byte(id)); err != nil {
			return err
		}
		return meta.Put(keyAgent, info)
	})
}

// PutExecutor records a started executor process's reattach info.
func (s *Store) PutExecutor(key string, info []byte) error {
	return s.write("put executor", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketExecutors).Put([]byte(key), info)
	})
}

// DeleteExecutor forgets an executor process that was ended.
func (s *Store) DeleteExecutor(key string) error {
	return s.write("delete executor", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketExecutors).Delete([]byte(key))
	})
}

// PutFramework records a framework's info (corralpb.FrameworkInfo bytes).
func (s *Store) PutFramework(id string, info []byte) error {
	return s.write("put framework", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFrameworks).Put([]byte(id), info)
	})
}

// PutTask records a task, replacing what was recorded before.
func (s *Store) PutTask(t Task) error {
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("checkpoint: encode task %s: %w", t.TaskID, err)
	}
	return s.write("put task", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).Put(taskKey(t.FrameworkID, t.TaskID), v)
	})
}

// PutTaskAndUpdate records a task's new state and the update that reports
// it in one transaction, so neither is ever on disk without the other.
func (s *Store) PutTaskAndUpdate(t *Task, u Update) error {
	var tv []byte
	if t != nil {
		var err error
		if tv, err = json.Marshal(t); err != nil {
			return fmt.Errorf("checkpoint: encode task %s: %w", t.TaskID, err)
		}
	}
	uv, err := json.Marshal(updateRecord(u))
	if err != nil {
		return fmt.Errorf("checkpoint: encode update of %s: %w", u.TaskID, err)
	}
	var key []byte // set by the run of fn that commits (Batch may rerun it)
	err = s.write("put update", func(tx *bolt.Tx) error {
		if t != nil {
			if err := tx.Bucket(bucketTasks).Put(taskKey(t.FrameworkID, t.TaskID), tv); err != nil {
				return err
			}
		}
		ub := tx.Bucket(bucketUpdates)
		seq, err := ub.NextSequence()
		if err != nil {
			return err
		}
		key = binary.BigEndian.AppendUint64(nil, seq)
		return ub.Put(key, uv)
	})
	if err == nil {
		r := updateRecord(u)
		s.noteUpdate(&r, key)
	}
	return err
}

// RemoveUpdate forgets an acknowledged update. Unknown UUIDs are ignored.
func (s *Store) RemoveUpdate(frameworkID, taskID string, uuid []byte) error {
	k := updKey(frameworkID, taskID, uuid)
	s.mu.Lock()
	key, ok := s.updKeys[k]
	delete(s.updKeys, k)
	s.mu.Unlock()
	if ok {
		return s.write("remove update", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketUpdates).Delete(key)
		})
	}
	return s.removeUpdates("remove update", func(u *updateRecord) bool {
		return u.FrameworkID == frameworkID && u.TaskID == taskID && string(u.UUID) == string(uuid)
	})
}

// DropFramework forgets a framework, its tasks and its pending updates.
func (s *Store) DropFramework(frameworkID string) error {
	if err := s.removeUpdates("drop framework updates", func(u *updateRecord) bool { return u.FrameworkID == frameworkID }); err != nil {
		return err
	}
	return s.write("drop framework", func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketTasks)
		prefix := []byte(frameworkID + "\x00")
		c := tb.Cursor()
		var keys [][]byte
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, clone(k))
		}
		for _, k := range keys {
			if err := tb.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketFrameworks).Delete([]byte(frameworkID))
	})
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// removeUpdates deletes every pending update match selects. The bucket
// holds only unacknowledged updates, so a scan is short.
func (s *Store) removeUpdates(op string, match func(*updateRecord) bool) error {
	return s.write(op, func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUpdates)
		var keys [][]byte
		if err := ub.ForEach(func(k, v []byte) error {
			var u updateRecord
			if json.Unmarshal(v, &u) == nil && match(&u) {
				keys = append(keys, clone(k))
				s.mu.Lock()
				delete(s.updKeys, updKey(u.FrameworkID, u.TaskID, u.UUID))
				s.mu.Unlock()
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := ub.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteTask forgets a task (its terminal update was acknowledged).
func (s *Store) DeleteTask(frameworkID, taskID string) error {
	return s.write("delete task", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).Delete(taskKey(frameworkID, taskID))
	})
}

// Discard moves an unusable checkpoint aside (it is kept for inspection,
// not read again) and returns where it went.
func Discard(path string) (string, error) {
	aside := fmt.Sprintf("%s.discarded-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("move checkpoint %s aside: %w", path, err)
	}
	return aside, nil
}
