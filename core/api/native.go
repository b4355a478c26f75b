package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// Serve serves the port: gRPC to the current gRPC server and HTTP to the
// current HTTP handler, until ctx ends.
//
// On a plaintext port a connection that opens with the HTTP/2 client
// preface (gRPC, which speaks h2c with prior knowledge) is handed whole to
// the current *grpc.Server, which serves it on its own transport; the rest
// (HTTP/1.1) goes to the HTTP server. Serving gRPC through net/http's
// ServeHTTP instead cost, per stream, a 16 KiB read buffer, a 4 KiB
// writer and three goroutines more: with 10,000 emulated agents (one
// stream each) that was 60,000 goroutines and over 200 MiB the agents'
// streams held in the master. A plaintext HTTP/2 request that is not
// gRPC (curl --http2-prior-knowledge) reaches the gRPC server and is
// refused with 415; HTTP/1.1 reaches the operator API as before.
//
// Over TLS gRPC and HTTPS both negotiate "h2" by ALPN, so they are told
// apart per request by Content-Type (see the package's Serve) and the
// gRPC server is reached through ServeHTTP.
func (s *Switch) Serve(ctx context.Context, l net.Listener, tc *tls.Config, log hclog.Logger) error {
	if tc != nil {
		return Serve(ctx, l, tc, s.GRPC(), s.HTTP(), log)
	}
	httpL := newConnListener(l.Addr())
	srv := &http.Server{
		Handler:           s.HTTP(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(httpL) }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			go s.route(c, httpL)
		}
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	_ = l.Close()
	// Streams (scheduler subscriptions, agent connections) never finish on
	// their own, so give them a moment and then cut them.
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) && err == nil {
		err = serr
	}
	_ = srv.Close()
	s.closeConns(nil)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// h2Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// route reads as much of c's first bytes as tells HTTP/2 from HTTP/1 and
// hands c (those bytes put back) to the gRPC server or the HTTP server.
func (s *Switch) route(c net.Conn, httpL *connListener) {
	buf := make([]byte, len(h2Preface))
	n := 0
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for n < len(buf) && bytes.Equal(buf[:n], h2Preface[:n]) {
		k, err := c.Read(buf[n:])
		n += k
		if err != nil {
			_ = c.Close()
			return
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: io.MultiReader(bytes.NewReader(buf[:n]), c)}
	if !bytes.Equal(buf[:n], h2Preface) {
		httpL.hand(pc)
		return
	}
	s.handGRPC(pc)
}

// handGRPC gives c to the current gRPC server, remembering it so that the
// next Set can close it.
func (s *Switch) handGRPC(c net.Conn) {
	s.mu.Lock()
	b := s.cur.Load()
	if s.native == nil {
		s.native = map[*grpc.Server]*nativeServer{}
	}
	ns := s.native[b.grpc]
	if ns == nil {
		ns = &nativeServer{l: newConnListener(c.LocalAddr()), conns: map[*trackedConn]struct{}{}}
		s.native[b.grpc] = ns
		go func() { _ = b.grpc.Serve(ns.l) }()
	}
	tc := &trackedConn{Conn: c}
	tc.onClose = func() {
		s.mu.Lock()
		delete(ns.conns, tc)
		s.mu.Unlock()
	}
	ns.conns[tc] = struct{}{}
	s.mu.Unlock()
	ns.l.hand(tc)
}

// closeConns closes the connections handed to every gRPC server but keep
// (nil: all of them).
func (s *Switch) closeConns(keep *grpc.Server) {
	s.mu.Lock()
	var cs []*trackedConn
	for g, ns := range s.native {
		if g == keep {
			continue
		}
		for c := range ns.conns {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

// nativeServer is a gRPC server's share of the port: the listener it
// accepts from and the connections it was given.
type nativeServer struct {
	l     *connListener
	conns map[*trackedConn]struct{}
}

// connListener is a net.Listener whose connections are handed to it.
type connListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// hand gives c to the listener's Accept; c is closed if the listener is.
func (l *connListener) hand(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// peekedConn reads the bytes route already read before the rest.
type peekedConn struct {
	net.Conn
	r io.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// trackedConn tells the Switch when it is closed.
type trackedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}
