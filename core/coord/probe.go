package coord

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// The leader probe: a standby detects a leader killed with -9 in
// milliseconds instead of waiting out the leader's check TTL.
//
// While it campaigns, a standby keeps a TCP connection open to the
// listener of the master holding the lock (the lock's value is its
// address). A master holds its listener for its whole life, so when that
// connection ends and new connections to the same address are refused
// (twice, a few milliseconds apart) after the standby had seen the
// listener up, the process holding the lock is gone: it can no longer
// act, so ending its session now cannot make two masters act as leader.
// The standby destroys the dead holder's session; Consul releases the lock
// with the session's lock-delay, and the campaign goes on as after a TTL
// expiry.
//
// Only a refusal counts: a timeout, an unreachable network or a host that
// is down says nothing about the process (it may be alive behind a
// partition, still acting until its own TTL makes it step down), so those
// wait for the TTL as before. A leader never seen listening (an address
// nobody can reach from here) is never probed into a destroyed session.
// ConsulConfig.NoLeaderProbe turns the probe off for deployments where a
// refusal does not mean the process is dead (a proxy in front of masters).

// probeRefusals is how many refusals in a row (after a connection that
// ended) declare the holder dead.
const probeRefusals = 2

// probe is one probe of one lock holder.
type probe struct {
	sid, addr string
	cancel    context.CancelFunc
}

// probeHolder makes sure the holder (sid at addr) is probed, ending the
// probe of any previous holder.
func (c *Consul) probeHolder(sid, addr string) {
	if c.cfg.NoLeaderProbe || sid == "" || addr == "" || addr == c.addr {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.probe; p != nil {
		if p.sid == sid && p.addr == addr {
			return
		}
		p.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.probe = &probe{sid: sid, addr: addr, cancel: cancel}
	go c.runProbe(ctx, sid, addr)
}

// stopProbe ends the probe (the campaign is over).
func (c *Consul) stopProbe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probe != nil {
		c.probe.cancel()
		c.probe = nil
	}
}

func (c *Consul) runProbe(ctx context.Context, sid, addr string) {
	seen := false
	refused := 0
	d := net.Dialer{Timeout: time.Second}
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			seen, refused = true, 0
			holdUntilClosed(ctx, conn)
			// The connection ended: the process died, or the server
			// closed an idle connection. Dial again to tell which.
			if !sleep(ctx, 5*time.Millisecond) {
				return
			}
			continue
		}
		if seen && errors.Is(err, syscall.ECONNREFUSED) {
			if refused++; refused >= probeRefusals {
				c.holderDead(ctx, sid, addr)
				return
			}
			if !sleep(ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		refused = 0
		if !sleep(ctx, 250*time.Millisecond) {
			return
		}
	}
}

// holdUntilClosed blocks until the peer closes conn (or resets it) or ctx
// ends. The probe sends nothing; the server sees an idle connection.
func holdUntilClosed(ctx context.Context, conn net.Conn) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()
	var buf [512]byte
	for {
		if _, err := conn.Read(buf[:]); err != nil {
			return
		}
	}
}

// holderDead destroys the session of a lock holder whose process is gone.
func (c *Consul) holderDead(ctx context.Context, sid, addr string) {
	c.log.Warn("the leader's listener refuses connections: its process is gone; ending its session",
		"leader", addr, "session", sid)
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(dctx))
		cancel()
		if err == nil {
			return
		}
		c.log.Warn("destroying the dead leader's session failed; retrying", "session", sid, "error", err)
		if !sleep(ctx, 50*time.Millisecond) {
			return
		}
	}
}
