package cgroups

import (
	"context"
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
		counters := map[string]*oomCounter{}
		defer func() {
			for _, c := range counters {
				c.close()
			}
		}()
		ticker := time.NewTicker(poll)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			for _, lim := range i.newOOMs(reported, counters) {
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
// grew since reported, and updates reported. counters are this watcher's
// open count files, by container; those of containers gone are closed.
func (i *Isolator) newOOMs(reported map[string]uint64, counters map[string]*oomCounter) []isolator.Limitation {
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
	for id, c := range counters {
		if l, ok := live[id]; !ok || l.rel != c.rel {
			c.close()
			delete(counters, id)
		}
	}
	var out []isolator.Limitation
	for id, c := range live {
		counter, ok := counters[id]
		if !ok {
			var err error
			if counter, err = i.hier.openOOMCounter(c.rel); err != nil {
				continue // removed meanwhile: nothing to report
			}
			counter.rel = c.rel
			counters[id] = counter
		}
		n, err := counter.read()
		if err != nil || n <= reported[id] {
			continue
		}
		reported[id] = n
		out = append(out, i.oomLimitation(id, c, n))
	}
	return out
}

// oomLimitation says what the limit was and how close the container came.
func (i *Isolator) oomLimitation(id string, c *container, kills uint64) isolator.Limitation {
	i.mu.Lock()
	limit := c.memLimit
	i.mu.Unlock()
	var peak uint64
	if st, err := c.mgr.GetStats(); err == nil {
		peak = st.MemoryStats.Usage.MaxUsage
	}
	return isolator.MemoryLimitation(id, limit, peak, kills)
}
