package cgroups

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/hashicorp/go-hclog"
)

// TestOOMWatchSeveralContainers: three containers OOM at once and Watch
// reports each one, with its limit and peak, from the kernel's
// notifications (there is no poll to fall back on).
func TestOOMWatchSeveralContainers(t *testing.T) {
	iso := testIsolator(t, `{}`)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	lims, err := iso.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	ids := []string{"hog-a", "hog-b", "hog-c"}
	for _, id := range ids {
		prepare(t, iso, id, "cpus:0.2;mem:32")
	}
	prepare(t, iso, "quiet", "cpus:0.2;mem:32")
	for _, id := range ids {
		start(t, iso, id, helper("alloc", "256"))
	}
	got := map[string]isolator.Limitation{}
	deadline := time.After(2 * time.Minute)
	for len(got) < len(ids) {
		select {
		case lim := <-lims:
			if _, dup := got[lim.ContainerID]; dup {
				continue // a second kill in the same container
			}
			got[lim.ContainerID] = lim
		case <-deadline:
			t.Fatalf("limitations reported for %v within two minutes; want all of %v", keys(got), ids)
		}
	}
	for _, id := range ids {
		lim := got[id]
		if lim.Reason != isolator.ReasonMemory || !strings.Contains(lim.Message, "limit 32.0 MiB (33554432 bytes)") ||
			!strings.Contains(lim.Message, "peak usage") {
			t.Errorf("%s: limitation = %+v, want reason %q and a message with the limit and the peak", id, lim, isolator.ReasonMemory)
		}
	}
	if _, ok := got["quiet"]; ok {
		t.Errorf("a limitation was reported for the container that allocated nothing")
	}
	// A stream opened now (a restarted agent's) hears of the three too.
	late, err := iso.Watch(ctx)
	if err != nil {
		t.Fatalf("second Watch: %v", err)
	}
	again := map[string]bool{}
	deadline = time.After(time.Minute)
	for len(again) < len(ids) {
		select {
		case lim := <-late:
			again[lim.ContainerID] = true
		case <-deadline:
			t.Fatalf("a new Watch stream reported %v within a minute; want every OOM-killed container %v", again, ids)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// openFDs counts this process's open file descriptors of the kinds the
// OOM watcher opens: eventfds, epoll and inotify instances, and OOM count
// files. Other kinds are left out, so that the pipes of an earlier test's
// workloads, closed as their processes are reaped, do not move the count.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		switch {
		case strings.HasPrefix(target, "anon_inode:[eventfd]"), strings.HasPrefix(target, "anon_inode:[eventpoll]"),
			strings.HasPrefix(target, "anon_inode:inotify"),
			strings.HasSuffix(target, "/memory.oom_control"), strings.HasSuffix(target, "/memory.events"):
			n++
		}
	}
	return n
}

