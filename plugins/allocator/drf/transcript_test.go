package drf

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output in testdata/*.txt with the actual output")

// A transcript is a sequence of blocks:
//
//	# comments and blank lines before a command are kept as they are
//	command arg key=value ...
//	----
//	expected output, up to the next blank line
//
// Each file runs against a fresh DRF plugin driven by the sim master.
type block struct {
	prefix []string // comment and blank lines before the command
	cmd    string
	line   int
	want   []string
}

func parseTranscript(path string) ([]block, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var blocks []block
	var prefix []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			prefix = append(prefix, l)
			continue
		}
		b := block{prefix: prefix, cmd: strings.TrimSpace(l), line: i + 1}
		prefix = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			return nil, nil, fmt.Errorf("%s:%d: command %q is not followed by ----", path, i+1, b.cmd)
		}
		i += 2
		for ; i < len(lines) && lines[i] != ""; i++ {
			b.want = append(b.want, lines[i])
		}
		blocks = append(blocks, b)
	}
	return blocks, prefix, nil
}

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			blocks, trailer, err := parseTranscript(path)
			if err != nil {
				t.Fatal(err)
			}
			s := newSim(t, NewPlugin(), "{}")
			var out strings.Builder
			for _, b := range blocks {
				got := runCommand(s, b.cmd)
				for _, p := range b.prefix {
					out.WriteString(p + "\n")
				}
				fmt.Fprintf(&out, "%s\n----\n%s\n\n", b.cmd, strings.Join(got, "\n"))
				if !*rewrite && strings.Join(got, "\n") != strings.Join(b.want, "\n") {
					t.Errorf("%s:%d: %s\n got:\n%s\n want:\n%s", path, b.line, b.cmd,
						strings.Join(got, "\n"), strings.Join(b.want, "\n"))
				}
			}
			for _, p := range trailer {
				out.WriteString(p + "\n")
			}
			if *rewrite {
				text := strings.TrimRight(out.String(), "\n") + "\n"
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// args splits a command's arguments into positional ones and key=value
// options.
type args struct {
	pos  []string
	opts map[string]string
	used map[string]bool
}

func parseArgs(fields []string) *args {
	a := &args{opts: map[string]string{}, used: map[string]bool{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.opts[k] = v
		} else {
			a.pos = append(a.pos, f)
		}
	}
	return a
}

func (a *args) arg(i int, what string) string {
	if i >= len(a.pos) {
		panic(fmt.Errorf("missing %s", what))
	}
	return a.pos[i]
}

func (a *args) flag(name string) bool {
	for _, p := range a.pos {
		if p == name {
			return true
		}
	}
	return false
}

func (a *args) opt(name, def string) string {
	a.used[name] = true
	if v, ok := a.opts[name]; ok {
		return v
	}
	return def
}

func (a *args) float(name string, def float64) float64 {
	v, err := strconv.ParseFloat(a.opt(name, strconv.FormatFloat(def, 'g', -1, 64)), 64)
	if err != nil {
		panic(fmt.Errorf("option %s: %w", name, err))
	}
	return v
}

func (a *args) list(name string) []string {
	v := a.opt(name, "")
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func res(s string) resources.Resources {
	r, err := resources.Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

// runCommand executes one transcript command and returns its output lines.
// Bad commands become "error: ..." lines so that a transcript can show them.
func runCommand(s *sim, cmd string) (out []string) {
	defer func() {
		if r := recover(); r != nil {
			out = []string{fmt.Sprintf("error: %v", r)}
		}
	}()
	fields := strings.Fields(cmd)
	a := parseArgs(fields[1:])
	out = execute(s, cmd, fields, a)
	for k := range a.opts {
		if !a.used[k] && fields[0] != "config" {
			return []string{fmt.Sprintf("error: unknown option %q", k)}
		}
	}
	return out
}

func execute(s *sim, cmd string, fields []string, a *args) (out []string) {
	if at := a.opt("at", ""); at != "" {
		s.advance(allocator.LogicalTime(a.float("at", 0)))
	}
	ok := []string{"ok"}
	check := func(err error) []string {
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		return ok
	}
	switch fields[0] {
	case "config":
		return check(s.a.SetConfig(context.Background(), []byte(strings.TrimSpace(strings.TrimPrefix(cmd, "config"))), allocator.APIVersions[0]))
	case "agent":
		op, id := a.arg(0, "agent operation"), a.arg(1, "agent ID")
		switch op {
		case "add":
			s.addAgent(id, res(a.arg(2, "resources")), !a.flag("inactive"))
		case "update":
			s.updateAgent(allocator.Agent{ID: id, Hostname: id, Total: res(a.arg(2, "resources")), Active: !a.flag("inactive")})
		case "remove":
			s.removeAgent(id)
		default:
			panic(fmt.Errorf("unknown agent operation %q", op))
		}
		return ok
	case "framework":
		op, id := a.arg(0, "framework operation"), a.arg(1, "framework ID")
		f := allocator.Framework{ID: id, Roles: a.list("roles"), Active: !a.flag("inactive"), SuppressedRoles: a.list("suppressed")}
		switch op {
		case "add":
			s.addFramework(f)
		case "update":
			s.updateFramework(f)
		case "remove":
			s.removeFramework(id)
		default:
			panic(fmt.Errorf("unknown framework operation %q", op))
		}
		return ok
	case "weight":
		w, err := strconv.ParseFloat(a.arg(1, "weight"), 64)
		if err != nil {
			panic(err)
		}
		s.setWeight(a.arg(0, "role"), w)
		return ok
	case "suppress":
		s.suppress(a.arg(0, "framework ID"), a.list("roles"))
		return ok
	case "revive":
		s.revive(a.arg(0, "framework ID"), a.list("roles"))
		return ok
	case "accept":
		return check(s.accept(a.arg(0, "framework ID"), a.arg(1, "agent ID"), res(a.opt("use", "")), a.float("refuse", 0)))
	case "decline":
		return check(s.decline(a.arg(0, "framework ID"), a.arg(1, "agent ID"), a.float("refuse", 5)))
	case "finish":
		return check(s.finish(a.arg(0, "framework ID"), a.arg(1, "agent ID"), res(a.arg(2, "resources"))))
	case "allocate":
		offers, metrics, err := s.allocate(allocator.LogicalTime(a.float("now", float64(s.now))), int(a.float("max", 0)))
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		for _, o := range offers {
			out = append(out, fmt.Sprintf("offer %s/%s@%s %s", o.FrameworkID, o.Role, o.AgentID, o.Resources))
		}
		if len(offers) == 0 {
			out = append(out, "no offers")
		}
		if a.flag("shares") {
			keys := make([]string, 0, len(metrics))
			for k := range metrics {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				out = append(out, fmt.Sprintf("%s %.4f", k, metrics[k]))
			}
		}
		return out
	case "ledger":
		return s.ledger()
	default:
		panic(fmt.Errorf("unknown command %q", fields[0]))
	}
}

// ledger prints the sim master's outstanding offers and running tasks.
func (s *sim) ledger() []string {
	var out []string
	for _, o := range s.offers {
		out = append(out, fmt.Sprintf("offered %s/%s@%s %s", o.FrameworkID, o.Role, o.AgentID, o.Resources))
	}
	keys := make([]taskKey, 0, len(s.tasks))
	for k := range s.tasks {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return a.framework+"/"+a.role+"@"+a.agent < b.framework+"/"+b.role+"@"+b.agent
	})
	for _, k := range keys {
		out = append(out, fmt.Sprintf("running %s/%s@%s %s", k.framework, k.role, k.agent, s.tasks[k]))
	}
	if len(out) == 0 {
		out = append(out, "empty")
	}
	return out
}
