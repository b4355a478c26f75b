package allocatortest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// Run executes one transcript command against s and returns its output
// lines. A command that fails prints one "error: ..." line, so that a
// transcript can show rejected operations.
func Run(s *Sim, line string) (out []string) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(argError)
			if !ok {
				panic(r)
			}
			out = []string{"error: " + e.Error()}
		}
	}()
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return []string{"error: empty command"}
	}
	if fields[0] == "config" {
		// The config is a JSON object that may hold spaces and '='.
		return result(s.Configure(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "config"))))
	}
	cmd, ok := commands[fields[0]]
	if !ok {
		return []string{fmt.Sprintf("error: unknown command %q", fields[0])}
	}
	a := parseArgs(fields[1:])
	var kills []string
	if at, ok := a.lookup("at"); ok {
		killed, err := s.Advance(a.parseTime("at", at))
		if err != nil {
			return result(err)
		}
		kills = describeKills(killed)
	}
	return append(kills, cmd(s, a)...)
}

// commands maps a command name to its handler. Each handler reads its
// arguments, calls a.done() before changing anything (so that a typo
// changes nothing), and calls one Sim method.
var commands = map[string]func(s *Sim, a *args) []string{
	"agent": func(s *Sim, a *args) []string {
		switch op := a.arg("agent operation (add, update, remove)"); op {
		case "add", "update":
			inactive := a.flag("inactive")
			ag := allocator.Agent{ID: a.arg("agent ID"), Total: a.res(a.arg("resources")), Active: !inactive}
			a.done()
			if op == "add" {
				return result(s.AddAgent(ag))
			}
			return result(s.UpdateAgent(ag))
		case "remove":
			id := a.arg("agent ID")
			a.done()
			return result(s.RemoveAgent(id))
		default:
			panic(argErrorf("unknown agent operation %q", op))
		}
	},
	"framework": func(s *Sim, a *args) []string {
		switch op := a.arg("framework operation (add, update, remove, activate, deactivate)"); op {
		case "add", "update":
			inactive := a.flag("inactive")
			f := allocator.Framework{
				ID: a.arg("framework ID"), Roles: a.list("roles"), Active: !inactive,
				SuppressedRoles: a.list("suppressed"), Capabilities: a.list("capabilities"),
				MinAllocatable: a.minAllocatable(),
			}
			a.done()
			if op == "add" {
				return result(s.AddFramework(f))
			}
			return result(s.UpdateFramework(f))
		case "remove", "activate", "deactivate":
			id := a.arg("framework ID")
			a.done()
			if op == "remove" {
				return result(s.RemoveFramework(id))
			}
			return result(s.SetFrameworkActive(id, op == "activate"))
		default:
			panic(argErrorf("unknown framework operation %q", op))
		}
	},
	"weight": func(s *Sim, a *args) []string {
		r := s.Role(a.arg("role"))
		r.Weight = a.parseFloat("weight", a.arg("weight"))
		a.done()
		return result(s.SetRole(r))
	},
	"role": func(s *Sim, a *args) []string {
		if op := a.arg("role operation (set)"); op != "set" {
			panic(argErrorf("unknown role operation %q", op))
		}
		r := s.Role(a.arg("role"))
		if v, ok := a.lookup("weight"); ok {
			r.Weight = a.parseFloat("weight", v)
		}
		if v, ok := a.lookup("priority"); ok {
			r.Priority = int64(a.parseFloat("priority", v))
		}
		if v, ok := a.lookup("guarantee"); ok {
			r.Guarantee = a.res(v)
		}
		if v, ok := a.lookup("limit"); ok {
			r.Limit = a.res(v)
		}
		a.done()
		return result(s.SetRole(r))
	},
	"suppress": func(s *Sim, a *args) []string {
		fw, roles := a.arg("framework ID"), a.list("roles")
		a.done()
		return result(s.Suppress(fw, roles...))
	},
	"revive": func(s *Sim, a *args) []string {
		fw, roles := a.arg("framework ID"), a.list("roles")
		a.done()
		return result(s.Revive(fw, roles...))
	},
	"demand": func(s *Sim, a *args) []string {
		fw, role := a.arg("framework ID"), a.arg("role")
		var shapes []allocator.TaskShape
		for _, sh := range a.rest() {
			shapes = append(shapes, a.shape(sh))
		}
		a.done()
		return result(s.Demand(fw, role, shapes...))
	},
	"accept": func(s *Sim, a *args) []string {
		acc := Accept{Framework: a.arg("framework ID"), Agent: a.arg("agent ID"), Role: a.opt("role", ""),
			RefuseSeconds: a.parseFloat("refuse", a.opt("refuse", "0"))}
		if use := a.res(a.opt("use", "")); !use.IsEmpty() {
			acc.Tasks = []TaskSpec{{Resources: use}}
		}
		a.done()
		_, err := s.Accept(acc)
		return result(err)
	},
	"launch": func(s *Sim, a *args) []string {
		acc := Accept{Framework: a.arg("framework ID"), Agent: a.arg("agent ID"), Role: a.opt("role", ""),
			RefuseSeconds: a.parseFloat("refuse", a.opt("refuse", "0"))}
		ids, use := a.list("task"), a.res(a.opt("use", ""))
		if len(ids) == 0 || use.IsEmpty() {
			panic(argErrorf("launch needs task=ID[,ID...] and use=RESOURCES"))
		}
		for _, id := range ids {
			acc.Tasks = append(acc.Tasks, TaskSpec{ID: id, Resources: use})
		}
		a.done()
		_, err := s.Accept(acc)
		return result(err)
	},
	"decline": func(s *Sim, a *args) []string {
		fw, agent, refuse := a.arg("framework ID"), a.arg("agent ID"), a.parseFloat("refuse", a.opt("refuse", "5"))
		a.done()
		return result(s.Decline(fw, agent, refuse))
	},
	"finish": func(s *Sim, a *args) []string {
		fw, ids := a.arg("framework ID"), strings.Split(a.arg("task ID"), ",")
		a.done()
		for _, id := range ids {
			if err := s.Finish(fw, id); err != nil {
				return result(err)
			}
		}
		return result(nil)
	},
	"allocate": func(s *Sim, a *args) []string {
		shares := a.flag("shares")
		now := a.time("now", s.Now())
		maxOffers, revokeAfter := s.MaxOffers, s.RevokeAfter
		s.MaxOffers = int(a.parseFloat("max", a.opt("max", strconv.Itoa(s.MaxOffers))))
		s.RevokeAfter = a.time("revoke_after", s.RevokeAfter)
		defer func() { s.MaxOffers, s.RevokeAfter = maxOffers, revokeAfter }()
		a.done()
		c, err := s.Allocate(now)
		if c == nil {
			return result(err)
		}
		return describeCycle(c, shares)
	},
	"advance": func(s *Sim, a *args) []string {
		by := a.parseTime("milliseconds", a.arg("milliseconds"))
		a.done()
		killed, err := s.Advance(s.Now() + by)
		if err != nil {
			return result(err)
		}
		return append([]string{fmt.Sprintf("now=%d", s.Now())}, describeKills(killed)...)
	},
	"settings": func(s *Sim, a *args) []string {
		after := a.time("revoke_after", s.RevokeAfter)
		grace := a.time("revoke_grace", s.RevokeGrace)
		maxOffers := int(a.parseFloat("max_offers", a.opt("max_offers", strconv.Itoa(s.MaxOffers))))
		a.done()
		s.RevokeAfter, s.RevokeGrace, s.MaxOffers = after, grace, maxOffers
		return []string{fmt.Sprintf("revoke_after=%d revoke_grace=%d max_offers=%d", after, grace, maxOffers)}
	},
	"reinit": func(s *Sim, a *args) []string {
		a.done()
		return result(s.Reinit())
	},
	"ledger": func(s *Sim, a *args) []string {
		a.done()
		return describeLedger(s)
	},
	"tasks": func(s *Sim, a *args) []string {
		a.done()
		kill := map[taskKey]allocator.LogicalTime{}
		for _, r := range s.Revoked() {
			kill[taskKey{r.FrameworkID, r.TaskID}] = r.KillAt
		}
		var out []string
		for _, t := range s.Tasks() {
			l := "task " + DescribeTask(t)
			if at, ok := kill[taskKey{t.FrameworkID, t.ID}]; ok {
				l += fmt.Sprintf(" revoked kill_at=%d", at)
			}
			out = append(out, l)
		}
		return orNone(out, "no tasks")
	},
	"filters": func(s *Sim, a *args) []string {
		a.done()
		var out []string
		for _, f := range s.Filters() {
			out = append(out, fmt.Sprintf("filter %s/%s@%s %s until=%d", f.FrameworkID, f.Role, f.AgentID, f.Resources, f.ExpiresAt))
		}
		return orNone(out, "no filters")
	},
	"deltas": func(s *Sim, a *args) []string {
		a.done()
		var out []string
		for _, d := range s.PendingDeltas() {
			out = append(out, DescribeDelta(d))
		}
		return orNone(out, "no deltas")
	},
}

