package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReportHAFailover measures a leader failover with real processes:
// three masters, one Consul, N emulated agents with 10 tasks each. Once
// every task runs and its TASK_RUNNING update is acknowledged (steady
// state; CORRAL_BENCH_HA_KILL=launched does not wait for the acks), it
// kills the leader with -9 and times, from the kill:
//
//	detection        Consul invalidates the dead leader's session (a standby's
//	                 probe of the leader's listener, or the TTL check)
//	election         a standby holds the lock (the leader key names it)
//	serving          its /metrics says it leads (a scrape in the burst of
//	                 re-registrations can answer late)
//	re-registration  every agent is registered with the new leader
//	tasks known      every task is known to the new leader again
//	scheduler back   the framework is re-subscribed (calls accepted)
//
// and the new leader's CPU from the kill until every agent is back, per
// agent (a ratio that compares across runs on a shared machine), its RSS,
// and how long a hot-standby scheduler
// takes to be promoted when the active one goes away.
//
// Run with `make bench-ha` (CORRAL_BENCH_HA=1; sizes in
// CORRAL_BENCH_HA_AGENTS, default "1000").
func TestReportHAFailover(t *testing.T) {
	if os.Getenv("CORRAL_BENCH_HA") == "" {
		t.Skip("a benchmark: run with make bench-ha")
	}
	sizes := os.Getenv("CORRAL_BENCH_HA_AGENTS")
	if sizes == "" {
		sizes = "1000"
	}
	haCheckTTL = os.Getenv("CORRAL_BENCH_HA_CHECK_TTL")
	defer func() { haCheckTTL = "" }()
	ttl := haCheckTTL
	if ttl == "" {
		ttl = "1s (default)"
	}
	var rows []string
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("CORRAL_BENCH_HA_AGENTS: %q is not a positive number", s)
		}
		perAgent := 10
		if v, err := strconv.Atoi(os.Getenv("CORRAL_BENCH_HA_TASKS_PER_AGENT")); err == nil && v > 0 {
			perAgent = v
		}
		t.Run(fmt.Sprintf("agents=%d", n), func(t *testing.T) {
			row := haFailoverRun(t, n, perAgent)
			t.Logf("row (columns as in the table below): %s", row) // kept if a larger size fails
			rows = append(rows, row)
		})
	}
	t.Logf("\nkill -9 of the leader, times from the kill (3 masters, real Consul %s, check_ttl %s, emulated agents);\n"+
		"standby takeover: a hot-standby scheduler's SUBSCRIBED after the active one's stream ends; load: 1-min load average at the end\n"+
		"leader CPU/agent: the new leader's CPU from the kill until every agent is back, per agent\n"+
		"election: another master holds the lock; serving: its /metrics first says it leads\n"+
		"kill: settled (every TASK_RUNNING update acknowledged first, the default) or launched (CORRAL_BENCH_HA_KILL=launched: as soon as the leader knows every task running)\n"+
		"resent: status updates the new leader received until every agent was back (the agents resend those not acknowledged)\n"+
		"%8s %8s %8s %10s %10s %10s %14s %12s %14s %8s %14s %12s %10s %15s %10s\n%s", "1.16.1", ttl,
		"agents", "tasks", "kill", "detection", "election", "serving", "re-register", "tasks known", "sched. back", "resent", "leader CPU/agent", "leader RSS", "step-downs",
		"standby takeover", "load", strings.Join(rows, "\n"))
}

