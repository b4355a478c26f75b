package master

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// metrics are registered on the master's own registry (never the global
// one), so several masters in one test process do not collide.
type metrics struct {
	registry *prometheus.Registry
	// Offer counters are by the role the offer was made for.
	offersMade      *prometheus.CounterVec
	offersAccepted  *prometheus.CounterVec
	offersDeclined  *prometheus.CounterVec
	offersRescinded *prometheus.CounterVec
	tasksLaunched   prometheus.Counter
	taskStates      *prometheus.CounterVec
	statusUpdates   prometheus.Counter
	acks            prometheus.Counter
	agents          prometheus.Gauge
	// agentSecretRefusals counts registrations refused for a wrong or
	// missing agent secret (an ID takeover attempt or a wiped secret).
	agentSecretRefusals prometheus.Counter
	// callsRateLimited counts scheduler calls refused by a framework's
	// calls-per-second limit.
	callsRateLimited prometheus.Counter
	// subscriptionsRefused counts subscriptions refused because their
	// principal held max_subscriptions_per_principal already.
	subscriptionsRefused prometheus.Counter
	// authzDenied counts requests the ACLs refused, by action.
	authzDenied   *prometheus.CounterVec
	frameworks    prometheus.Gauge
	allocationRun prometheus.Histogram
	pluginCall    *prometheus.HistogramVec
	pluginErrors  *prometheus.CounterVec
	// revocations accepted from the allocator, by reason; invalid ones are
	// proposals the books refused.
	revocations        *prometheus.CounterVec
	revocationsInvalid prometheus.Counter
	staleProposals     prometheus.Counter

	// The allocator slot: swaps, rollbacks, deadline misses, shadow
	// comparisons.
	allocatorSwaps          prometheus.Counter
	allocatorRollbacks      *prometheus.CounterVec
	allocatorGeneration     prometheus.Gauge
	allocatorSwapLatency    prometheus.Histogram
	allocatorDeadlineMisses prometheus.Counter
	shadowCycles            prometheus.Counter
	shadowOffers            *prometheus.CounterVec
	shadowDiffering         prometheus.Counter
	shadowShare             *prometheus.GaugeVec
}

func newMetrics() *metrics {
	r := prometheus.NewRegistry()
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	mt := &metrics{
		registry: r,
		offersMade: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_master_offers_made_total",
			Help: "Offers sent to frameworks, by role."}, []string{"role"}),
		offersAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_master_offers_accepted_total",
			Help: "Offers used by accept calls, by role."}, []string{"role"}),
		offersDeclined: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_master_offers_declined_total",
			Help: "Offers declined, by role."}, []string{"role"}),
		offersRescinded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_master_offers_rescinded_total",
			Help: "Offers rescinded or expired, by role."}, []string{"role"}),
		tasksLaunched: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_tasks_launched_total", Help: "Tasks sent to agents."}),
		taskStates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_master_task_state_transitions_total",
			Help: "Task state transitions seen by the master, by state."}, []string{"state"}),
		statusUpdates: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_status_updates_total", Help: "Status updates received from agents."}),
		acks:          prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_acknowledgements_total", Help: "Status update acknowledgements relayed."}),
		agents:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "corral_master_agents", Help: "Registered agents."}),
		callsRateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_calls_rate_limited_total",
			Help: "Scheduler calls refused because the framework exceeded its calls per second."}),
		subscriptionsRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_subscriptions_refused_total",
			Help: "Scheduler subscriptions refused because their principal held max_subscriptions_per_principal already."}),
		authzDenied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_master_authorization_denied_total",
			Help: "Requests refused by the ACLs, by action."}, []string{"action"}),
		agentSecretRefusals: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_agent_registrations_refused_total",
			Help: "Registrations refused because the agent ID's secret was missing or wrong."}),
		frameworks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "corral_master_frameworks", Help: "Registered frameworks."}),
		allocationRun: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "corral_master_allocation_cycle_seconds",
			Help: "Duration of an allocation cycle: plugin call plus validation and commit.", Buckets: latency}),
		pluginCall: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "corral_plugin_call_seconds",
			Help: "Latency of calls to plugins, by plugin kind and name and method.", Buckets: latency}, []string{"kind", "plugin", "method"}),
		pluginErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_plugin_errors_total",
			Help: "Failed or rejected allocator plugin calls."}, []string{"kind"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_master_revocations_total",
			Help: "Allocator revocations accepted: an inverse offer was sent and the task is killed after the grace period."}, []string{"reason"}),
		staleProposals: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_allocator_stale_proposals_total",
			Help: "Allocator proposals dropped because their framework or agent stopped taking offers while the plugin computed them (not counted as plugin faults)."}),
		revocationsInvalid: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_master_revocations_invalid_total",
			Help: "Allocator revocations refused by the master (unknown or ended task, within a guarantee, already revoked...)."}),
		allocatorSwaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_allocator_swaps_total",
			Help: "Allocator hot swaps that cut over to a new plugin."}),
		allocatorRollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_allocator_rollbacks_total",
			Help: "Allocator swaps rolled back, by reason (start, init, deadline, invalid_proposals)."}, []string{"reason"}),
		allocatorGeneration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "corral_allocator_generation",
			Help: "Allocator plugins made active since the master started (swaps and rollbacks)."}),
		allocatorSwapLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "corral_allocator_swap_latency_seconds",
			Help: "Time from a swap request to the end of the first cycle run by the new plugin.", Buckets: latency}),
		allocatorDeadlineMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_allocator_deadline_misses_total",
			Help: "Allocator Init or Allocate calls that missed the allocator timeout."}),
		shadowCycles: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_allocator_shadow_cycles_total",
			Help: "Cycles a candidate allocator ran in shadow beside the active one."}),
		shadowOffers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "corral_allocator_shadow_offers_total",
			Help: "Valid offers proposed during shadow cycles, by plugin (active, candidate)."}, []string{"plugin"}),
		shadowDiffering: prometheus.NewCounter(prometheus.CounterOpts{Name: "corral_allocator_shadow_offers_differing_total",
			Help: "Candidate offers of an agent to a framework the active allocator did not offer that agent to."}),
		shadowShare: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "corral_allocator_shadow_projected_share",
			Help: "Dominant share of each framework were the last shadow cycle's offers accepted, by plugin."}, []string{"framework_id", "plugin"}),
	}
	// The Go runtime and the process (CPU, RSS, open files), as any Go
	// service exports them.
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.MustRegister(mt.callsRateLimited, mt.subscriptionsRefused, mt.authzDenied, mt.agentSecretRefusals, mt.offersMade, mt.offersAccepted, mt.offersDeclined, mt.offersRescinded, mt.tasksLaunched,
		mt.taskStates, mt.statusUpdates, mt.acks, mt.agents, mt.frameworks, mt.allocationRun, mt.pluginCall, mt.pluginErrors,
		mt.revocations, mt.revocationsInvalid, mt.staleProposals, mt.allocatorSwaps, mt.allocatorRollbacks, mt.allocatorGeneration,
		mt.allocatorSwapLatency, mt.allocatorDeadlineMisses, mt.shadowCycles, mt.shadowOffers, mt.shadowDiffering, mt.shadowShare)
	return mt
}

