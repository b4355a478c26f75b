package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.PutAgent("agent-7", []byte("info")))
	must(s.PutFramework("fw", []byte("fwinfo")))
	must(s.PutTask(Task{FrameworkID: "fw", TaskID: "a", ContainerID: "c1", State: 1, Executor: []byte(`{"pid":1}`)}))
	must(s.PutTaskAndUpdate(&Task{FrameworkID: "fw", TaskID: "b", State: 2}, Update{FrameworkID: "fw", TaskID: "b", UUID: []byte{1}, Status: []byte("s1")}))
	must(s.PutTaskAndUpdate(nil, Update{FrameworkID: "fw", TaskID: "b", UUID: []byte{2}, Status: []byte("s2")}))
	must(s.PutTaskAndUpdate(nil, Update{FrameworkID: "fw", TaskID: "a", UUID: []byte{3}, Status: []byte("s3")}))
	must(s.RemoveUpdate("fw", "b", []byte{1}))
	must(s.Close())

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.AgentID != "agent-7" || string(st.AgentInfo) != "info" || string(st.Frameworks["fw"]) != "fwinfo" {
		t.Fatalf("agent/framework not restored: %+v", st)
	}
	if len(st.Tasks) != 2 || st.Tasks[0].TaskID != "a" || string(st.Tasks[0].Executor) != `{"pid":1}` || st.Tasks[1].State != 2 {
		t.Fatalf("tasks: %+v", st.Tasks)
	}
	var got []string
	for _, u := range st.Updates {
		got = append(got, string(u.Status))
	}
	if strings.Join(got, ",") != "s2,s3" {
		t.Fatalf("updates in order = %v, want s2,s3 (s1 was acknowledged)", got)
	}
	must(s.DropFramework("fw"))
	st, err = s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Tasks) != 0 || len(st.Updates) != 0 || len(st.Frameworks) != 0 {
		t.Fatalf("framework not dropped: %+v", st)
	}
}

func TestRefusesUnusableFiles(t *testing.T) {
	cases := []struct {
		name  string
		setup func(path string) error
		want  string
	}{
		{"garbage", func(p string) error { return os.WriteFile(p, []byte("not a database at all, just text\n"), 0o600) }, "cannot open"},
		{"truncated", func(p string) error {
			s, err := Open(p)
			if err != nil {
				return err
			}
			_ = s.Close()
			return os.Truncate(p, 1000)
		}, "cannot open"},
		{"other schema", func(p string) error { return writeMeta(p, "99") }, "schema version 99"},
		{"no meta", func(p string) error {
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				return err
			}
			return db.Close()
		}, "no meta bucket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := tc.setup(path); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open accepted an unusable checkpoint")
			}
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want a checkpoint.Error naming %s and saying %q", err, path, tc.want)
			}
			aside, err := Discard(path)
			if err != nil || aside == "" {
				t.Fatalf("Discard = %q, %v", aside, err)
			}
			if s, err := Open(path); err != nil {
				t.Fatalf("fresh store after Discard: %v", err)
			} else {
				_ = s.Close()
			}
		})
	}
}

func TestBadTaskRecordNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTasks).Put([]byte("fw\x00x"), []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load()
	_ = s.Close()
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "task record") {
		t.Fatalf("Load = %v, want an error naming the file and the task record", err)
	}
}

func writeMeta(path, version string) error {
	s, err := Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte(version)) })
}

// An acknowledgement removes exactly its update, whether the store wrote
// it in this run or found it on Load; an unknown UUID removes nothing.
func TestRemoveUpdateByKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := s.PutTaskAndUpdate(nil, Update{FrameworkID: "fw", TaskID: "t", UUID: []byte{byte(i)}, Status: []byte{'s', '0' + byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RemoveUpdate("fw", "t", []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUpdate("fw", "t", []byte{9}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUpdate("fw", "t", []byte{2}); err != nil { // found by Load
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range st.Updates {
		got = append(got, string(u.Status))
	}
	if strings.Join(got, ",") != "s0,s3" {
		t.Fatalf("updates = %v, want s0,s3", got)
	}
}
