package process

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/pluginapi/isolator/contracttest"
	"github.com/corral-project/corral/plugins/isolator/process/posix"
	"github.com/hashicorp/go-hclog"
)

func newTestIsolator(t *testing.T) *Isolator {
	return New(hclog.New(&hclog.LoggerOptions{Name: "test", Output: os.Stderr, Level: hclog.Warn}))
}

func TestContract(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) isolator.Isolator { return newTestIsolator(t) })
}

func TestContractOverGRPC(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) isolator.Isolator {
		return contracttest.InProcess(t, newTestIsolator(t))
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    []isolator.Rlimit
		wantErr []string // substrings that must all appear
	}{
		{name: "empty body", json: ``, want: nil},
		{name: "empty object", json: `{}`, want: nil},
		{name: "empty rlimits", json: `{"rlimits": {}}`, want: nil},
		{
			name: "forms, sorted by name",
			json: `{"rlimits": {"nofile": "1024:4096", "core": "0", "stack": "unlimited"}}`,
			want: []isolator.Rlimit{
				{Name: "core", Soft: 0, Hard: 0},
				{Name: "nofile", Soft: 1024, Hard: 4096},
				{Name: "stack", Soft: posix.Unlimited, Hard: posix.Unlimited},
			},
		},
		{
			name:    "every bad entry named",
			json:    `{"rlimits": {"nofiles": "10", "nproc": "lots", "fsize": "9:1"}}`,
			wantErr: []string{`"nofiles"`, `nproc = "lots"`, `fsize = "9:1"`},
		},
		{name: "unknown attribute", json: `{"rlimit": {}}`, wantErr: []string{`"rlimit"`}},
		{name: "not json", json: `{not json`, wantErr: []string{"decode config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.json))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseConfig = %+v, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("ParseConfig error %q does not mention %s", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseConfig = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("rlimit %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestPrepareReturnsConfiguredSpec(t *testing.T) {
	iso := newTestIsolator(t)
	if err := iso.SetConfig(testCtx(t), []byte(`{"rlimits": {"nofile": "123"}}`), "v1"); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	if err := iso.SetConfig(testCtx(t), []byte(`{}`), "v0"); err == nil {
		t.Error("SetConfig with an unknown API version succeeded")
	}
	for range 2 {
		spec, err := iso.Prepare(testCtx(t), isolator.PrepareRequest{ContainerID: "c1"})
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		if !spec.NewSession || spec.Environment == nil || len(spec.CgroupProcs) != 0 ||
			len(spec.Rlimits) != 1 || spec.Rlimits[0] != (isolator.Rlimit{Name: "nofile", Soft: 123, Hard: 123}) {
			t.Errorf("Prepare = %+v, want a new session, nofile 123:123 and an empty environment", spec)
		}
	}
}

// session is a real process tree led by a session leader.
type session struct {
	pid    int
	exited chan struct{}
}

// startSession runs script with /bin/sh as the leader of a new session and
// kills the whole session when t ends.
func startSession(t *testing.T, script string) *session {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", script, err)
	}
	s := &session{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = posix.KillSession(ctx, s.pid)
		<-s.exited
	})
	return s
}

// poll calls cond until it is true or timeout passes.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sessionProcs(t *testing.T, sid int) []*posix.Stat {
	t.Helper()
	procs, err := posix.SessionProcesses(sid)
	if err != nil {
		t.Fatalf("SessionProcesses(%d): %v", sid, err)
	}
	return procs
}

