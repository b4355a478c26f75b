package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/agent/sandbox"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/scheduler"
)

func TestParseExecFlags(t *testing.T) {
	defaults := execOptions{master: "127.0.0.1:5050", name: "corral-exec", role: "*", env: map[string]string{},
		cpus: 0.1, mem: 32, connectTimeout: 15 * time.Second}
	with := func(f func(o *execOptions)) *execOptions {
		o := defaults
		o.env = map[string]string{}
		f(&o)
		return &o
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    *execOptions
		wantErr string
	}{
		{name: "defaults with shell command", args: []string{"--", "echo hi"},
			want: with(func(o *execOptions) { o.command = []string{"echo hi"} })},
		{name: "argv without separator", args: []string{"ls", "-l", "/"},
			want: with(func(o *execOptions) { o.command = []string{"ls", "-l", "/"} })},
		{name: "flags after the separator belong to the command", args: []string{"-q", "--", "grep", "-q", "x"},
			want: with(func(o *execOptions) { o.quiet = true; o.command = []string{"grep", "-q", "x"} })},
		{name: "all flags", args: []string{"--master", "10.0.0.1:5050", "--name", "job", "--role", "batch",
			"--env", "A=1", "--env", "B=x=y", "--env", "EMPTY=", "--cpus", "2", "--mem", "512", "--disk", "100",
			"--gpus", "2", "--timeout", "1m", "--grace", "5s", "--connect-timeout", "2s", "-q", "--", "true"},
			want: &execOptions{master: "10.0.0.1:5050", name: "job", role: "batch",
				env:  map[string]string{"A": "1", "B": "x=y", "EMPTY": ""},
				cpus: 2, mem: 512, disk: 100, gpus: 2, timeout: time.Minute, grace: 5 * time.Second,
				connectTimeout: 2 * time.Second, quiet: true, command: []string{"true"}}},
		{name: "master from env", args: []string{"--", "true"}, env: map[string]string{"CORRAL_MASTER": "m:1"},
			want: with(func(o *execOptions) { o.master = "m:1"; o.command = []string{"true"} })},
		{name: "flag beats env", args: []string{"--master", "f:2", "--", "true"}, env: map[string]string{"CORRAL_MASTER": "m:1"},
			want: with(func(o *execOptions) { o.master = "f:2"; o.command = []string{"true"} })},
		{name: "no command", args: []string{"--cpus", "1"}, wantErr: "no command"},
		{name: "blank command", args: []string{"--", "  "}, wantErr: "empty command"},
		{name: "env without equals", args: []string{"--env", "A", "--", "true"}, wantErr: "want K=V"},
		{name: "env without key", args: []string{"--env", "=v", "--", "true"}, wantErr: "want K=V"},
		{name: "negative cpus", args: []string{"--cpus", "-1", "--", "true"}, wantErr: "must not be negative"},
		{name: "negative gpus", args: []string{"--gpus", "-1", "--", "true"}, wantErr: "must not be negative"},
		{name: "NaN cpus", args: []string{"--cpus", "NaN", "--", "true"}, wantErr: `--cpus NaN: resource "cpus": quantity is NaN`},
		{name: "infinite cpus", args: []string{"--cpus", "Inf", "--", "true"}, wantErr: `--cpus +Inf: resource "cpus": quantity is infinite`},
		{name: "absurd mem", args: []string{"--mem", "1e308", "--", "true"}, wantErr: `--mem 1e+308: resource "mem": quantity 1e+308 is too large`},
		{name: "fractional gpus", args: []string{"--gpus", "0.5", "--", "true"}, wantErr: "--gpus must be a whole number, got 0.5"},
		{name: "no resources", args: []string{"--cpus", "0", "--mem", "0", "--", "true"}, wantErr: "some --cpus or --mem"},
		{name: "negative timeout", args: []string{"--timeout", "-1s", "--", "true"}, wantErr: "must not be negative"},
		{name: "bad duration", args: []string{"--grace", "soon", "--", "true"}, wantErr: "invalid value"},
		{name: "unknown flag", args: []string{"--cpu", "1", "--", "true"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseExecFlags(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCommandInfo(t *testing.T) {
	env := map[string]string{"A": "1"}
	shell := commandInfo(&execOptions{command: []string{"echo $A | wc -c"}, env: env})
	if !shell.GetShell() || shell.GetValue() != "echo $A | wc -c" || len(shell.GetArguments()) != 0 || shell.GetEnvironment()["A"] != "1" {
		t.Errorf("single argument: %v, want a shell command", shell)
	}
	argv := commandInfo(&execOptions{command: []string{"printf", "%s\n", "a b"}, env: env})
	if argv.GetShell() || argv.GetValue() != "printf" || !reflect.DeepEqual(argv.GetArguments(), []string{"%s\n", "a b"}) {
		t.Errorf("several arguments: %v, want argv", argv)
	}
}

func TestExitCodeFor(t *testing.T) {
	st := func(state corralpb.TaskState, code int32, hasCode bool, msg string) *corralpb.TaskStatus {
		return &corralpb.TaskStatus{State: state, ExitCode: code, HasExitCode: hasCode, Message: msg}
	}
	tests := []struct {
		name    string
		status  *corralpb.TaskStatus
		cause   stopCause
		want    int
		wantMsg string // substring; "" means no message
	}{
		{"finished", st(corralpb.TaskState_TASK_FINISHED, 0, true, ""), causeNone, 0, ""},
		{"finished without code", st(corralpb.TaskState_TASK_FINISHED, 0, false, ""), causeNone, 0, ""},
		{"failed with code", st(corralpb.TaskState_TASK_FAILED, 3, true, "exited 3"), causeNone, 3, ""},
		{"exit 255", st(corralpb.TaskState_TASK_FAILED, 255, true, ""), causeNone, 255, ""},
		{"signal folded by agent", st(corralpb.TaskState_TASK_FAILED, 139, true, ""), causeNone, 139, ""},
		{"raw signal -9", st(corralpb.TaskState_TASK_FAILED, -9, true, ""), causeNone, 137, ""},
		{"out of range", st(corralpb.TaskState_TASK_FAILED, 1000, true, ""), causeNone, 255, ""},
		{"could not start", st(corralpb.TaskState_TASK_FAILED, 0, false, "exec: no such file"), causeNone, 126, "no such file"},
		{"invalid task", st(corralpb.TaskState_TASK_ERROR, 0, false, "unknown offer"), causeNone, 126, "unknown offer"},
		{"killed by operator", st(corralpb.TaskState_TASK_KILLED, 0, false, "killed by operator"), causeNone, 137, "someone else"},
		{"lost", st(corralpb.TaskState_TASK_LOST, 0, false, "agent removed"), causeNone, 127, "not \"command not found\""},
		{"timeout kill", st(corralpb.TaskState_TASK_KILLED, 0, false, ""), causeTimeout, 124, "timeout"},
		{"timeout kill with code", st(corralpb.TaskState_TASK_FAILED, 143, true, ""), causeTimeout, 124, "timeout"},
		{"finished despite timeout", st(corralpb.TaskState_TASK_FINISHED, 0, true, ""), causeTimeout, 0, ""},
		{"interrupt kill", st(corralpb.TaskState_TASK_KILLED, 0, false, ""), causeInterrupt, 130, "interrupted"},
		{"lost after interrupt", st(corralpb.TaskState_TASK_LOST, 0, false, ""), causeInterrupt, 130, "interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := exitCodeFor(tt.status, tt.cause)
			if got != tt.want {
				t.Errorf("code = %d, want %d", got, tt.want)
			}
			if tt.wantMsg == "" && msg != "" || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message = %q, want %q", msg, tt.wantMsg)
			}
		})
	}
}

// lockedBuffer is written by the follower goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// The follower is tested against the agent's real sandbox handler.
func TestFollowerStreamsWhileRunningAndDrainsAfter(t *testing.T) {
	root := t.TempDir()
	dir, err := sandbox.Create(root, "fw-1", "task-1")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(sandbox.Pattern, sandbox.NewHandler(root, hclog.NewNullLogger()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var stdout, stderr lockedBuffer
	var warnings lockedBuffer
	warn := func(format string, args ...any) { warnings.Write([]byte(format + "\n")) }
	fl := startFollower(context.Background(), srv.URL+"/api/v1/sandbox/fw-1/task-1", &stdout, &stderr, warn)

	appendFile(t, filepath.Join(dir, "stdout"), []byte("hello\n"))
	deadline := time.Now().Add(10 * time.Second)
	for stdout.String() != "hello\n" {
		if time.Now().After(deadline) {
			t.Fatalf("output not streamed while running: %q", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// More than two 1 MiB pages written just before the task ends must all
	// arrive in the drain.
	big := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/32)
	appendFile(t, filepath.Join(dir, "stdout"), big)
	appendFile(t, filepath.Join(dir, "stderr"), []byte("oops\n"))
	fl.stopAndDrain()

	if got, want := stdout.String(), "hello\n"+string(big); got != want {
		t.Errorf("stdout: got %d bytes, want %d", len(got), len(want))
	}
	if got := stderr.String(); got != "oops\n" {
		t.Errorf("stderr = %q", got)
	}
	if w := warnings.String(); w != "" {
		t.Errorf("unexpected warnings: %q", w)
	}
}

func TestExecUnreachableMasterExits125(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now

	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := runExec(context.Background(), []string{"--master", addr, "--connect-timeout", "300ms", "--", "true"}, &stdout, &stderr)
	if code != exitNotPlaced {
		t.Errorf("exit code = %d, want %d; stderr: %s", code, exitNotPlaced, stderr.String())
	}
	if !strings.Contains(stderr.String(), "cannot reach the master at "+addr) {
		t.Errorf("stderr = %q, want a clear line about the master", stderr.String())
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("took %v to give up", elapsed)
	}
}

func TestExecUsageAndBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runExec(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("-h: exit code %d, want 0", code)
	}
	if !strings.Contains(stdout.String(), "124") || !strings.Contains(stdout.String(), "TASK_LOST") {
		t.Errorf("usage does not document the exit codes: %q", stdout.String())
	}
	stdout.Reset()
	if code := runExec(context.Background(), []string{"--mem", "lots", "--", "true"}, &stdout, &stderr); code != exitNotPlaced {
		t.Errorf("bad flag: exit code %d, want %d", code, exitNotPlaced)
	}
	if !strings.Contains(stderr.String(), "usage: corral exec") {
		t.Errorf("bad flag: stderr lacks usage: %q", stderr.String())
	}
}

// execDriver records what the exec framework asks of the master.
type execDriver struct {
	scheduler.Driver // anything not below panics: exec must not call it
	failLaunch       bool
	launched         []*corralpb.TaskInfo
	declined         []string // "offer/refuse seconds"
	suppresses       int
	failRequest      bool
	calls            []string // "request role [shapes]" and "suppress", in order
}

func (d *execDriver) Request(_ context.Context, role string, shapes ...scheduler.TaskShape) error {
	if d.failRequest {
		return errors.New("request: Unimplemented: unknown method Request")
	}
	d.calls = append(d.calls, fmt.Sprintf("request %s %v", role, shapes))
	return nil
}

func (d *execDriver) Launch(_ context.Context, _ []string, tasks []*corralpb.TaskInfo, _ *corralpb.Filters) error {
	if d.failLaunch {
		return errors.New("accept: NotFound: offer gone")
	}
	d.launched = append(d.launched, tasks...)
	return nil
}

func (d *execDriver) Decline(_ context.Context, ids []string, f *corralpb.Filters) error {
	for _, id := range ids {
		d.declined = append(d.declined, fmt.Sprintf("%s/%g", id, f.GetRefuseSeconds()))
	}
	return nil
}

func (d *execDriver) Suppress(context.Context, ...string) error {
	d.suppresses++
	d.calls = append(d.calls, "suppress")
	return nil
}

func execOffer(id string, cpus, mem float64) *corralpb.Offer {
	return &corralpb.Offer{Id: id, AgentId: "agent-" + id, Hostname: "h", Resources: []*corralpb.Resource{
		{Name: "cpus", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: cpus}},
		{Name: "mem", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: mem}},
	}}
}

func newTestExecFramework(o *execOptions) *execFramework {
	nop := func(string, ...any) {}
	return &execFramework{o: o, taskID: "t-1", say: nop, warn: nop, changed: make(chan struct{}, 1)}
}

func TestExecOffersPlaceOneTask(t *testing.T) {
	o := &execOptions{cpus: 0.5, mem: 64, grace: 2 * time.Second, command: []string{"echo hi"}}
	f := newTestExecFramework(o)
	d := &execDriver{}
	ctx := context.Background()

	f.Offers(ctx, d, []*corralpb.Offer{execOffer("small", 0.1, 1000), execOffer("big", 2, 1000), execOffer("big2", 2, 1000)})
	f.Offers(ctx, d, []*corralpb.Offer{execOffer("late", 2, 1000)})

	if len(d.launched) != 1 {
		t.Fatalf("launched %d tasks, want exactly 1", len(d.launched))
	}
	task := d.launched[0]
	if task.GetTaskId() != "t-1" || task.GetAgentId() != "agent-big" || task.GetKillGraceSeconds() != 2 ||
		!task.GetCommand().GetShell() || task.GetCommand().GetValue() != "echo hi" {
		t.Errorf("task = %v", task)
	}
	var cpus, mem float64
	for _, r := range task.GetResources() {
		switch r.GetName() {
		case "cpus":
			cpus += r.GetScalar()
		case "mem":
			mem += r.GetScalar()
		}
	}
	if cpus != 0.5 || mem != 64 {
		t.Errorf("task resources cpus=%g mem=%g, want exactly what was asked", cpus, mem)
	}
	// Before placement unfitting offers come back soon; after it, not at all.
	if want := []string{"small/3600", "big2/3600", "late/3600"}; !slices.Equal(d.declined, want) {
		t.Errorf("declined %q, want %q", d.declined, want)
	}
	if d.suppresses != 1 {
		t.Errorf("suppressed %d times, want 1", d.suppresses)
	}
	if s := f.snapshot(); s.phase != phaseLaunched || s.agentID != "agent-big" {
		t.Errorf("phase %v agent %q after launch", s.phase, s.agentID)
	}
}

func TestExecDeclinesBrieflyWhileWaiting(t *testing.T) {
	f := newTestExecFramework(&execOptions{cpus: 4, mem: 64, command: []string{"true"}})
	d := &execDriver{}
	f.Offers(context.Background(), d, []*corralpb.Offer{execOffer("small", 1, 1000)})
	if want := []string{"small/1"}; !slices.Equal(d.declined, want) || d.suppresses != 0 || len(d.launched) != 0 {
		t.Errorf("declined %q suppresses %d launched %d; want a short decline only", d.declined, d.suppresses, len(d.launched))
	}
}

func TestExecFailedLaunchAfterStopIsAbandoned(t *testing.T) {
	f := newTestExecFramework(&execOptions{cpus: 0.1, mem: 32, command: []string{"true"}})
	d := &execDriver{failLaunch: true}
	// A launch fails while waiting: back to waiting, another offer may do.
	f.Offers(context.Background(), d, []*corralpb.Offer{execOffer("o1", 1, 1000)})
	if s := f.snapshot(); s.phase != phaseWaiting {
		t.Fatalf("phase after failed launch = %v, want waiting", s.phase)
	}
	// Main gives up (timeout) while no launch is in flight: nothing to kill.
	if !f.abandon() {
		t.Fatal("abandon while waiting = false, want true")
	}
	d.failLaunch = false
	f.Offers(context.Background(), d, []*corralpb.Offer{execOffer("o2", 1, 1000)})
	if len(d.launched) != 0 {
		t.Errorf("launched after abandon: %v", d.launched)
	}
}

func TestExecDeclaresDemandUntilLaunched(t *testing.T) {
	o := &execOptions{role: "eng/ml", cpus: 3, mem: 1024, gpus: 1, command: []string{"true"}}
	f := newTestExecFramework(o)
	d := &execDriver{failLaunch: true}
	ctx := context.Background()

	f.Subscribed(ctx, d, "fw-1", false)
	f.Subscribed(ctx, d, "fw-1", true) // the SDK re-declares; exec must not repeat it
	// A failed launch leaves the task pending: the demand stays.
	f.Offers(ctx, d, []*corralpb.Offer{execOffer("o1", 4, 2048)})
	want := []string{"request eng/ml [{map[cpus:3 disk:0 gpus:1 mem:1024] 1}]"}
	if !slices.Equal(d.calls, want) {
		t.Fatalf("calls = %q, want %q", d.calls, want)
	}
	d.failLaunch = false
	withGPU := execOffer("o2", 4, 2048)
	withGPU.Resources = append(withGPU.Resources, &corralpb.Resource{Name: "gpus", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: 2}})
	f.Offers(ctx, d, []*corralpb.Offer{execOffer("nogpu", 4, 2048), withGPU})
	f.Offers(ctx, d, []*corralpb.Offer{execOffer("late", 4, 2048)})
	want = append(want, "request eng/ml []", "suppress")
	if !slices.Equal(d.calls, want) {
		t.Errorf("calls = %q, want %q: withdraw once launched, then suppress", d.calls, want)
	}
	if len(d.launched) != 1 || d.launched[0].GetAgentId() != "agent-o2" {
		t.Fatalf("launched %v, want one task on the offer with a GPU", d.launched)
	}
	// Re-subscribing after the launch declares nothing.
	f.Subscribed(ctx, d, "fw-1", true)
	if !slices.Equal(d.calls, want) {
		t.Errorf("calls after a re-subscription = %q, want %q", d.calls, want)
	}
}

// A master without Request support must not stop exec: offers then come
// whole, as before demand existed.
func TestExecCarriesOnWhenDemandIsRefused(t *testing.T) {
	f := newTestExecFramework(&execOptions{role: "*", cpus: 0.5, mem: 64, command: []string{"true"}})
	d := &execDriver{failRequest: true}
	ctx := context.Background()
	f.Subscribed(ctx, d, "fw-1", false)
	f.Offers(ctx, d, []*corralpb.Offer{execOffer("o1", 1, 1000)})
	if len(d.launched) != 1 || d.suppresses != 1 {
		t.Fatalf("launched %d suppressed %d, want the task placed anyway", len(d.launched), d.suppresses)
	}
	// Nothing was declared, so nothing is withdrawn.
	if want := []string{"suppress"}; !slices.Equal(d.calls, want) {
		t.Errorf("calls = %q, want %q", d.calls, want)
	}
}

func TestExecFrameworkInfo(t *testing.T) {
	fw := execFrameworkInfo(&execOptions{name: "job", role: "eng/ml", gpus: 2})
	if fw.GetName() != "job" || !slices.Equal(fw.GetRoles(), []string{"eng/ml"}) || fw.GetFailoverTimeoutSeconds() != execFailoverTimeout.Seconds() {
		t.Errorf("framework info = %v", fw)
	}
	if !slices.Equal(fw.GetCapabilities(), []string{"GPU_RESOURCES"}) {
		t.Errorf("capabilities with --gpus 2 = %q, want GPU_RESOURCES", fw.GetCapabilities())
	}
	if c := execFrameworkInfo(&execOptions{name: "job", role: "*"}).GetCapabilities(); len(c) != 0 {
		t.Errorf("capabilities without --gpus = %q, want none", c)
	}
}
