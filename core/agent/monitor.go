package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
)

// ContainerUsage is one running task's resource usage, as the isolator
// measures it (served at /api/v1/monitor, like Mesos' /monitor/statistics).
type ContainerUsage struct {
	FrameworkID      string  `json:"framework_id"`
	TaskID           string  `json:"task_id"`
	ContainerID      string  `json:"container_id"`
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

// Monitor asks the isolator, in one batched call, for the usage of every
// running task's container.
func (a *Agent) Monitor(ctx context.Context) ([]ContainerUsage, error) {
	a.mu.Lock()
	byContainer := map[string]ContainerUsage{}
	var ids []string
	for k, t := range a.tasks {
		if t.terminal || !t.launched {
			continue
		}
		ids = append(ids, t.containerID)
		byContainer[t.containerID] = ContainerUsage{FrameworkID: k.framework, TaskID: k.task,
			ContainerID: t.containerID, Resources: t.res.String()}
	}
	a.mu.Unlock()
	out := []ContainerUsage{}
	if len(ids) == 0 {
		return out, nil
	}
	iso, err := a.iso.Current()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, pluginCallTimeout)
	defer cancel()
	usages, err := iso.Usage(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, u := range usages {
		c, ok := byContainer[u.ContainerID]
		if !ok || !u.Found {
			continue // ended since we asked
		}
		fillUsage(&c, u)
		out = append(out, c)
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

func (a *Agent) serveMonitor(w http.ResponseWriter, r *http.Request) {
	usage, err := a.Monitor(r.Context())
	if err != nil {
		http.Error(w, "isolator usage: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(usage)
}
