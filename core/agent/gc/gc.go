// Package gc removes the sandboxes of finished tasks so that a long-running
// agent does not fill its disk, with Mesos' agent semantics: a sandbox goes
// gc_delay after its task ended, and sooner as the disk fills. Every
// disk_watch_interval the collector measures the disk the sandboxes live on
// and removes every finished sandbox older than
//
//	gc_delay * max(0, 1 - gc_disk_headroom - disk usage)
//
// so at 90% usage with the default 10% headroom everything finished goes.
// A sandbox's age is the time since anything in it last changed (the
// task's output, the exit status its shim wrote), which survives agent
// restarts without bookkeeping.
package gc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Mesos' defaults.
const (
	DefaultDelay             = 7 * 24 * time.Hour
	DefaultDiskWatchInterval = time.Minute
	DefaultHeadroom          = 0.1
)

// Options configure a Collector.
type Options struct {
	// Root holds the sandboxes as Root/<framework>/<task>.
	Root              string
	Delay             time.Duration
	DiskWatchInterval time.Duration
	Headroom          float64 // fraction of the disk kept free, in [0, 1)
	// InUse reports whether a task's sandbox still belongs to a task the
	// agent tracks; those are never removed.
	InUse func(frameworkID, taskID string) bool
	// FrameworkRemoved, when set, is called once the last sandbox of a
	// framework is gone and its directory with it.
	FrameworkRemoved func(frameworkID string)
	// Usage is the used fraction of Root's disk; statfs by default.
	Usage  func() (float64, error)
	Now    func() time.Time
	Logger hclog.Logger
}

// Collector prunes finished sandboxes.
type Collector struct{ o Options }

// New returns a Collector, filling defaults.
func New(o Options) *Collector {
	if o.Delay <= 0 {
		o.Delay = DefaultDelay
	}
	if o.DiskWatchInterval <= 0 {
		o.DiskWatchInterval = DefaultDiskWatchInterval
	}
	if o.Headroom < 0 || o.Headroom >= 1 {
		o.Headroom = DefaultHeadroom
	}
	if o.Usage == nil {
		root := o.Root
		o.Usage = func() (float64, error) { return DiskUsage(root) }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.InUse == nil {
		o.InUse = func(string, string) bool { return true }
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return &Collector{o: o}
}

// MaxAge is how old a finished sandbox may get at the given disk usage.
func MaxAge(delay time.Duration, headroom, usage float64) time.Duration {
	return time.Duration(float64(delay) * math.Max(0, 1-headroom-usage))
}

// DiskUsage is the used fraction of the filesystem holding path.
func DiskUsage(path string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Blocks == 0 {
		return 0, nil
	}
	return 1 - float64(st.Bavail)/float64(st.Blocks), nil
}

// Run prunes every DiskWatchInterval until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(c.o.DiskWatchInterval)
	defer t.Stop()
	for {
		if _, err := c.Prune(); err != nil {
			c.o.Logger.Warn("sandbox garbage collection", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Prune makes one pass and returns the sandboxes it removed.
func (c *Collector) Prune() ([]string, error) {
	usage, err := c.o.Usage()
	if err != nil {
		return nil, err
	}
	maxAge := MaxAge(c.o.Delay, c.o.Headroom, usage)
	now := c.o.Now()
	fws, err := os.ReadDir(c.o.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, fw := range fws {
		if !fw.IsDir() {
			continue
		}
		fwDir := filepath.Join(c.o.Root, fw.Name())
		tasks, err := os.ReadDir(fwDir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		left := len(tasks)
		for _, tk := range tasks {
			if !tk.IsDir() || c.o.InUse(fw.Name(), tk.Name()) {
				continue
			}
			dir := filepath.Join(fwDir, tk.Name())
			last, err := lastChange(dir)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if age := now.Sub(last); age < maxAge {
				continue
			}
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
				continue
			}
			left--
			removed = append(removed, dir)
			c.o.Logger.Info("removed finished sandbox", "framework_id", fw.Name(), "task_id", tk.Name(),
				"idle", now.Sub(last).Round(time.Second), "max_age", maxAge.Round(time.Second), "disk_usage", fmt.Sprintf("%.1f%%", 100*usage))
		}
		if left == 0 && os.Remove(fwDir) == nil && c.o.FrameworkRemoved != nil { // fails harmlessly if a task arrived meanwhile
			c.o.FrameworkRemoved(fw.Name())
		}
	}
	return removed, errors.Join(errs...)
}

// lastChange is the newest modification time of dir and what it holds, one
// level down and in its .corral directory (output files, exit status).
func lastChange(dir string) (time.Time, error) {
	var last time.Time
	for _, d := range []string{dir, filepath.Join(dir, ".corral")} {
		st, err := os.Stat(d)
		if err != nil {
			if d != dir && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return time.Time{}, err
		}
		if st.ModTime().After(last) {
			last = st.ModTime()
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return time.Time{}, err
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil && info.ModTime().After(last) {
				last = info.ModTime()
			}
		}
	}
	return last, nil
}
