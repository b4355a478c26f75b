package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// notifier is the kernel's way of telling the OOM watcher that a
// container's OOM count may have changed: on cgroup v1 an eventfd per
// container registered on memory.oom_control (cgroup.event_control), all
// in one epoll set; on v2 one inotify instance watching every container's
// memory.events, which the kernel marks modified whenever a count in it
// changes. Either way the kernel wakes one goroutine, whatever the number
// of containers, and an idle machine costs nothing.
//
// Methods other than wait are called with the watcher's lock held; wait is
// called from the watcher's loop only, without it.
type notifier interface {
	// add starts notifications for the container whose count file is c
	// (open on its cgroup's memory.oom_control or memory.events) and
	// returns the key that wait reports for it.
	add(c *oomCounter) (key int, err error)
	// remove stops notifications for key and releases what add made.
	remove(key int)
	// wait blocks until notifications arrive and returns their keys
	// (anyKey: any container may have changed), or an error once the
	// notifier is closed.
	wait() ([]int, error)
	// ack consumes key's pending notification, before its count is read.
	ack(key int)
	close() error
}

// anyKey is what wait reports when the kernel dropped notifications (an
// inotify queue overflow): every container must be read.
const anyKey = -1

// eventfdNotifier is the cgroup v1 notifier. The epoll set is itself
// pollable, so the Go runtime's poller parks the watcher's goroutine on it
// and no thread waits.
type eventfdNotifier struct {
	ep *os.File // the epoll instance, non-blocking, in the runtime's poller
	// epfd is ep's descriptor, kept because ep.Fd() would put ep in
	// blocking mode.
	epfd   int
	events []unix.EpollEvent
}

func newEventfdNotifier() (*eventfdNotifier, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	return &eventfdNotifier{ep: os.NewFile(uintptr(fd), "oom-epoll"), epfd: fd, events: make([]unix.EpollEvent, 64)}, nil
}

// add registers an eventfd for OOM notifications of c's cgroup, as
// Documentation/admin-guide/cgroup-v1/memory.rst describes: write
// "<event_fd> <fd of memory.oom_control>" to cgroup.event_control.
func (n *eventfdNotifier) add(c *oomCounter) (int, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return 0, fmt.Errorf("eventfd: %w", err)
	}
	ctl := filepath.Join(filepath.Dir(c.f.Name()), "cgroup.event_control")
	line := strconv.Itoa(efd) + " " + strconv.Itoa(int(c.f.Fd()))
	if err := writeExisting(ctl, line); err != nil {
		_ = unix.Close(efd)
		return 0, fmt.Errorf("register OOM notification: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(n.epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		_ = unix.Close(efd)
		return 0, fmt.Errorf("epoll add eventfd: %w", err)
	}
	return efd, nil
}

// remove closes the eventfd: the kernel then drops its registration (the
// eventfd's release wakes the cgroup's event with POLLHUP).
func (n *eventfdNotifier) remove(key int) {
	_ = unix.EpollCtl(n.epfd, unix.EPOLL_CTL_DEL, key, nil)
	_ = unix.Close(key)
}

func (n *eventfdNotifier) wait() ([]int, error) {
	rc, err := n.ep.SyscallConn()
	if err != nil {
		return nil, err
	}
	var keys []int
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		cnt, err := unix.EpollWait(int(fd), n.events, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				return false
			}
			werr = fmt.Errorf("epoll_wait: %w", err)
			return true
		}
		if cnt == 0 {
			return false // nothing yet: park until the epoll set is readable
		}
		for _, ev := range n.events[:cnt] {
			keys = append(keys, int(ev.Fd))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return keys, werr
}

// ack reads the eventfd's counter back to zero, so that the level-triggered
// epoll set does not report it again.
func (n *eventfdNotifier) ack(key int) {
	var buf [8]byte
	_, _ = unix.Read(key, buf[:])
}

func (n *eventfdNotifier) close() error { return n.ep.Close() }

// writeExisting writes s to an existing file (a cgroup control file).
func writeExisting(name, s string) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(s)
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

// inotifyNotifier is the cgroup v2 notifier: one inotify instance, one
// watch per container's memory.events. The kernel generates a modify
// event on memory.events whenever one of its counters changes (see
// Documentation/admin-guide/cgroup-v2.rst, "memory.events"); it comes
// after the count has grown, and a removed cgroup's watch ends with
// IN_IGNORED.
type inotifyNotifier struct {
	f *os.File // the inotify instance, non-blocking, in the runtime's poller
	// fd is f's descriptor, kept because f.Fd() would put f in blocking
	// mode: each wait would then hold a thread in read(2) instead of
	// parking in the runtime's poller, and Close could not wake it.
	fd  int
	buf []byte
}

func newInotifyNotifier() (*inotifyNotifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &inotifyNotifier{f: os.NewFile(uintptr(fd), "oom-inotify"), fd: fd, buf: make([]byte, 64*(unix.SizeofInotifyEvent+16))}, nil
}

func (n *inotifyNotifier) add(c *oomCounter) (int, error) {
	wd, err := unix.InotifyAddWatch(n.fd, c.f.Name(), unix.IN_MODIFY)
	if err != nil {
		return 0, fmt.Errorf("inotify watch %s: %w", c.f.Name(), err)
	}
	return wd, nil
}

// remove ends the watch; one the kernel already ended (the cgroup was
// removed) is not an error.
func (n *inotifyNotifier) remove(key int) { _, _ = unix.InotifyRmWatch(n.fd, uint32(key)) }

func (n *inotifyNotifier) wait() ([]int, error) {
	cnt, err := n.f.Read(n.buf)
	if err != nil {
		return nil, err
	}
	var keys []int
	for off := 0; off+unix.SizeofInotifyEvent <= cnt; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&n.buf[off]))
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			keys = append(keys, anyKey)
		case ev.Wd >= 0:
			keys = append(keys, int(ev.Wd))
		}
		off += unix.SizeofInotifyEvent + int(ev.Len)
	}
	return keys, nil
}

func (n *inotifyNotifier) ack(int) {}

func (n *inotifyNotifier) close() error { return n.f.Close() }
