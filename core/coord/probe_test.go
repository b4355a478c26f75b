package coord_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/core/coord"
	"github.com/corral-project/corral/core/coord/consultest"
)

// A leader whose listener goes away (its process killed with -9) is
// replaced long before its check TTL could run out: the standby probing
// its listener ends its session. The TTL here is a minute, longer than
// the test waits, so only the probe can hand over.
func TestConsulStandbyProbeEndsDeadLeadersSession(t *testing.T) {
	ag := consultest.Start(t)
	la, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	// a master's listener: it accepts and holds connections; kill closes
	// the listener and every connection, as the kernel does for a process
	// killed with -9.
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := la.Accept()
			if err != nil {
				return
			}
			conns <- conn
		}
	}()
	kill := func() {
		la.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	}
	newM := func(id, addr string) *coord.Consul {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		c, err := coord.NewConsul(ctx, coord.ConsulConfig{Address: ag.HTTPAddr, Prefix: "test/probe", CheckTTL: time.Minute},
			id, addr, nil, hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a := newM("master-a", la.Addr().String())
	b := newM("master-b", "127.0.0.1:1002")
	ta := <-campaign(t, a)
	if ta == nil {
		t.Fatal("a was not elected")
	}
	bc := campaign(t, b)
	// b is probing a's live listener: nothing changes.
	select {
	case <-bc:
		t.Fatal("b elected while a's listener is up")
	case <-ta.Lost():
		t.Fatal("a lost its term while its listener is up")
	case <-time.After(500 * time.Millisecond):
	}
	// a's process "dies": its listener and the connections on it close.
	// (Its check keeps being refreshed in this process: only the probe
	// can end the session.)
	kill()
	select {
	case tb := <-bc:
		if tb == nil {
			t.Fatal("b's campaign failed")
		}
	case <-time.After(waitFor):
		t.Fatal("b not elected after a's listener went away (the check TTL is a minute)")
	}
	select {
	case <-ta.Lost():
	case <-time.After(waitFor):
		t.Fatal("a's term did not end once its session was gone")
	}
	if err := a.Registry().Store(context.Background(), []byte(`{}`)); !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("deposed leader's write: err = %v, want ErrNotLeader", err)
	}
}
