package master_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/master"
)

// TestWarmStandby: a standby keeps memory warm for the agents in the
// registry's records, grows it when more are admitted, and Release hands
// it back to the heap at once.
func TestWarmStandby(t *testing.T) {
	st := coord.FileStore{Path: filepath.Join(t.TempDir(), "registry.json")}
	admit := func(from, to int) {
		put := map[string][]byte{}
		for i := from; i < to; i++ {
			put[fmt.Sprintf("agent-%d", i)] = []byte(`{"hostname":"h"}`)
		}
		if err := st.Records("agents").Update(context.Background(), put, nil); err != nil {
			t.Fatal(err)
		}
	}
	admit(0, 100)
	var w master.HeapWarmer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		master.WarmStandby(ctx, st, &w, 10*time.Millisecond, hclog.NewNullLogger())
	}()
	waitSize := func(agents int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); w.Size() < agents*master.WarmBytesPerAgent; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("warm memory %d bytes after 30 s, want %d for %d agents", w.Size(), agents*master.WarmBytesPerAgent, agents)
			}
		}
	}
	waitSize(100)
	admit(100, 300)
	waitSize(300)
	cancel()
	<-done

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	size := w.Size()
	w.Release()
	runtime.ReadMemStats(&after)
	if w.Size() != 0 {
		t.Fatalf("%d bytes still warm after Release", w.Size())
	}
	if freed := int64(before.HeapInuse) - int64(after.HeapInuse); freed < int64(size)*9/10 {
		t.Fatalf("Release freed %d bytes of the heap in use, want about the %d held warm", freed, size)
	}
}