func TestUsageSumsTheWholeSession(t *testing.T) {
	iso := newTestIsolator(t)
	// Two busy children and the waiting shell: three processes, two of
	// which accumulate CPU time.
	s := startSession(t, `while :; do :; done & while :; do :; done & wait`)
	if err := iso.Isolate(testCtx(t), "busy", s.pid); err != nil {
		t.Fatalf("Isolate: %v", err)
	}
	const minTicks = 3
	poll(t, 20*time.Second, "two busy children with CPU time", func() bool {
		busy := 0
		for _, p := range sessionProcs(t, s.pid) {
			if p.Pid != s.pid && p.UTimeTicks+p.STimeTicks >= minTicks {
				busy++
			}
		}
		return busy == 2
	})
	// Freeze the session so that the figures hold still while compared.
	if err := syscall.Kill(-s.pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	poll(t, 10*time.Second, "the session to stop", func() bool {
		for _, p := range sessionProcs(t, s.pid) {
			if p.State != 'T' {
				return false
			}
		}
		return true
	})
	procs := sessionProcs(t, s.pid)
	if len(procs) != 3 {
		t.Fatalf("session has %d processes, want 3", len(procs))
	}
	var user, sys, maxSingle uint64
	var rss uint64
	for _, p := range procs {
		// Read each process on its own, not through the session walk.
		st, err := posix.ReadStat(p.Pid)
		if err != nil {
			t.Fatalf("ReadStat(%d): %v", p.Pid, err)
		}
		user += st.UTimeTicks
		sys += st.STimeTicks
		rss += st.RSSBytes()
		maxSingle = max(maxSingle, st.UTimeTicks+st.STimeTicks)
	}

	usages, err := iso.Usage(testCtx(t), []string{"busy", "unknown"})
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if len(usages) != 2 || usages[0].ContainerID != "busy" || usages[1].ContainerID != "unknown" {
		t.Fatalf("Usage returned %+v, want entries for busy and unknown in order", usages)
	}
	u := usages[0]
	hz := float64(posix.ClockTicks())
	if !u.Found || u.Processes != 3 || u.MemRSSBytes != rss ||
		u.CPUUserSeconds != float64(user)/hz || u.CPUSystemSeconds != float64(sys)/hz {
		t.Errorf("Usage = %+v, want Found, 3 processes, RSS %d, user %.2fs, system %.2fs",
			u, rss, float64(user)/hz, float64(sys)/hz)
	}
	if total := u.CPUUserSeconds + u.CPUSystemSeconds; total <= float64(maxSingle)/hz {
		t.Errorf("Usage CPU %.2fs is not more than the busiest single process (%.2fs): not summed", total, float64(maxSingle)/hz)
	}
	if usages[1].Found {
		t.Errorf("Usage of an unknown container = %+v, want Found=false", usages[1])
	}
	if u.Timestamp.IsZero() {
		t.Error("Usage has no timestamp")
	}
}

func TestCleanupKillsSessionIncludingOrphanedGrandchild(t *testing.T) {
	iso := newTestIsolator(t)
	// The inner shell starts a grandchild and exits, so the grandchild is
	// reparented away from the leader: only its session still ties it to
	// the container.
	s := startSession(t, `sh -c 'sleep 300 &'; sleep 300 & wait`)
	if err := iso.Isolate(testCtx(t), "tree", s.pid); err != nil {
		t.Fatalf("Isolate: %v", err)
	}
	var pids []int
	poll(t, 10*time.Second, "leader and two sleeps, one of them orphaned", func() bool {
		pids = pids[:0]
		orphaned := false
		for _, p := range sessionProcs(t, s.pid) {
			pids = append(pids, p.Pid)
			if p.Comm == "sleep" && p.PPid != s.pid {
				orphaned = true
			}
		}
		return len(pids) == 3 && orphaned
	})

	if err := iso.Cleanup(testCtx(t), "tree"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	// Cleanup returns only once the session is gone; no polling here.
	for _, pid := range pids {
		if posix.Alive(pid) {
			t.Errorf("pid %d of the session is still alive after Cleanup", pid)
		}
	}
	if u, _ := iso.Usage(testCtx(t), []string{"tree"}); len(u) != 1 || u[0].Found {
		t.Errorf("Usage after Cleanup = %+v, want Found=false", u)
	}
	if err := iso.Cleanup(testCtx(t), "tree"); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("leader not reaped 10s after Cleanup")
	}
}

func TestIsolateRejects(t *testing.T) {
	iso := newTestIsolator(t)
	s := startSession(t, `sleep 300`)
	dead := startSession(t, `exit 0`)
	<-dead.exited

	tests := []struct {
		name    string
		id      string
		pid     int
		wantErr string
	}{
		{"empty ID", "", s.pid, "empty container ID"},
		{"exited pid", "c", dead.pid, "no such process"},
		// The test process shares its session with whoever started it.
		{"not a session leader", "c", os.Getpid(), "not a session leader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := iso.Isolate(testCtx(t), tt.id, tt.pid)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Isolate(%q, %d) = %v, want an error containing %q", tt.id, tt.pid, err, tt.wantErr)
			}
		})
	}
	if err := iso.Isolate(testCtx(t), "c", s.pid); err != nil {
		t.Fatalf("Isolate: %v", err)
	}
	if err := iso.Isolate(testCtx(t), "c", s.pid); err != nil {
		t.Errorf("Isolate again with the same pid: %v", err)
	}
	other := startSession(t, `sleep 300`)
	if err := iso.Isolate(testCtx(t), "c", other.pid); err == nil {
		t.Error("Isolate of a second live pid into the same container succeeded")
	}
}

func TestRecoverDropsContainersWithoutProcesses(t *testing.T) {
	iso := newTestIsolator(t)
	alive := startSession(t, `exec sleep 300`)
	dead := startSession(t, `exit 0`)
	<-dead.exited

	orphans, err := iso.Recover(testCtx(t), "", []isolator.ContainerState{
		{ContainerID: "alive", Pid: alive.pid},
		{ContainerID: "dead", Pid: dead.pid},
	})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if len(orphans) != 0 {
		t.Errorf("Recover orphans = %v, want none", orphans)
	}
	usages, err := iso.Usage(testCtx(t), []string{"alive", "dead"})
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if !usages[0].Found || usages[0].Processes != 1 || usages[1].Found {
		t.Errorf("Usage after Recover = %+v, want alive found with 1 process, dead not found", usages)
	}
	// Recovered containers can be cleaned up like isolated ones.
	if err := iso.Cleanup(testCtx(t), "alive"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-alive.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("recovered container's process survived Cleanup")
	}
}
