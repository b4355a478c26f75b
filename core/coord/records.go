package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
)

// Records implements RecordStore: the records of a kind live in one JSON
// file beside the registry file (registry-<kind>.json), replaced
// atomically on every update. A standalone master has one writer.
func (s FileStore) Records(kind string) Records {
	ext := filepath.Ext(s.Path)
	return &fileRecords{file: FileStore{Path: strings.TrimSuffix(s.Path, ext) + "-" + kind + ext}}
}

type fileRecords struct {
	mu   sync.Mutex
	file FileStore
}

func (r *fileRecords) String() string { return r.file.Path }

func (r *fileRecords) List(ctx context.Context) (map[string][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked(ctx)
}

func (r *fileRecords) loadLocked(ctx context.Context) (map[string][]byte, error) {
	raw, err := r.file.Load(ctx)
	if err != nil || raw == nil {
		return map[string][]byte{}, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("registry records %s are corrupt: %w", r.file.Path, err)
	}
	out := make(map[string][]byte, len(doc))
	for k, v := range doc {
		out[k] = []byte(v)
	}
	return out, nil
}

func (r *fileRecords) Update(ctx context.Context, put map[string][]byte, del []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.loadLocked(ctx)
	if err != nil {
		return err
	}
	for _, k := range del {
		delete(cur, k)
	}
	for k, v := range put {
		if !json.Valid(v) {
			return fmt.Errorf("registry record %q for %s is not JSON", k, r.file.Path)
		}
		cur[k] = v
	}
	doc := make(map[string]json.RawMessage, len(cur))
	for k, v := range cur {
		doc[k] = v
	}
	raw, err := json.Marshal(doc) // sorted by key, records as given
	if err != nil {
		return fmt.Errorf("encoding %s: %w", r.file.Path, err)
	}
	return r.file.Store(ctx, append(raw, '\n'))
}

// consulTxnOps is how many KV operations go in one Consul transaction:
// Consul refuses more than 128 (v1.16); one is the leader check.
const consulTxnOps = 64

// Records implements RecordStore: one KV key per record under
// <prefix>/registry-<kind>/, each write a transaction that first checks
// the leader lock is held by this master's session.
func (s consulStore) Records(kind string) Records {
	return consulRecords{c: s.c, dir: s.c.cfg.Prefix + "/registry-" + kind + "/"}
}

type consulRecords struct {
	c   *Consul
	dir string
}

func (r consulRecords) String() string { return "consul:" + r.dir }

func (r consulRecords) List(ctx context.Context) (map[string][]byte, error) {
	pairs, _, err := r.c.client.KV().List(r.dir, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("registry records %s: %w", r, err)
	}
	out := make(map[string][]byte, len(pairs))
	for _, p := range pairs {
		out[strings.TrimPrefix(p.Key, r.dir)] = p.Value
	}
	return out, nil
}

func (r consulRecords) Update(ctx context.Context, put map[string][]byte, del []string) error {
	r.c.mu.Lock()
	t := r.c.term
	r.c.mu.Unlock()
	if t == nil {
		return fmt.Errorf("registry records %s: %w", r, ErrNotLeader)
	}
	keys := make([]string, 0, len(put))
	for k := range put {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ops api.TxnOps
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		all := append(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: t.key, Session: t.sid}}}, ops...)
		ops = nil
		ok, resp, _, err := r.c.client.Txn().Txn(all, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("registry records %s: %w", r, err)
		}
		if !ok {
			var why []string
			if resp != nil {
				for _, e := range resp.Errors {
					why = append(why, e.What)
				}
			}
			return fmt.Errorf("registry records %s: the leader lock is not held by this master (%s): %w",
				r, strings.Join(why, "; "), ErrNotLeader)
		}
		return nil
	}
	add := func(op *api.KVTxnOp) error {
		ops = append(ops, &api.TxnOp{KV: op})
		if len(ops) == consulTxnOps-1 {
			return flush()
		}
		return nil
	}
	for _, k := range keys {
		if err := add(&api.KVTxnOp{Verb: api.KVSet, Key: r.dir + k, Value: put[k]}); err != nil {
			return err
		}
	}
	for _, k := range del {
		if err := add(&api.KVTxnOp{Verb: api.KVDelete, Key: r.dir + k}); err != nil {
			return err
		}
	}
	return flush()
}
