package cgroups

import (
	"context"

	"github.com/corral-project/corral/pluginapi/isolator"
)

// Watch reports a memory limitation each time the kernel's OOM killer
// ends processes in a container. The kernel notifies the isolator's one
// OOM watcher (an eventfd per container on memory.oom_control on v1,
// inotify on memory.events on v2; see oomWatcher), which reads the
// container's OOM kill count, so nothing is polled and an idle agent costs
// no CPU whatever its number of containers. Each Watch call has its own
// view: a new stream (a restarted agent's) first hears of every container
// already OOM-killed, then of each new kill.
func (i *Isolator) Watch(ctx context.Context) (<-chan isolator.Limitation, error) {
	ch := make(chan isolator.Limitation)
	if i.oom == nil {
		go func() {
			defer close(ch)
			<-ctx.Done()
		}()
		return ch, nil
	}
	sub := i.oom.subscribe()
	go func() {
		defer close(ch)
		defer i.oom.unsubscribe(sub)
		reported := map[string]uint64{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.wake:
			}
			for id, ev := range sub.take() {
				if ev.gone {
					delete(reported, id)
					continue
				}
				if ev.n <= reported[id] {
					continue
				}
				i.mu.Lock()
				c, ok := i.containers[id]
				i.mu.Unlock()
				if !ok {
					continue
				}
				reported[id] = ev.n
				select {
				case ch <- i.oomLimitation(id, c, ev.n):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
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