func haFailoverRun(t *testing.T, agents, perAgent int) string {
	killAt := os.Getenv("CORRAL_BENCH_HA_KILL")
	switch killAt {
	case "":
		killAt = "settled"
	case "settled", "launched":
	default:
		t.Fatalf("CORRAL_BENCH_HA_KILL=%q: want settled or launched", killAt)
	}
	// CORRAL_BENCH_HA_PPROF=DIR: CPU profiles of the first seconds
	// (CORRAL_BENCH_HA_PPROF_SECONDS, default 10) of each master's terms,
	// which the masters write themselves (CORRAL_MASTER_CPUPROFILE), and
	// of the emulated agents from the kill on (<agents>-failover-agents.pprof,
	// through their pprof endpoint).
	pprofDir := os.Getenv("CORRAL_BENCH_HA_PPROF")
	pprofSecs := envInt(t, "CORRAL_BENCH_HA_PPROF_SECONDS", 10)
	if pprofDir != "" {
		t.Setenv("CORRAL_MASTER_CPUPROFILE", pprofDir)
		t.Setenv("CORRAL_MASTER_CPUPROFILE_SECONDS", strconv.Itoa(pprofSecs))
		t.Setenv("CORRAL_PPROF_ADDR", "127.0.0.1:0")
	}
	c := startHACluster(t, 3)
	l := c.leader("first election")
	ag := startCorral(t, "agent", "-emulate", strconv.Itoa(agents), "-master", c.spec,
		"-resources", "cpus:2;mem:1024", "-log-level", agentLogLevel())
	agentsProf := ""
	if pprofDir != "" {
		agentsProf = "failover-agents=" + ag.waitLine(pprofLine)
	}
	// Ten thousand first registrations (each recorded in the registry)
	// take longer than waitLine's minute on a loaded machine.
	for deadline := time.Now().Add(15 * time.Minute); ag.count("emulated agents registered") == 0; time.Sleep(100 * time.Millisecond) {
		select {
		case <-ag.done:
			t.Fatalf("the emulated agents exited:\n%s", ag.tail(20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d emulated agents not registered after 15 minutes", agents)
		}
	}
	tasks := agents * perAgent
	fw := runHAFramework(t, c.spec, "bench", tasks)
	fw.perOffer = perAgent
	fw.sleep = "36000"
	fw.waitSubscribed(t)
	// Wait for every task to run on whichever master leads: on a loaded
	// machine a leader may step down before the kill (counted below).
	for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		running := false
		for addr, p := range c.masters {
			select {
			case <-p.done:
				t.Fatalf("master %s exited before the kill:\n%s", addr, p.tail(40))
			default:
			}
			if m, err := scrape(addr); err == nil && m["corral_master_leader"] == 1 &&
				m[`corral_master_tasks{state="TASK_RUNNING"}`] >= float64(tasks) {
				l, running = addr, true
			}
		}
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not all tasks running after 30 minutes")
		}
	}
	if killAt == "settled" {
		// Steady state, as Mesos's figures are taken: every TASK_RUNNING
		// update acknowledged, so the agents hold none to resend. With
		// CORRAL_BENCH_HA_KILL=launched the kill comes as soon as the
		// leader knows every task running, with thousands of acks still
		// on their way.
		for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			fw.mu.Lock()
			acked := len(fw.runningAcked)
			fw.mu.Unlock()
			if acked >= tasks {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d TASK_RUNNING updates acknowledged after 10 minutes", acked, tasks)
			}
		}
	}
	stepDowns := 0
	before := map[string]int{}
	for addr, p := range c.masters {
		before[addr] = p.count("stepping down")
		stepDowns += before[addr]
	}
	if stepDowns > 0 {
		t.Logf("%d step-downs before the kill (leader now %s)", stepDowns, l)
	}
	fw.mu.Lock()
	subsBefore := fw.subs
	fw.mu.Unlock()

	// Detection: the leader key loses its session, or is already held by
	// another master (the new one may win before the poll sees it free).
	stop := make(chan struct{})
	defer close(stop)
	detected := pollUntil(stop, func() bool {
		sess, ok := leaderSession(c)
		if !ok {
			return false
		}
		if sess == "" {
			return true
		}
		v := leaderValue(c)
		return v != "" && v != l
	})
	// Election: another master holds the lock (the leader key names it
	// with a session), whether or not its HTTP port answers yet.
	lockTaken := pollUntil(stop, func() bool {
		pair, ok := consulLeaderPair(c)
		return ok && pair.Session != "" && pair.Value != "" && pair.Value != l
	})
	time.Sleep(100 * time.Millisecond) // let the watcher see the held lock first
	// CPU each surviving master has used so far: the new leader's CPU
	// until every agent is back, per agent, compares across runs on a
	// shared machine where the wall-clock figures do not.
	cpuAtKill := map[string]float64{}
	for addr, p := range c.masters {
		if addr != l {
			cpuAtKill[addr] = procCPU(p.cmd.Process.Pid)
		}
	}
	killed := time.Now()
	c.kill9(l)
	if agentsProf != "" {
		defer startProfiles(t, pprofDir, []string{agentsProf}, strconv.Itoa(agents), time.Duration(pprofSecs)*time.Second)()
	}
	var l2 string
	defer func() {
		dir := os.Getenv("CORRAL_BENCH_HA_LOGS")
		if dir == "" {
			return
		}
		// For looking into where the time went: every process's stderr.
		for addr, p := range c.masters {
			name := "master-" + strings.ReplaceAll(addr, ":", "_")
			if addr == l2 && l2 != "" {
				name += "-new-leader"
			} else if addr == l {
				name += "-killed"
			}
			writeLines(t, filepath.Join(dir, fmt.Sprintf("%d-%s.log", agents, name)), p)
		}
		writeLines(t, filepath.Join(dir, fmt.Sprintf("%d-agents.log", agents)), ag)
		t.Logf("kill at %s; logs in %s", killed.UTC().Format(time.RFC3339Nano), dir)
	}()
	var elected time.Time
	for l2 == "" {
		for addr := range c.masters {
			if m, err := scrape(addr); err == nil && m["corral_master_leader"] == 1 {
				l2, elected = addr, time.Now()
			}
		}
		if time.Since(killed) > 2*time.Minute {
			t.Fatal("no new leader within 2 minutes")
		}
		// Every scrape costs the masters CPU they need for the failover.
		time.Sleep(10 * time.Millisecond)
	}
	var det, taken time.Time
	select {
	case det = <-detected:
	case <-time.After(time.Minute):
		t.Fatal("Consul never released the dead leader's lock")
	}
	select {
	case taken = <-lockTaken:
	case <-time.After(time.Minute):
		t.Fatal("no master took the lock")
	}
	var agentsBack, tasksBack, schedBack time.Time
	var leaderCPU float64 // seconds
	var resent float64    // status updates the new leader received until every agent was back
	deadline := time.Now().Add(2 * time.Minute)
	for agentsBack.IsZero() || tasksBack.IsZero() || schedBack.IsZero() {
		m, err := scrape(l2)
		if err == nil && m["corral_master_leader"] != 1 {
			// The new leader lost it again: follow whoever leads now
			// (counted in step-downs).
			for addr := range c.masters {
				if m2, err2 := scrape(addr); err2 == nil && m2["corral_master_leader"] == 1 {
					l2, m = addr, m2
				}
			}
		}
		if time.Now().After(deadline) {
			fw.mu.Lock()
			subs := fw.subs
			fw.mu.Unlock()
			t.Fatalf("failover incomplete after 2 minutes: agents %v, running tasks %v (scrape error %v), subscriptions %d (before the kill %d)",
				m["corral_master_agents"], m[`corral_master_tasks{state="TASK_RUNNING"}`], err, subs, subsBefore)
		}
		if err == nil {
			if agentsBack.IsZero() && m["corral_master_agents"] >= float64(agents) {
				agentsBack = time.Now()
				leaderCPU = procCPU(c.masters[l2].cmd.Process.Pid) - cpuAtKill[l2]
				resent = m["corral_master_status_updates_total"]
			}
			if tasksBack.IsZero() && m[`corral_master_tasks{state="TASK_RUNNING"}`] >= float64(tasks) {
				tasksBack = time.Now()
			}
		}
		fw.mu.Lock()
		if schedBack.IsZero() && fw.subs > subsBefore {
			schedBack = time.Now()
		}
		fw.mu.Unlock()
		// 20 ms resolution: a scrape of a master holding 100k tasks is
		// not free, and the master being measured pays for it.
		time.Sleep(20 * time.Millisecond)
	}
	load := loadAvg()
	rss := rssMiB(c.masters[l2].cmd.Process.Pid)
	takeover := standbyTakeover(t, c.spec, l2, fw)
	ms := func(at time.Time) string { return fmt.Sprintf("%.0f ms", float64(at.Sub(killed))/1e6) }
	after := 0 // step-downs after the kill (new leaders that lost it again)
	for addr, p := range c.masters {
		after += p.count("stepping down") - before[addr]
	}
	return fmt.Sprintf("%8d %8d %8s %10s %10s %10s %14s %12s %14s %8.0f %11.0f µs %9.0f MiB %6d+%d %12.0f ms %10s", agents, tasks, killAt, ms(det), ms(taken), ms(elected),
		ms(agentsBack), ms(tasksBack), ms(schedBack), resent, leaderCPU*1e6/float64(agents), rss, stepDowns, after,
		float64(takeover)/1e6, load)
}

