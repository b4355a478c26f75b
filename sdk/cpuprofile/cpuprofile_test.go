package cpuprofile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestPhases: a profile from FromEnv, the next one at SIGUSR2, and both
// complete (gzip-compressed pprof data) once stop returns.
func TestPhases(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(Env, dir)
	stop := FromEnv("test", hclog.NewNullLogger())
	name := func(n int) string { return filepath.Join(dir, fmt.Sprintf("test-%d-%d.pprof", os.Getpid(), n)) }
	if _, err := os.Stat(name(1)); err != nil {
		t.Fatalf("first profile not started: %v", err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(name(2)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no second profile a minute after SIGUSR2")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	for n := 1; n <= 2; n++ {
		b, err := os.ReadFile(name(n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s is not a finished profile (%d bytes, no gzip header)", name(n), len(b))
		}
	}
}
