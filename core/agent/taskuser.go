package agent

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/corral-project/corral/core/agent/sandbox"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// The OS user a task runs as. The master has already checked run_tasks
// (may the framework's principal run tasks as this user?); the agent
// checks what only it can know, before anything of the task runs:
//
//   - The user is the task's command user, else its framework's user (as
//     Mesos). A task naming neither runs as the agent's own user, as Mesos
//     does; on an agent that runs as root that is root.
//   - A named user must exist on the agent (os/user), else the task fails
//     with a message naming the user and the agent. A task with its own
//     root filesystem is the exception: its user is looked up in the
//     image's /etc/passwd by the isolator that builds the container.
//   - A task that would run as uid 0 is refused unless root tasks are
//     allowed (Config.AllowRootTasks, HCL agent { allow_root_tasks }). The
//     default allows them on an open cluster (no acl block: anyone may
//     already do anything there, and Mesos frameworks declare "root") and
//     refuses them once ACLs are set, as Nomad's user.denylist refuses
//     root by default. `corral dev` allows them unless told otherwise.
//     In a root filesystem the agent cannot see uids: "", "root" and "0"
//     count as root there (an image's default user is root).
//   - The sandbox is given to the user (chown), as Mesos does, so a task
//     switched to another user can write its own files there.

// lookupUser is os/user.Lookup; tests replace it.
type lookupUser func(name string) (*user.User, error)

// taskIdentity is who a task runs as on the host.
type taskIdentity struct {
	// Name is the requested user, "" for the agent's own.
	Name string
	// UID and GID are resolved on the host; -1 when the task runs in its
	// own root filesystem (resolved there) or as the agent's user.
	UID, GID int
}

// userChecker holds what the user check needs to know about the agent.
type userChecker struct {
	allowRoot bool
	selfUID   int
	lookup    lookupUser
	// where names the agent in messages ("agent A (host H)").
	where string
}

// errTaskUser marks a task refused because of its user.
var errTaskUser = errors.New("task user refused")

// check resolves name for a task (inImage: the task has its own root
// filesystem) and decides whether it may run.
func (c userChecker) check(name string, inImage bool) (taskIdentity, error) {
	id := taskIdentity{Name: name, UID: -1, GID: -1}
	rootHint := "run the task as another user (CommandInfo.user or FrameworkInfo.user), or allow root tasks on this agent " +
		"(agent { allow_root_tasks = true } or -allow-root-tasks)"
	if inImage {
		if !c.allowRoot && (name == "" || name == "root" || name == "0") {
			who := fmt.Sprintf("task user %q", name)
			if name == "" {
				who = "the task names no user, so it runs as its image's default user, root; it"
			}
			return id, fmt.Errorf("%w: %s is root (uid 0) and %s does not run tasks as root; %s", errTaskUser, who, c.where, rootHint)
		}
		return id, nil
	}
	if name == "" {
		if c.selfUID == 0 && !c.allowRoot {
			return id, fmt.Errorf("%w: the task names no user, so it would run as the agent's own user, root (uid 0), and %s does not run tasks as root; %s",
				errTaskUser, c.where, rootHint)
		}
		return id, nil
	}
	u, err := c.lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return id, fmt.Errorf("%w: task user %q does not exist on %s; create the user there or run the task as one it has",
				errTaskUser, name, c.where)
		}
		return id, fmt.Errorf("%w: task user %q on %s: %v", errTaskUser, name, c.where, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return id, fmt.Errorf("%w: task user %q on %s has a non-numeric uid %q", errTaskUser, name, c.where, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return id, fmt.Errorf("%w: task user %q on %s has a non-numeric gid %q", errTaskUser, name, c.where, u.Gid)
	}
	if uid == 0 && !c.allowRoot {
		return id, fmt.Errorf("%w: task user %q is root (uid 0) and %s does not run tasks as root; %s", errTaskUser, name, c.where, rootHint)
	}
	id.UID, id.GID = uid, gid
	return id, nil
}

// allowRootTasks is the effective AllowRootTasks setting.
func (c Config) allowRootTasks() bool {
	if c.AllowRootTasks != nil {
		return *c.AllowRootTasks
	}
	return c.ACLs == nil
}

// admitTaskUser checks the OS user of a task whose sandbox dir was just
// created and gives the sandbox to that user. A refused task ends
// TASK_FAILED with a message naming the user, and admitTaskUser returns
// false.
func (a *Agent) admitTaskUser(t *task, dir string) bool {
	c := userChecker{allowRoot: a.cfg.allowRootTasks(), selfUID: os.Getuid(), lookup: user.Lookup,
		where: fmt.Sprintf("agent %s (host %s)", a.ID(), a.cfg.Hostname)}
	id, err := c.check(a.userFor(t), t.info.GetContainer().GetRootfs() != "")
	if err == nil && id.UID >= 0 && id.UID != c.selfUID {
		err = chownSandbox(dir, id.UID, id.GID)
	}
	if err != nil {
		t.logger.Warn("task refused", "user", a.userFor(t), "reason", err)
		a.finish(t, corralpb.TaskState_TASK_FAILED, corralpb.TaskStatus_SOURCE_AGENT,
			corralpb.TaskStatus_REASON_LAUNCH_FAILED, err.Error(), nil)
		return false
	}
	return true
}

// chownSandbox gives a sandbox and the files the agent made in it (the
// task's stdout and stderr) to the task's user.
func chownSandbox(dir string, uid, gid int) error {
	for _, p := range []string{dir, filepath.Join(dir, sandbox.Stdout), filepath.Join(dir, sandbox.Stderr)} {
		if err := os.Lchown(p, uid, gid); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("give the sandbox to uid %d: %w", uid, err)
		}
	}
	return nil
}