// standbyTakeover times a hot-standby scheduler's takeover: a second
// scheduler subscribes with fw's framework ID as a standby; once the
// leader (at addr) counts it, fw's scheduler goes away (its stream ends,
// as when its process dies) and the time until the standby hears
// SUBSCRIBED is returned.
func standbyTakeover(t *testing.T, spec, addr string, fw *testFramework) time.Duration {
	t.Helper()
	fw.mu.Lock()
	id := fw.fwID
	fw.mu.Unlock()
	sb := runFrameworkStandby(t, spec, fw.name, id, 0)
	for deadline := time.Now().Add(2 * time.Minute); standbys(addr, id) < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the standby scheduler was not registered within 2 minutes")
		}
	}
	start := time.Now()
	fw.cancel()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Millisecond) {
		sb.mu.Lock()
		subs := sb.subs
		sb.mu.Unlock()
		if subs > 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby scheduler did not take over within 2 minutes")
		}
	}
}

// standbys is how many standby schedulers the master at addr holds for
// framework id (-1 on error).
func standbys(addr, id string) int {
	resp, err := http.Get("http://" + addr + "/api/v1/frameworks")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var fws []struct {
		ID                string `json:"id"`
		StandbySchedulers int    `json:"standby_schedulers"`
	}
	if json.NewDecoder(resp.Body).Decode(&fws) != nil {
		return -1
	}
	for _, f := range fws {
		if f.ID == id {
			return f.StandbySchedulers
		}
	}
	return 0
}

