package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/acl"
)

// ContainerUsage is one running task's resource usage, as the isolator
// measures it (served at /api/v1/monitor, like Mesos' /monitor/statistics).
type ContainerUsage struct {
	FrameworkID      string  `json:"framework_id"`
	TaskID           string  `json:"task_id"`
	ContainerID      string  `json:"container_id"`
	Isolator         string  `json:"isolator"`
	Resources        string  `json:"resources"`
	CPUUserSeconds   float64 `json:"cpu_user_seconds"`
	CPUSystemSeconds float64 `json:"cpu_system_seconds"`
	MemRSSBytes      uint64  `json:"mem_rss_bytes"`
	Processes        int     `json:"processes"`
	TimestampUnixMs  int64   `json:"timestamp_unix_ms"`
	// Measured by isolators that enforce limits (cgroups); omitted as 0
	// by those that do not (process).
	MemUsageBytes       uint64  `json:"mem_usage_bytes,omitempty"`
	MemPeakBytes        uint64  `json:"mem_peak_bytes,omitempty"`
	MemLimitBytes       uint64  `json:"mem_limit_bytes,omitempty"`
	CPUPeriods          uint64  `json:"cpu_periods,omitempty"`
	CPUThrottledPeriods uint64  `json:"cpu_throttled_periods,omitempty"`
	CPUThrottledSeconds float64 `json:"cpu_throttled_seconds,omitempty"`
	PidsLimit           uint64  `json:"pids_limit,omitempty"`
	OOMKills            uint64  `json:"oom_kills,omitempty"`
}

// Monitor asks each isolator, in one batched call, for the usage of every
// running task's container it holds.
func (a *Agent) Monitor(ctx context.Context) ([]ContainerUsage, error) {
	return a.monitor(ctx, "", "", nil)
}

// monitor is Monitor narrowed to one framework's tasks, or one task, when
// frameworkID (and taskID) are set, and to the tasks whose framework
// principal visible accepts when it is not nil: the isolator then
// measures only those.
func (a *Agent) monitor(ctx context.Context, frameworkID, taskID string, visible func(owner string) bool) ([]ContainerUsage, error) {
	a.mu.Lock()
	byContainer := map[string]ContainerUsage{}
	ids := map[string][]string{} // by isolator
	for k, t := range a.tasks {
		if t.terminal || !t.launched ||
			(frameworkID != "" && k.framework != frameworkID) || (taskID != "" && k.task != taskID) ||
			(visible != nil && !visible(t.framework.GetPrincipal())) {
			continue
		}
		ids[t.isolator] = append(ids[t.isolator], t.containerID)
		byContainer[t.containerID] = ContainerUsage{FrameworkID: k.framework, TaskID: k.task,
			ContainerID: t.containerID, Isolator: t.isolator, Resources: t.res.String()}
	}
	a.mu.Unlock()
	out := []ContainerUsage{}
	ctx, cancel := context.WithTimeout(ctx, pluginCallTimeout)
	defer cancel()
	for name, batch := range ids {
		h, ok := a.isos[name]
		if !ok {
			continue // a refused task never launched; nothing to measure
		}
		iso, err := h.Current()
		if err != nil {
			return nil, fmt.Errorf("isolator %q: %w", name, err)
		}
		usages, err := iso.Usage(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("isolator %q: %w", name, err)
		}
		for _, u := range usages {
			c, ok := byContainer[u.ContainerID]
			if !ok || !u.Found {
				continue // ended since we asked
			}
			fillUsage(&c, u)
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FrameworkID != out[j].FrameworkID {
			return out[i].FrameworkID < out[j].FrameworkID
		}
		return out[i].TaskID < out[j].TaskID
	})
	return out, nil
}

func fillUsage(c *ContainerUsage, u isolator.Usage) {
	c.CPUUserSeconds, c.CPUSystemSeconds = u.CPUUserSeconds, u.CPUSystemSeconds
	c.MemRSSBytes, c.Processes = u.MemRSSBytes, u.Processes
	c.MemUsageBytes, c.MemPeakBytes, c.MemLimitBytes = u.MemUsageBytes, u.MemPeakBytes, u.MemLimitBytes
	c.CPUPeriods, c.CPUThrottledPeriods, c.CPUThrottledSeconds = u.CPUPeriods, u.CPUThrottledPeriods, u.CPUThrottledSeconds
	c.PidsLimit, c.OOMKills = u.PidsLimit, u.OOMKills
	ts := u.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	c.TimestampUnixMs = ts.UnixMilli()
}

// serveMonitor serves every live task's usage; ?framework_id= and
// ?task_id= narrow it (the master's per-task usage endpoint asks for one).
// With ACLs on it lists the tasks the caller may view; asking for one
// framework's tasks the caller may not view is refused with 403 naming
// the permission, so that an empty answer never hides a denial.
func (a *Agent) serveMonitor(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	may := a.viewer(r)
	if fw := q.Get("framework_id"); fw != "" {
		owner := a.frameworkPrincipal(fw)
		if err := may(owner); err != nil {
			a.deny(w, r, acl.ViewTasks, fw, owner, err)
			return
		}
	}
	usage, err := a.monitor(r.Context(), q.Get("framework_id"), q.Get("task_id"), func(owner string) bool { return may(owner) == nil })
	if err != nil {
		http.Error(w, "isolator usage: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(usage)
}
