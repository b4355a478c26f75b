package cgroups

import (
	"context"
	"fmt"
	"time"

	"github.com/corral-project/corral/pluginapi/isolator"
)

// Watch reports a memory limitation each time the kernel's OOM killer
// ends processes in a container, by polling every container's OOM kill
// count (memory.oom_control on v1, memory.events on v2) every oom_poll.
// Polling costs one small read per container and period, works the same
// on both versions, and cannot miss an event: the count only grows. Each
// Watch call has its own view, so a restarted agent's new stream hears of
// OOM kills it has not been told about.
func (i *Isolator) Watch(ctx context.Context) (<-chan isolator.Limitation, error) {
	ch := make(chan isolator.Limitation)
	i.mu.Lock()
	poll := i.set.oomPoll
	i.mu.Unlock()
	go func() {
		defer close(ch)
		if i.hier == nil {
			<-ctx.Done()
			return
		}
		reported := map[string]uint64{}
		ticker := time.NewTicker(poll)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			for _, lim := range i.newOOMs(reported) {
				select {
				case ch <- lim:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

// newOOMs returns a limitation for every container whose OOM kill count
// grew since reported, and updates reported.
func (i *Isolator) newOOMs(reported map[string]uint64) []isolator.Limitation {
	i.mu.Lock()
	live := make(map[string]*container, len(i.containers))
	for id, c := range i.containers {
		live[id] = c
	}
	i.mu.Unlock()
	for id := range reported {
		if _, ok := live[id]; !ok {
			delete(reported, id)
		}
	}
	var out []isolator.Limitation
	for id, c := range live {
		n, err := i.hier.OOMKills(c.rel)
		if err != nil || n <= reported[id] {
			continue // a cgroup removed meanwhile has nothing to report
		}
		reported[id] = n
		out = append(out, isolator.Limitation{
			ContainerID: id,
			Reason:      isolator.ReasonMemory,
			Message:     i.oomMessage(c, n),
		})
	}
	return out
}

// oomMessage says what the limit was and how close the container came.
func (i *Isolator) oomMessage(c *container, kills uint64) string {
	i.mu.Lock()
	limit := c.memLimit
	i.mu.Unlock()
	var peak uint64
	if st, err := c.mgr.GetStats(); err == nil {
		peak = st.MemoryStats.Usage.MaxUsage
	}
	return MemoryLimitMessage(limit, peak, kills)
}

// MemoryLimitMessage is the text of a memory limitation.
func MemoryLimitMessage(limit, peak, kills uint64) string {
	return fmt.Sprintf("memory limit exceeded: limit %s, peak usage %s; the OOM killer ended %d process(es)",
		FormatBytes(limit), FormatBytes(peak), kills)
}

// FormatBytes prints a byte count in MiB with the exact count beside it.
func FormatBytes(b uint64) string {
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(b)/mib, b)
}
