package main

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// http2Preface is what every HTTP/2 connection without TLS starts with
// (RFC 9113 3.4).
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// portSplit shares a master's cleartext port between net/http (the
// operator, Mesos and UI APIs) and grpc-go's own HTTP/2 server (the
// scheduler and agent gateways): a connection that opens with the HTTP/2
// preface is gRPC's, any other net/http's.
//
// Why not grpc.Server.ServeHTTP behind net/http, one handler for both: that
// path (grpc-go's "handler transport") costs several times the CPU per
// stream of grpc-go's server, and a master taking over is sent every
// agent's registration at once (10k agents: seconds of CPU). The price: an
// HTTP client speaking HTTP/2 without TLS by prior knowledge (curl
// --http2-prior-knowledge) reaches the gRPC server, which answers 415;
// HTTP/1.1 (what browsers and HTTP clients use without TLS) is unaffected.
// With TLS the port is not split (ALPN says "h2" for browsers and gRPC
// alike): gRPC stays on ServeHTTP.
//
// Each gRPC server serves the connections accepted while it is current:
// when the master's role changes (serve), the previous server stops and
// its connections close, so clients reconnect to the new role's server
// instead of keeping a connection to a standby's redirects.
type portSplit struct {
	l    net.Listener
	http *connListener
	log  hclog.Logger

	mu     sync.Mutex
	cur    *grpcTerm
	closed bool
}

type grpcTerm struct {
	srv *grpc.Server
	l   *connListener
}

// sniffTimeout bounds how long a new connection may take to send its
// first bytes (a probe that connects and sends nothing is dropped then).
const sniffTimeout = 10 * time.Second

func newPortSplit(l net.Listener, log hclog.Logger) *portSplit {
	p := &portSplit{l: l, http: newConnListener(l.Addr()), log: log}
	go p.acceptLoop()
	return p
}

// HTTP is the listener net/http serves: every connection that is not
// gRPC's.
func (p *portSplit) HTTP() net.Listener { return p.http }

// serve makes g serve the gRPC connections accepted from now on, and
// stops the previous server (closing its connections).
func (p *portSplit) serve(g *grpc.Server) {
	t := &grpcTerm{srv: g, l: newConnListener(p.l.Addr())}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		g.Stop()
		return
	}
	old := p.cur
	p.cur = t
	p.mu.Unlock()
	go func() {
		if err := g.Serve(t.l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			p.log.Debug("gRPC server ended", "error", err)
		}
	}()
	if old != nil {
		// Stop closes its listener and connections; bounded or not, it
		// must not hold up the role change.
		go old.srv.Stop()
	}
}

// Close stops accepting, and stops the current gRPC server.
func (p *portSplit) Close() error {
	p.mu.Lock()
	p.closed = true
	cur := p.cur
	p.cur = nil
	p.mu.Unlock()
	err := p.l.Close()
	_ = p.http.Close()
	if cur != nil {
		_ = cur.l.Close()
		cur.srv.Stop()
	}
	return err
}

func (p *portSplit) acceptLoop() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			_ = p.http.Close()
			return
		}
		go p.route(c)
	}
}

// route reads the connection's first bytes until they are the HTTP/2
// preface or differ from it, and hands the connection on with those bytes
// put back.
func (p *portSplit) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	buf := make([]byte, len(http2Preface))
	n := 0
	var err error
	for n < len(buf) && bytes.Equal(buf[:n], http2Preface[:n]) && err == nil {
		var k int
		k, err = c.Read(buf[n:])
		n += k
	}
	_ = c.SetReadDeadline(time.Time{})
	if n == 0 {
		_ = c.Close()
		return
	}
	rc := &replayConn{Conn: c, head: buf[:n]}
	if n == len(http2Preface) && bytes.Equal(buf, http2Preface) {
		p.mu.Lock()
		cur := p.cur
		p.mu.Unlock()
		if cur == nil || !cur.l.push(rc) {
			_ = c.Close()
		}
		return
	}
	if !p.http.push(rc) {
		_ = c.Close()
	}
}

// replayConn is a connection whose first bytes were read already.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// connListener is a net.Listener fed connections by push.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept; false when the listener is closed.
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