// TestOOMWatchReleasesDestroyed: each watched container holds its
// registration (files) only until it is cleaned up; with every container
// gone the watcher holds no file at all.
func TestOOMWatchReleasesDestroyed(t *testing.T) {
	iso := testIsolator(t, `{}`)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	if _, err := iso.Watch(ctx); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// One round first, so that files opened once per process (the Go
	// runtime's poller, the cgroups library's root handle) are counted in
	// the baseline.
	if _, err := iso.Prepare(ctx, isolator.PrepareRequest{ContainerID: "warm"}); err != nil {
		t.Fatal(err)
	}
	if err := iso.Cleanup(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	const n = 20
	for k := range n {
		if _, err := iso.Prepare(ctx, isolator.PrepareRequest{ContainerID: fmt.Sprintf("c%d", k)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := iso.oom.registered(); got != n {
		t.Errorf("%d containers watched after %d Prepares", got, n)
	}
	if during := openFDs(t); during < before+n {
		t.Errorf("%d open files with %d containers watched, %d before: want at least one per container", during, n, before)
	}
	for k := range n {
		if err := iso.Cleanup(ctx, fmt.Sprintf("c%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	if got := iso.oom.registered(); got != 0 {
		t.Errorf("%d containers still watched after every Cleanup", got)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d open files after every container was cleaned up, %d before: the watcher leaks", after, before)
	}
	waitLoops(t, iso.oom)
}

// waitLoops fails the test unless w's notifier loop ends once nothing is
// registered (a loop blocked in a read that closing cannot end would
// leak a thread and the kernel object behind the closed descriptor).
func waitLoops(t *testing.T, w *oomWatcher) {
	t.Helper()
	done := make(chan struct{})
	go func() { w.loops.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Error("the OOM watcher's loop still runs a minute after its last container was unregistered")
	}
}

// fakeEvents writes a cgroup v2 memory.events with count oom_kill in dir;
// every write is the same length, so a reader never sees it half written.
func fakeEvents(t *testing.T, dir string, count int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "memory.events"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "low 0\nhigh 0\nmax %03d\noom %03d\noom_kill %03d\n", count, count, count); err != nil {
		t.Fatal(err)
	}
}

// TestOOMWatcherInotify drives the cgroup v2 watcher (inotify on
// memory.events) on ordinary files written as the kernel writes the real
// ones, so it runs on any host: each growth of a count reaches a stream,
// a new stream hears of every count above zero, and unregistering releases
// every file. TestOOMNotifiedOnV2 checks the kernel's side on a v2 host.
func TestOOMWatcherInotify(t *testing.T) {
	w := newOOMWatcher(hclog.NewNullLogger(), true)
	root := t.TempDir()
	before := openFDs(t)
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		dir := filepath.Join(root, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		fakeEvents(t, dir, 0)
		if err := w.register(id, dir); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	sub := w.subscribe()
	defer w.unsubscribe(sub)
	fakeEvents(t, filepath.Join(root, "a"), 1)
	fakeEvents(t, filepath.Join(root, "c"), 2)
	want := map[string]uint64{"a": 1, "c": 2}
	expect := func(sub *oomSub, want map[string]uint64) {
		t.Helper()
		got := map[string]uint64{}
		deadline := time.After(time.Minute)
		for len(got) < len(want) || !mapsEqual(got, want) {
			select {
			case <-sub.wake:
			case <-deadline:
				t.Fatalf("counts reported: %v; want %v", got, want)
			}
			for id, ev := range sub.take() {
				if ev.gone {
					t.Errorf("%s reported gone while registered", id)
				}
				got[id] = ev.n
			}
		}
	}
	expect(sub, want)
	late := w.subscribe()
	defer w.unsubscribe(late)
	expect(late, want)

	for _, id := range ids {
		w.unregister(id)
	}
	if got := w.registered(); got != 0 {
		t.Errorf("%d registrations after unregistering all", got)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d open files after unregistering every container, %d before", after, before)
	}
	waitLoops(t, w)
	gone := sub.take()
	for _, id := range ids {
		if !gone[id].gone {
			t.Errorf("stream not told that %s is gone: %v", id, gone)
		}
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOOMNotifiedOnV2: the kernel marks memory.events modified when it
// OOM-kills in a container, which is what the v2 watcher waits for.
func TestOOMNotifiedOnV2(t *testing.T) {
	h := needRoot(t)
	if !h.Unified {
		t.Skipf("needs cgroup v2: this host mounts the cgroup v1 memory controller at %s, and memory.events with its "+
			"inotify notification exists only in the unified hierarchy (the v1 path runs in TestOOMWatchSeveralContainers)",
			h.Mounts["memory"])
	}
	iso := testIsolator(t, `{}`)
	prepare(t, iso, "hog", "cpus:0.2;mem:32")
	n, err := newInotifyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	f, err := os.Open(filepath.Join(h.main(filepath.Join(iso.Parent(), "hog")), "memory.events"))
	if err != nil {
		t.Fatal(err)
	}
	c := &oomCounter{f: f, buf: make([]byte, 512)}
	defer c.close()
	key, err := n.add(c)
	if err != nil {
		t.Fatal(err)
	}
	start(t, iso, "hog", helper("alloc", "256"))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		keys := make(chan []int, 1)
		go func() { k, _ := n.wait(); keys <- k }()
		select {
		case k := <-keys:
			if slices.Contains(k, key) {
				if kills, err := c.read(); err == nil && kills > 0 {
					return
				}
			}
		case <-time.After(time.Until(deadline)):
			t.Fatal("no OOM kill notified through memory.events within two minutes")
		}
	}
}

// chanNotifier is a notifier the test drives: wait returns what is sent
// on keys. It stands in for the kernel's eventfd, below the watcher.
type chanNotifier struct {
	keys   chan []int
	next   int
	closed chan struct{}
}

func (n *chanNotifier) add(*oomCounter) (int, error) { n.next++; return n.next, nil }
func (n *chanNotifier) remove(int)                   {}
func (n *chanNotifier) ack(int)                      {}
func (n *chanNotifier) close() error                 { close(n.closed); return nil }
func (n *chanNotifier) wait() ([]int, error) {
	select {
	case k := <-n.keys:
		return k, nil
	case <-n.closed:
		return nil, os.ErrClosed
	}
}

// TestOOMWatcherRechecksEarlyNotification: cgroup v1 notifies an OOM
// before the OOM killer has counted its kill; the watcher reads the count
// again until the kill shows, without a second notification.
func TestOOMWatcherRechecksEarlyNotification(t *testing.T) {
	w := newOOMWatcher(hclog.NewNullLogger(), true)
	w.notifyFirst = true
	cn := &chanNotifier{keys: make(chan []int), closed: make(chan struct{})}
	w.newNotifier = func() (notifier, error) { return cn, nil }
	dir := t.TempDir()
	fakeEvents(t, dir, 0)
	if err := w.register("early", dir); err != nil {
		t.Fatal(err)
	}
	defer w.unregister("early")
	sub := w.subscribe()
	defer w.unsubscribe(sub)
	cn.keys <- []int{1} // the OOM notification, with the count still 0
	// The kill is counted after the notification, which does not come again.
	fakeEvents(t, dir, 1)
	deadline := time.After(time.Minute)
	for {
		select {
		case <-sub.wake:
		case <-deadline:
			t.Fatal("the kill counted after the notification was not reported within a minute")
		}
		if ev, ok := sub.take()["early"]; ok && ev.n == 1 {
			return
		}
	}
}
