package agent

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// fakeUsers is a passwd file for userChecker.
func fakeUsers(name string) (*user.User, error) {
	switch name {
	case "root", "toor":
		return &user.User{Username: name, Uid: "0", Gid: "0"}, nil
	case "alice":
		return &user.User{Username: name, Uid: "1001", Gid: "1002"}, nil
	case "odd":
		return &user.User{Username: name, Uid: "S-1-5-21", Gid: "1"}, nil
	case "ldap-down":
		return nil, errors.New("nss: connection refused")
	}
	return nil, user.UnknownUserError(name)
}

func TestUserChecker(t *testing.T) {
	const where = "agent a1 (host h1)"
	for _, tc := range []struct {
		name      string
		user      string
		inImage   bool
		allowRoot bool
		selfUID   int
		wantUID   int
		wantErr   []string // substrings; nil: admitted
	}{
		{name: "named user exists", user: "alice", selfUID: 0, wantUID: 1001},
		{name: "named user, agent not root", user: "alice", selfUID: 1001, wantUID: 1001},
		{name: "unknown user", user: "mallory", selfUID: 0, allowRoot: true,
			wantErr: []string{`task user "mallory" does not exist on agent a1 (host h1)`}},
		{name: "lookup failure is reported, not taken for a missing user", user: "ldap-down", selfUID: 0,
			wantErr: []string{`task user "ldap-down"`, "connection refused"}},
		{name: "non-numeric uid", user: "odd", selfUID: 0, wantErr: []string{"non-numeric uid"}},
		{name: "root refused", user: "root", selfUID: 0,
			wantErr: []string{`task user "root" is root (uid 0)`, "does not run tasks as root", "allow_root_tasks = true"}},
		{name: "uid 0 under another name refused", user: "toor", selfUID: 0, wantErr: []string{`task user "toor" is root (uid 0)`}},
		{name: "root allowed", user: "root", allowRoot: true, selfUID: 0, wantUID: 0},
		{name: "no user on a root agent refused", user: "", selfUID: 0,
			wantErr: []string{"names no user", "agent's own user, root (uid 0)", where}},
		{name: "no user on a root agent allowed", user: "", selfUID: 0, allowRoot: true, wantUID: -1},
		{name: "no user on a non-root agent", user: "", selfUID: 1001, wantUID: -1},
		{name: "image: user resolved by the isolator", user: "postgres", inImage: true, selfUID: 0, wantUID: -1},
		{name: "image: default user is root", user: "", inImage: true, selfUID: 0,
			wantErr: []string{"image's default user, root"}},
		{name: "image: root by name", user: "root", inImage: true, selfUID: 1001, wantErr: []string{`task user "root" is root`}},
		{name: "image: root by uid", user: "0", inImage: true, selfUID: 0, wantErr: []string{`task user "0" is root`}},
		{name: "image: root allowed", user: "", inImage: true, allowRoot: true, selfUID: 0, wantUID: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := userChecker{allowRoot: tc.allowRoot, selfUID: tc.selfUID, lookup: fakeUsers, where: where}
			id, err := c.check(tc.user, tc.inImage)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("check(%q) = %v, want admitted", tc.user, err)
				}
				if id.UID != tc.wantUID || id.Name != tc.user {
					t.Fatalf("check(%q) = %+v, want uid %d", tc.user, id, tc.wantUID)
				}
				return
			}
			if !errors.Is(err, errTaskUser) {
				t.Fatalf("check(%q) = %v, want a task user refusal", tc.user, err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("check(%q) = %q, want it to say %q", tc.user, err, want)
				}
			}
		})
	}
}

func TestAllowRootTasksDefault(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"open cluster", Config{}, true},
		{"acls set", Config{ACLs: &acl.ACLs{}}, false},
		{"acls set, allowed explicitly", Config{ACLs: &acl.ACLs{}, AllowRootTasks: &yes}, true},
		{"open cluster, refused explicitly", Config{AllowRootTasks: &no}, false},
	} {
		if got := tc.cfg.allowRootTasks(); got != tc.want {
			t.Errorf("%s: allowRootTasks = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTaskUsers runs real tasks on a root agent that refuses root tasks:
// one as nobody really runs as nobody and owns its sandbox, one naming a
// user the host lacks fails naming it, and one naming no user (so root)
// is refused before anything of it starts.
func TestTaskUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching a task's user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no nobody user on this host: %v", err)
	}
	cat := pluginCatalog(t)
	m := startFakeMaster(t)
	refuse := false
	a := startAgentWith(t, cat, Config{
		Master: m.addr, Address: "127.0.0.1:0", WorkDir: t.TempDir(), Hostname: "test-host",
		Resources: resources.MustParse("cpus:2;mem:512"), StatusUpdateRetry: 300 * time.Millisecond,
		AllowRootTasks: &refuse,
	})
	waitFor(t, "registration", 30*time.Second, func() bool { return a.ID() != "" })

	asUser := func(name string) func(*corralpb.TaskInfo) {
		return func(ti *corralpb.TaskInfo) { ti.Command.User = name }
	}
	m.runTask(t, "fw1", "as-nobody", `id -u; id -g; echo written > own-file && cat own-file`, asUser("nobody"))
	sts := m.waitStates(t, "as-nobody", corralpb.TaskState_TASK_STARTING, corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_FINISHED)
	if code, out := httpGet(t, sts[2].GetSandboxUrl()+"/stdout"); code != 200 || out != nobody.Uid+"\n"+nobody.Gid+"\nwritten\n" {
		t.Fatalf("the nobody task's stdout: %d %q, want its uid %s, gid %s and the file it wrote in its sandbox", code, out, nobody.Uid, nobody.Gid)
	}
	dir := filepath.Join(a.cfg.sandboxRoot(), "fw1", "as-nobody")
	if st, err := os.Stat(filepath.Join(dir, "own-file")); err != nil {
		t.Errorf("the nobody task's file: %v", err)
	} else if owner := fileUID(st); owner != nobody.Uid {
		t.Errorf("the nobody task's file is owned by uid %s, want %s", owner, nobody.Uid)
	}

	m.runTask(t, "fw1", "ghost", `true`, asUser("corral-no-such-user"))
	sts = m.waitStates(t, "ghost", corralpb.TaskState_TASK_FAILED)
	if st := sts[0]; st.GetReason() != corralpb.TaskStatus_REASON_LAUNCH_FAILED || st.GetSource() != corralpb.TaskStatus_SOURCE_AGENT ||
		!strings.Contains(st.GetMessage(), `task user "corral-no-such-user" does not exist on agent `+a.ID()) {
		t.Fatalf("a task as a missing user: %v, want TASK_FAILED (launch failed, by the agent) naming the user and the agent", st)
	}

	m.runTask(t, "fw1", "as-root", `touch ran`)
	sts = m.waitStates(t, "as-root", corralpb.TaskState_TASK_FAILED)
	if msg := sts[0].GetMessage(); !strings.Contains(msg, "root (uid 0)") || !strings.Contains(msg, "allow_root_tasks") {
		t.Fatalf("a task as root: %q, want a refusal naming root and the setting", msg)
	}
	if _, err := os.Stat(filepath.Join(a.cfg.sandboxRoot(), "fw1", "as-root", "ran")); !os.IsNotExist(err) {
		t.Fatalf("the refused root task ran (its file: %v)", err)
	}
}

func fileUID(st os.FileInfo) string {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return strconv.Itoa(int(s.Uid))
	}
	return "?"
}