// loadAvg is the 1-minute load average (the machine is shared).
func leaderSession(c *haCluster) (string, bool) {
	pair, ok := consulLeaderPair(c)
	return pair.Session, ok
}

func leaderValue(c *haCluster) string {
	pair, _ := consulLeaderPair(c)
	return pair.Value
}

type kvPair struct {
	Session string
	Value   string
}

// consulLeaderPair reads the leader key over Consul's HTTP API (?raw is
// not used: the session matters).
func consulLeaderPair(c *haCluster) (kvPair, bool) {
	prefix := strings.SplitN(strings.TrimPrefix(c.spec, "consul://"), "/", 2)[1]
	resp, err := http.Get("http://" + c.consul.HTTPAddr + "/v1/kv/" + prefix + "/leader")
	if err != nil {
		return kvPair{}, false
	}
	defer resp.Body.Close()
	var out []struct {
		Session string
		Value   []byte
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil || len(out) == 0 {
		return kvPair{}, resp.StatusCode == 404
	}
	return kvPair{Session: out[0].Session, Value: string(out[0].Value)}, true
}

// scrape reads a master's Prometheus metrics as name{labels} -> value.
// Uncompressed: the benchmarks scrape a master every few milliseconds
// through a failover, and Go's client would otherwise ask for gzip, which
// the master then spends its CPU on (15% of a new leader's CPU at 1k
// agents, measured with CORRAL_BENCH_HA_PPROF).
func scrape(addr string) (map[string]float64, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func waitMetric(t *testing.T, addr, what string, timeout time.Duration, cond func(map[string]float64) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := scrape(addr)
		if err == nil && cond(m) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func rssMiB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func writeLines(t *testing.T, path string, p *proc) {
	p.mu.Lock()
	data := strings.Join(p.lines, "\n") + "\n"
	p.mu.Unlock()
	// The benches' *_LOGS directories need not exist beforehand.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Log(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Log(err)
	}
}

// tail is the last n lines p wrote to stderr.
func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-n):], "\n")
}

// count is how many lines p wrote to stderr that contain sub.
func (p *proc) count(sub string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// agentLogLevel is debug when the logs are kept (CORRAL_BENCH_HA_LOGS):
// the emulated agents then log each reconnection.
func agentLogLevel() string {
	if os.Getenv("CORRAL_BENCH_HA_LOGS") != "" {
		return "debug"
	}
	return "warn"
}

// pollUntil checks cond every 2 ms (the resolution of the bench's
// detection and election columns) until it holds, then sends the time it
// was seen; it gives up when stop closes.
func pollUntil(stop <-chan struct{}, cond func() bool) <-chan time.Time {
	seen := make(chan time.Time, 1)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if cond() {
				seen <- time.Now()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return seen
}