func describeCycle(c *Cycle, shares bool) []string {
	out := describeKills(c.Killed)
	ignored := map[int]allocator.Filter{}
	for _, h := range c.IgnoredFilters {
		for i, o := range c.Offers {
			if _, seen := ignored[i]; !seen && sameProposal(o, h.Proposal) {
				ignored[i] = h.Filter
				break
			}
		}
	}
	for i, o := range c.Offers {
		l := "offer " + DescribeProposal(o)
		if f, ok := ignored[i]; ok {
			l += fmt.Sprintf(" despite filter until=%d", f.ExpiresAt)
		}
		out = append(out, l)
	}
	if len(c.Offers) == 0 {
		out = append(out, "no offers")
	}
	for _, r := range c.Invalid {
		out = append(out, fmt.Sprintf("invalid %s: %s", DescribeProposal(r.Proposal), r.Reason))
	}
	for _, r := range c.Revocations {
		l := "revoke " + DescribeRevocation(r.Revocation)
		if r.Refused != "" {
			l += " refused: " + r.Refused
		}
		out = append(out, l)
	}
	if shares {
		keys := make([]string, 0, len(c.Metrics))
		for k := range c.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s %.4f", k, c.Metrics[k]))
		}
	}
	return out
}

func sameProposal(a, b allocator.Proposal) bool {
	return a.FrameworkID == b.FrameworkID && a.Role == b.Role && a.AgentID == b.AgentID && a.Resources.Equal(b.Resources)
}

