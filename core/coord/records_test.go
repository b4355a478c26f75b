package coord_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/coord/consultest"
)

// checkRecords puts more records than one Consul transaction holds,
// deletes some, and reads back exactly what is left.
func checkRecords(t *testing.T, r coord.Records) {
	t.Helper()
	ctx := context.Background()
	if got, err := r.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty records: %v, %v", got, err)
	}
	put := map[string][]byte{}
	for i := range 150 {
		put[fmt.Sprintf("agent-%03d", i)] = []byte(fmt.Sprintf(`{"n":%d}`, i))
	}
	if err := r.Update(ctx, put, nil); err != nil {
		t.Fatal(err)
	}
	var del []string
	for i := range 100 {
		del = append(del, fmt.Sprintf("agent-%03d", i))
		delete(put, fmt.Sprintf("agent-%03d", i))
	}
	put["agent-149"] = []byte(`{"n":"changed"}`)
	if err := r.Update(ctx, map[string][]byte{"agent-149": put["agent-149"]}, del); err != nil {
		t.Fatal(err)
	}
	got, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, put) {
		t.Fatalf("%s holds %d records, want %d (%q)", r, len(got), len(put), got["agent-149"])
	}
}

func TestFileRecords(t *testing.T) {
	s := coord.FileStore{Path: filepath.Join(t.TempDir(), "registry.json")}
	checkRecords(t, s.Records("agents"))
	if got := s.Records("agents").String(); filepath.Base(got) != "registry-agents.json" {
		t.Fatalf("agents records in %s", got)
	}
}

func TestConsulRecordsOnlyLeaderWrites(t *testing.T) {
	ag := consultest.Start(t)
	a := newMaster(t, ag, "master-a", "127.0.0.1:1001")
	b := newMaster(t, ag, "master-b", "127.0.0.1:1002")
	if ta := <-campaign(t, a); ta == nil {
		t.Fatal("a was not elected")
	}
	ra := a.Registry().(coord.RecordStore).Records("agents")
	checkRecords(t, ra)
	rb := b.Registry().(coord.RecordStore).Records("agents")
	if err := rb.Update(context.Background(), map[string][]byte{"x": []byte(`{}`)}, nil); !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("standby's records write: err = %v, want ErrNotLeader", err)
	}
	// Both read the same.
	la, _ := ra.List(context.Background())
	lb, err := rb.List(context.Background())
	if err != nil || !reflect.DeepEqual(la, lb) {
		t.Fatalf("standby reads %d records (%v), leader %d", len(lb), err, len(la))
	}
}
