package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsScrapeTimeout bounds the isolator call one scrape makes.
const metricsScrapeTimeout = 10 * time.Second

// containerLabels name a container's task in every container metric.
var containerLabels = []string{"framework_id", "task_id", "container_id"}

// containerCollector exports the usage of every running task's container,
// read from the isolator in one batched call per scrape (so a scrape costs
// what one /api/v1/monitor costs, and nothing between scrapes).
type containerCollector struct {
	a *Agent

	cpu, throttledPeriods, throttledSeconds, oomKills            *prometheus.Desc
	memory, rss, peak, memLimit, processes, pidsLimit, scrapeErr *prometheus.Desc
}

func newContainerCollector(a *Agent) *containerCollector {
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, containerLabels...), extra...), nil)
	}
	return &containerCollector{
		a:                a,
		cpu:              d("corral_container_cpu_seconds_total", "CPU time used by the container's processes, by mode (user, system).", "mode"),
		throttledPeriods: d("corral_container_cpu_throttled_periods_total", "CFS periods in which the container's CPU quota stopped it."),
		throttledSeconds: d("corral_container_cpu_throttled_seconds_total", "Time the container's CPU quota kept it from running."),
		oomKills:         d("corral_container_oom_kills_total", "Processes of the container the kernel's OOM killer ended."),
		memory:           d("corral_container_memory_bytes", "Memory charged to the container (all of it where the isolator measures it, else resident memory)."),
		rss:              d("corral_container_memory_rss_bytes", "Resident anonymous memory of the container."),
		peak:             d("corral_container_memory_peak_bytes", "High-water mark of the container's memory."),
		memLimit:         d("corral_container_memory_limit_bytes", "Memory limit the isolator enforces on the container."),
		processes:        d("corral_container_processes", "Processes in the container."),
		pidsLimit:        d("corral_container_pids_limit", "Most processes and threads the container may have."),
		scrapeErr: prometheus.NewDesc("corral_container_scrape_error",
			"1 if the isolator could not report container usage at this scrape.", nil, nil),
	}
}

func (c *containerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.throttledPeriods, c.throttledSeconds, c.oomKills,
		c.memory, c.rss, c.peak, c.memLimit, c.processes, c.pidsLimit, c.scrapeErr} {
		ch <- d
	}
}

func (c *containerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsScrapeTimeout)
	defer cancel()
	usages, err := c.a.Monitor(ctx)
	if err != nil {
		c.a.logger.Warn("metrics: container usage unavailable", "error", err)
		ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, 0)
	for _, u := range usages {
		l := []string{u.FrameworkID, u.TaskID, u.ContainerID}
		counter := func(d *prometheus.Desc, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append(l, extra...)...)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		counter(c.cpu, u.CPUUserSeconds, "user")
		counter(c.cpu, u.CPUSystemSeconds, "system")
		counter(c.throttledPeriods, float64(u.CPUThrottledPeriods))
		counter(c.throttledSeconds, u.CPUThrottledSeconds)
		counter(c.oomKills, float64(u.OOMKills))
		memory := u.MemUsageBytes
		if memory == 0 {
			memory = u.MemRSSBytes
		}
		gauge(c.memory, float64(memory))
		gauge(c.rss, float64(u.MemRSSBytes))
		gauge(c.processes, float64(u.Processes))
		// Limits and peaks only where the isolator has them: a 0 would
		// read as "no memory allowed".
		if u.MemPeakBytes > 0 {
			gauge(c.peak, float64(u.MemPeakBytes))
		}
		if u.MemLimitBytes > 0 {
			gauge(c.memLimit, float64(u.MemLimitBytes))
		}
		if u.PidsLimit > 0 {
			gauge(c.pidsLimit, float64(u.PidsLimit))
		}
	}
}

// metricsHandler serves the agent's Prometheus metrics: container usage
// and the Go runtime and process collectors.
func (a *Agent) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newContainerCollector(a), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