func describeKills(killed []allocator.Revocation) []string {
	var out []string
	for _, r := range killed {
		out = append(out, "kill "+DescribeRevocation(r))
	}
	return out
}

// describeLedger prints the outstanding offers (oldest first) and what
// tasks hold per framework, role and agent.
func describeLedger(s *Sim) []string {
	var out []string
	for _, o := range s.Offers() {
		out = append(out, "offered "+DescribeProposal(o))
	}
	held := map[string]resources.Resources{}
	for _, t := range s.Tasks() {
		k := fmt.Sprintf("%s/%s@%s", t.FrameworkID, t.Role, t.AgentID)
		held[k] = held[k].Add(t.Resources)
	}
	for _, k := range sortedKeys(held) {
		out = append(out, fmt.Sprintf("running %s %s", k, held[k]))
	}
	return orNone(out, "empty")
}

func orNone(out []string, none string) []string {
	if len(out) == 0 {
		return []string{none}
	}
	return out
}

func result(err error) []string {
	if err != nil {
		return []string{"error: " + strings.ReplaceAll(err.Error(), "\n", "; ")}
	}
	return []string{"ok"}
}

// argError is a malformed command; Run turns it into an "error:" line.
type argError struct{ error }

func argErrorf(format string, args ...any) argError {
	return argError{fmt.Errorf(format, args...)}
}

// args holds a command's arguments: positional words, bare-word flags and
// key=value options. Handlers take flags first, then positional words in
// order; done fails on anything left unread.
type args struct {
	pos  []string
	next int
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

func (a *args) arg(what string) string {
	if a.next >= len(a.pos) {
		panic(argErrorf("missing %s", what))
	}
	a.next++
	return a.pos[a.next-1]
}

func (a *args) rest() []string {
	out := a.pos[a.next:]
	a.next = len(a.pos)
	return out
}

// flag reports whether the bare word name is among the unread positional
// words, and removes it.
func (a *args) flag(name string) bool {
	for i := a.next; i < len(a.pos); i++ {
		if a.pos[i] == name {
			a.pos = append(a.pos[:i:i], a.pos[i+1:]...)
			return true
		}
	}
	return false
}

func (a *args) lookup(name string) (string, bool) {
	v, ok := a.opts[name]
	a.used[name] = true
	return v, ok
}

func (a *args) opt(name, def string) string {
	if v, ok := a.lookup(name); ok {
		return v
	}
	return def
}

func (a *args) list(name string) []string {
	if v := a.opt(name, ""); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

// time reads an option in logical ms.
func (a *args) time(name string, def allocator.LogicalTime) allocator.LogicalTime {
	if v, ok := a.lookup(name); ok {
		return a.parseTime(name, v)
	}
	return def
}

func (a *args) parseTime(name, v string) allocator.LogicalTime {
	return allocator.LogicalTime(a.parseFloat(name, v))
}

func (a *args) parseFloat(name, v string) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		panic(argErrorf("%s: %q is not a number", name, v))
	}
	return f
}

func (a *args) res(v string) resources.Resources {
	r, err := resources.Parse(v)
	if err != nil {
		panic(argError{err})
	}
	return r
}

// shape reads a task shape: resources, optionally followed by xCOUNT
// ("cpus:1;mem:4096x3"); without a count it is one task.
func (a *args) shape(v string) allocator.TaskShape {
	if i := strings.LastIndexByte(v, 'x'); i > 0 {
		if n, err := strconv.Atoi(v[i+1:]); err == nil {
			return allocator.TaskShape{Resources: a.res(v[:i]), Count: n}
		}
	}
	return allocator.TaskShape{Resources: a.res(v), Count: 1}
}

// minAllocatable reads min.ROLE=R|R options: per-role minimum offers.
func (a *args) minAllocatable() map[string][]resources.Resources {
	var out map[string][]resources.Resources
	for k, v := range a.opts {
		role, ok := strings.CutPrefix(k, "min.")
		if !ok {
			continue
		}
		a.used[k] = true
		if out == nil {
			out = map[string][]resources.Resources{}
		}
		for _, alt := range strings.Split(v, "|") {
			out[role] = append(out[role], a.res(alt))
		}
	}
	return out
}

// done fails on options and positional words the handler did not read.
func (a *args) done() {
	var unknown []string
	for k := range a.opts {
		if !a.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		panic(argErrorf("unknown option %q", unknown[0]))
	}
	if a.next < len(a.pos) {
		panic(argErrorf("unexpected argument %q", a.pos[a.next]))
	}
}
