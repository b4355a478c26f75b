package cgroups

import (
	"context"
	"fmt"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/opencontainers/cgroups"
)

// Usage reads each container's cgroup statistics.
func (i *Isolator) Usage(_ context.Context, containerIDs []string) ([]isolator.Usage, error) {
	now := time.Now()
	out := make([]isolator.Usage, 0, len(containerIDs))
	for _, id := range containerIDs {
		u := isolator.Usage{ContainerID: id, Timestamp: now}
		i.mu.Lock()
		c, ok := i.containers[id]
		var memLimit, pidsLimit uint64
		if ok {
			memLimit, pidsLimit = c.memLimit, c.pidsLimit
		}
		i.mu.Unlock()
		if ok {
			if err := i.fill(&u, c); err != nil {
				// Cleaned up between the lookup and the read: not found.
				if !i.hier.Exists(c.rel) {
					out = append(out, isolator.Usage{ContainerID: id, Timestamp: now})
					continue
				}
				return nil, fmt.Errorf("cgroups isolator: usage %q: %w", id, err)
			}
			u.MemLimitBytes, u.PidsLimit = memLimit, pidsLimit
		}
		out = append(out, u)
	}
	return out, nil
}

func (i *Isolator) fill(u *isolator.Usage, c *container) error {
	st, err := c.mgr.GetStats()
	if err != nil {
		return err
	}
	pids, err := i.hier.Pids(c.rel)
	if err != nil {
		return err
	}
	oom, err := i.hier.OOMKills(c.rel)
	if err != nil {
		return err
	}
	fromStats(u, st, i.hier.Unified)
	u.Found = true
	u.Processes = len(pids)
	u.OOMKills = oom
	return nil
}

// fromStats copies the library's statistics into a Usage.
func fromStats(u *isolator.Usage, st *cgroups.Stats, unified bool) {
	cpu := st.CpuStats
	u.CPUUserSeconds = nanos(cpu.CpuUsage.UsageInUsermode)
	u.CPUSystemSeconds = nanos(cpu.CpuUsage.UsageInKernelmode)
	u.CPUPeriods = cpu.ThrottlingData.Periods
	u.CPUThrottledPeriods = cpu.ThrottlingData.ThrottledPeriods
	u.CPUThrottledSeconds = nanos(cpu.ThrottlingData.ThrottledTime)
	mem := st.MemoryStats
	u.MemUsageBytes = mem.Usage.Usage
	u.MemPeakBytes = mem.Usage.MaxUsage
	// Resident memory: anonymous pages, as Mesos reports mem_rss_bytes.
	if unified {
		u.MemRSSBytes = mem.Stats["anon"]
	} else {
		u.MemRSSBytes = mem.Stats["total_rss"]
	}
}

func nanos(n uint64) float64 { return float64(n) / 1e9 }
