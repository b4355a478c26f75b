package sim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/core/pluginhost"
)

// pluginDir is bin/plugins of a `make build`; the simulator runs real
// allocator binaries.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CORRAL_BIN_DIR")
	if dir == "" {
		t.Skip("CORRAL_BIN_DIR is not set: run through `make test`, which builds bin/ first")
	}
	p := filepath.Join(dir, "plugins")
	if _, err := os.Stat(filepath.Join(p, "corral-allocator-drf")); err != nil {
		t.Fatalf("corral-allocator-drf is missing from %s: run `make build`", p)
	}
	return p
}

func runTrace(t *testing.T, path string, opts Options) *Result {
	t.Helper()
	tr, err := LoadTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Launcher == nil {
		opts.Launcher = master.NewPluginLauncher(pluginDir(t), nil, pluginhost.Options{})
	}
	res, err := Run(context.Background(), tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSmallTraceRuns(t *testing.T) {
	res := runTrace(t, "../../testdata/traces/small.json", Options{Allocator: master.AllocatorChoice{Name: "drf"}})
	t.Logf("end %.1f s, cycles %d, util %v", res.EndS, res.Cycles, res.MeanUtil)
	for _, f := range res.Frameworks {
		t.Logf("%+v", f)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("the master refused model calls: %v", res.Errors)
	}
}

// TestDeterministic runs the same trace twice under sharing and static
// partitioning: every report file, plots included, must be identical.
func TestDeterministic(t *testing.T) {
	var dirs []string
	for range 2 {
		var runs []*Result
		for _, static := range []bool{false, true} {
			label := "drf"
			if static {
				label = "static"
			}
			runs = append(runs, runTrace(t, "../../testdata/traces/small.json",
				Options{Label: label, Allocator: master.AllocatorChoice{Name: "drf"}, Static: static}))
		}
		dir := t.TempDir()
		if err := WriteReports(dir, runs, "png"); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	files, err := os.ReadDir(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("only %d report files written", len(files))
	}
	for _, f := range files {
		a, err := os.ReadFile(filepath.Join(dirs[0], f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dirs[1], f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs of the same inputs", f.Name())
		}
	}
}

// TestStaticPartition: under static partitioning a framework never uses
// more than its partition; shared, the greedy one goes beyond it.
func TestStaticPartition(t *testing.T) {
	static := runTrace(t, "../../testdata/traces/small.json", Options{Allocator: master.AllocatorChoice{Name: "drf"}, Static: true})
	shared := runTrace(t, "../../testdata/traces/small.json", Options{Allocator: master.AllocatorChoice{Name: "drf"}})
	// small.json: 8 agents, 5 frameworks; etl gets big-000 and big-001,
	// 16 of the 48 CPUs.
	limit := 16.0 / 48
	maxShare := func(r *Result) float64 {
		m := 0.0
		for _, s := range r.Samples {
			m = max(m, s.Share["etl"])
		}
		return m
	}
	if got := maxShare(static); got > limit+1e-9 {
		t.Errorf("static: etl used %.3f of the CPUs, its partition is %.3f", got, limit)
	}
	if got := maxShare(shared); got <= limit {
		t.Errorf("shared: etl never used more than its static partition (%.3f): sharing did nothing", got)
	}
	for _, r := range []*Result{static, shared} {
		if r.Stalled || len(r.Errors) > 0 {
			t.Errorf("%s: stalled %v, errors %v", r.Policy, r.Stalled, r.Errors)
		}
		for _, f := range r.Frameworks {
			if f.JobsDone != f.Jobs {
				t.Errorf("%s: %s finished %d of %d jobs", r.Policy, f.Name, f.JobsDone, f.Jobs)
			}
		}
	}
}

// TestStall: a gang larger than the cluster can never run; the run stops
// and says so instead of simulating for ever.
func TestStall(t *testing.T) {
	tr := `{"name":"stall","agents":[{"count":2,"resources":"cpus:2;mem:1024"}],
	  "frameworks":[{"name":"mpi","kind":"gang","jobs":[{"name":"big","tasks":8,"task":"cpus:1;mem:64","duration_s":10}]}]}`
	path := filepath.Join(t.TempDir(), "stall.json")
	if err := os.WriteFile(path, []byte(tr), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTrace(t, path, Options{Allocator: master.AllocatorChoice{Name: "drf"}})
	if !r.Stalled || r.Frameworks[0].JobsDone != 0 {
		t.Fatalf("stalled %v, jobs done %d: want a stalled run with the job unfinished", r.Stalled, r.Frameworks[0].JobsDone)
	}
}

func TestTraceErrors(t *testing.T) {
	agents := `"agents":[{"count":1,"resources":"cpus:1;mem:64"}]`
	for _, tc := range []struct{ name, trace, want string }{
		{"unknown field", `{"agentz":[]}`, `unknown field "agentz"`},
		{"no agents", `{"frameworks":[]}`, "no agents"},
		{"bad resources", `{"agents":[{"count":1,"resources":"cpus"}]}`, `agents[0]: resources "cpus"`},
		{"no frameworks", `{` + agents + `}`, "no frameworks"},
		{"bad kind", `{` + agents + `,"frameworks":[{"name":"a","kind":"lazy","jobs":[]}]}`, `kind "lazy"`},
		{"bad task", `{` + agents + `,"frameworks":[{"name":"a","kind":"greedy","jobs":[{"name":"j","tasks":1,"task":"disk:5","duration_s":1}]}]}`,
			"must ask for some cpus or mem"},
		{"forever batch", `{` + agents + `,"frameworks":[{"name":"a","kind":"greedy","jobs":[{"name":"j","tasks":1,"task":"cpus:1","duration_s":0}]}]}`,
			"service frameworks only"},
		{"twice", `{` + agents + `,"frameworks":[{"name":"a","kind":"greedy","jobs":[]},{"name":"a","kind":"gang","jobs":[]}]}`,
			"name used twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTrace([]byte(tc.trace))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestShippedTracesParse keeps every trace under testdata/traces valid.
func TestShippedTracesParse(t *testing.T) {
	paths, err := filepath.Glob("../../testdata/traces/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no traces: %v", err)
	}
	for _, p := range paths {
		if _, err := LoadTrace(p); err != nil {
			t.Error(err)
		}
	}
}