// liveTasks reports the master's live tasks by state at scrape time, so
// the gauge can never drift from the task table.
type liveTasks struct {
	m    *Master
	desc *prometheus.Desc
}

func (c liveTasks) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c liveTasks) Collect(ch chan<- prometheus.Metric) {
	states := []corralpb.TaskState{corralpb.TaskState_TASK_STAGING, corralpb.TaskState_TASK_STARTING,
		corralpb.TaskState_TASK_RUNNING, corralpb.TaskState_TASK_KILLING}
	var counts [4]int
	c.m.mu.Lock()
	for i, s := range states {
		counts[i] = c.m.tally.states[s]
	}
	c.m.mu.Unlock()
	for i, s := range states {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[i]), s.String())
	}
}

// clusterResources reports, at scrape time, the cluster's capacity and
// allocation per resource and each role's allocation, weight and dominant
// share (as the active policy reports it), and the active allocator's
// restarts: the gauges a capacity dashboard plots.
type clusterResources struct {
	m                                      *Master
	capacity, allocated, roleAlloc, roleW  *prometheus.Desc
	roleShare, pluginRestarts, agentsDrain *prometheus.Desc
}

func newClusterResources(m *Master) clusterResources {
	return clusterResources{m: m,
		capacity:       prometheus.NewDesc("corral_cluster_resources_total", "Capacity of connected agents, by scalar resource.", []string{"resource"}, nil),
		allocated:      prometheus.NewDesc("corral_cluster_resources_allocated", "Resources held by tasks and outstanding offers, by scalar resource.", []string{"resource"}, nil),
		roleAlloc:      prometheus.NewDesc("corral_role_resources_allocated", "Resources allocated to a role, by scalar resource.", []string{"role", "resource"}, nil),
		roleW:          prometheus.NewDesc("corral_role_weight", "A role's weight.", []string{"role"}, nil),
		roleShare:      prometheus.NewDesc("corral_role_dominant_share", "A role's dominant share as the active policy reports it.", []string{"role"}, nil),
		pluginRestarts: prometheus.NewDesc("corral_plugin_restarts", "Restarts of the active allocator plugin process.", []string{"kind", "plugin"}, nil),
		agentsDrain:    prometheus.NewDesc("corral_master_agents_draining", "Agents in maintenance (draining).", nil, nil),
	}
}

