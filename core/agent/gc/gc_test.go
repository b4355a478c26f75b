package gc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestMaxAge(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, tc := range []struct {
		usage float64
		want  time.Duration
	}{
		{0, time.Duration(0.9 * float64(week))},
		{0.5, time.Duration(0.4 * float64(week))},
		{0.9, 0},
		{0.99, 0},
	} {
		if got := MaxAge(week, 0.1, tc.usage); got.Round(time.Second) != tc.want.Round(time.Second) {
			t.Errorf("MaxAge(usage %v) = %v, want %v", tc.usage, got, tc.want)
		}
	}
}

func TestPruneByAgeAndDiskUsage(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	mk := func(root, fw, task string, age time.Duration) string {
		dir := filepath.Join(root, fw, task)
		if err := os.MkdirAll(filepath.Join(dir, ".corral"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{filepath.Join(dir, "stdout"), filepath.Join(dir, ".corral", "exit_status")} {
			if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ts := now.Add(-age)
		for _, p := range []string{filepath.Join(dir, "stdout"), filepath.Join(dir, ".corral", "exit_status"), filepath.Join(dir, ".corral"), dir} {
			if err := os.Chtimes(p, ts, ts); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	cases := []struct {
		name  string
		usage float64
		want  []string // tasks removed
	}{
		// delay 10h, headroom 0.1: max age 9h on an empty disk ...
		{"empty disk", 0, []string{"old"}},
		// ... 4h at half full ...
		{"half full", 0.5, []string{"mid", "old"}},
		// ... and nothing finished is kept at 90%.
		{"full", 0.9, []string{"mid", "old", "young"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			mk(root, "fw", "young", time.Hour)
			mk(root, "fw", "mid", 5*time.Hour)
			mk(root, "fw", "old", 10*time.Hour)
			mk(root, "fw", "running", 100*time.Hour)
			c := New(Options{
				Root: root, Delay: 10 * time.Hour, Headroom: 0.1,
				InUse: func(fw, task string) bool { return task == "running" },
				Usage: func() (float64, error) { return tc.usage, nil },
				Now:   func() time.Time { return now },
			})
			removed, err := c.Prune()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range removed {
				got = append(got, filepath.Base(d))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("removed %v, want %v", got, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "fw", "running")); err != nil {
				t.Fatalf("a live task's sandbox was removed: %v", err)
			}
		})
	}
}

// TestFrameworkRemoved: FrameworkRemoved hears of a framework once its
// last sandbox and its directory are gone, and not of one that keeps a
// live task's sandbox.
func TestFrameworkRemoved(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"done/t1", "done/t2", "live/t1", "live/running"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var removed []string
	c := New(Options{
		Root: root, Delay: time.Hour,
		InUse:            func(fw, task string) bool { return task == "running" },
		Usage:            func() (float64, error) { return 0, nil },
		Now:              func() time.Time { return time.Now().Add(2 * time.Hour) }, // every finished sandbox is past the delay
		FrameworkRemoved: func(fw string) { removed = append(removed, fw) },
	})
	if _, err := c.Prune(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"done"}) {
		t.Fatalf("FrameworkRemoved heard %v, want [done]", removed)
	}
	if _, err := os.Stat(filepath.Join(root, "done")); !os.IsNotExist(err) {
		t.Fatalf("framework directory left: %v", err)
	}
}

func TestDiskUsage(t *testing.T) {
	u, err := DiskUsage(t.TempDir())
	if err != nil || u < 0 || u > 1 {
		t.Fatalf("DiskUsage = %v, %v", u, err)
	}
}