func (c clusterResources) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.capacity, c.allocated, c.roleAlloc, c.roleW, c.roleShare, c.pluginRestarts, c.agentsDrain} {
		ch <- d
	}
}

func (c clusterResources) Collect(ch chan<- prometheus.Metric) {
	// From the tally, not a walk of every agent under the lock.
	c.m.mu.Lock()
	draining := c.m.tally.draining
	total := make(map[string]int64, len(c.m.tally.capacity))
	used := make(map[string]int64, len(c.m.tally.used))
	for name, v := range c.m.tally.capacity {
		total[name], used[name] = v, c.m.tally.used[name]
	}
	c.m.mu.Unlock()
	for _, name := range sortedMapKeys(total) {
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(total[name])/1000, name)
		ch <- prometheus.MustNewConstMetric(c.allocated, prometheus.GaugeValue, float64(used[name])/1000, name)
	}
	ch <- prometheus.MustNewConstMetric(c.agentsDrain, prometheus.GaugeValue, float64(draining))
	// The roles' allocation from the tally, not from Roles (which walks
	// every task under the lock).
	type roleGauges struct {
		name          string
		weight, share float64
		alloc         map[string]int64
	}
	c.m.mu.Lock()
	roles := make([]roleGauges, 0, len(c.m.roles))
	for _, name := range sortedMapKeys(c.m.roles) {
		rg := roleGauges{name: name, weight: effectiveWeight(c.m.roles[name].Weight),
			share: c.m.pluginMetrics[metricRoleShare+name], alloc: map[string]int64{}}
		for res, v := range c.m.tally.roles[name] {
			rg.alloc[res] = v
		}
		roles = append(roles, rg)
	}
	c.m.mu.Unlock()
	for _, r := range roles {
		ch <- prometheus.MustNewConstMetric(c.roleW, prometheus.GaugeValue, r.weight, r.name)
		ch <- prometheus.MustNewConstMetric(c.roleShare, prometheus.GaugeValue, r.share, r.name)
		for _, res := range sortedMapKeys(r.alloc) {
			ch <- prometheus.MustNewConstMetric(c.roleAlloc, prometheus.GaugeValue, float64(r.alloc[res])/1000, r.name, res)
		}
	}
	if active := c.m.AllocatorStatus().Active; active.Name != "" {
		ch <- prometheus.MustNewConstMetric(c.pluginRestarts, prometheus.GaugeValue, float64(active.Restarts), "allocator", active.Name)
	}
}

// resetShadow clears the projected shares of a previous shadow run.
func (mt *metrics) resetShadow() { mt.shadowShare.Reset() }

func (mt *metrics) observeTaskState(s corralpb.TaskState) {
	mt.taskStates.WithLabelValues(s.String()).Inc()
}

// Registry exposes the master's metrics for /metrics.
func (m *Master) Registry() *prometheus.Registry { return m.metrics.registry }

// tally is what the metrics report about the books, kept up to date as
// tasks, offers and agents come and go (see Master.tally): live tasks by
// state; the scalars live tasks and outstanding offers hold by role; the
// connected agents' capacity and use; the agents draining. Scalars are in
// thousandths (the resource model's fixed point) so that adding and
// removing never drifts.
type tally struct {
	states         map[corralpb.TaskState]int
	roles          map[string]map[string]int64
	capacity, used map[string]int64
	draining       int
}

func newTally() *tally {
	return &tally{states: map[corralpb.TaskState]int{}, roles: map[string]map[string]int64{},
		capacity: map[string]int64{}, used: map[string]int64{}}
}

// addScalars adds (sign 1) or removes (sign -1) res's scalars to to,
// dropping names that reach zero.
func addScalars(to map[string]int64, res resources.Resources, sign int64) {
	res.EachScalar(func(name string, v float64) {
		if to[name] += sign * int64(math.Round(v*1000)); to[name] == 0 {
			delete(to, name)
		}
	})
}

// addAgent counts a connected agent in (sign 1) or out (sign -1).
func (t *tally) addAgent(a *agentEntry, sign int64) {
	if a.connected {
		addScalars(t.capacity, a.total, sign)
		addScalars(t.used, a.used, sign)
	}
}

// addRole adds (sign 1) or removes (sign -1) res's scalars to role's.
func (t *tally) addRole(role string, res resources.Resources, sign int64) {
	if res.Scalars().IsEmpty() {
		return
	}
	byName := t.roles[role]
	if byName == nil {
		byName = map[string]int64{}
		t.roles[role] = byName
	}
	addScalars(byName, res, sign)
	if len(byName) == 0 {
		delete(t.roles, role)
	}
}
