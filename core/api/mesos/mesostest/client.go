// Package mesostest is a Mesos v1 scheduler API client for tests: it
// speaks HTTP in either encoding, reads the RecordIO stream and checks its
// framing (one record per chunk is not visible through net/http, but a
// record split across reads or a malformed length is).
package mesostest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
)

// Media types.
const (
	JSON     = "application/json"
	Protobuf = "application/x-protobuf"
)

// Client talks to one master's scheduler endpoint in one encoding.
type Client struct {
	URL         string // http://host:port/api/v1/scheduler
	ContentType string
	HTTP        *http.Client
}

// New returns a client for the master at addr (host:port).
func New(addr, contentType string) *Client {
	return &Client{URL: "http://" + addr + "/api/v1/scheduler", ContentType: contentType, HTTP: &http.Client{}}
}

// Encode serializes a call in the client's encoding.
func (c *Client) Encode(m proto.Message) ([]byte, error) {
	if c.ContentType == Protobuf {
		return proto.Marshal(m)
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
}

// Response is a non-streaming answer.
type Response struct {
	Status      int
	Body        string
	ContentType string
}

// Post sends a raw body with the given headers.
func (c *Client) Post(ctx context.Context, body []byte, header http.Header) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Body: string(b), ContentType: resp.Header.Get("Content-Type")}, err
}

// Call sends a call on behalf of a subscribed stream.
func (c *Client) Call(ctx context.Context, streamID string, call *schedpb.Call) (Response, error) {
	b, err := c.Encode(call)
	if err != nil {
		return Response{}, err
	}
	h := http.Header{"Content-Type": {c.ContentType}}
	if streamID != "" {
		h.Set("Mesos-Stream-Id", streamID)
	}
	return c.Post(ctx, b, h)
}

// Stream is an open subscription.
type Stream struct {
	ID          string
	FrameworkID string
	Status      int
	ContentType string
	resp        *http.Response
	r           *bufio.Reader
	cancel      context.CancelFunc
	decodeAs    string
}

// Subscribe opens a stream; accept is the Accept header ("" for none).
// The stream lives until Close or ctx ends.
func (c *Client) Subscribe(ctx context.Context, call *schedpb.Call, accept string) (*Stream, error) {
	b, err := c.Encode(call)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(b))
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Content-Type", c.ContentType)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &Stream{ID: resp.Header.Get("Mesos-Stream-Id"), Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
		resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel, decodeAs: resp.Header.Get("Content-Type")}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		s.Close()
		return s, fmt.Errorf("subscribe: status %d: %s", resp.StatusCode, body)
	}
	if resp.ContentLength >= 0 {
		s.Close()
		return s, fmt.Errorf("subscribe: the stream has Content-Length %d; it must be chunked", resp.ContentLength)
	}
	return s, nil
}

// Close ends the subscription from the client's side.
func (s *Stream) Close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// Raw reads the next RecordIO record.
func (s *Stream) Raw() ([]byte, error) {
	line, err := s.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(line, "\n"), 10, 63)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("recordio: bad record length %q", line)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(s.r, buf); err != nil {
		return nil, fmt.Errorf("recordio: record of %d bytes cut short: %w", n, err)
	}
	return buf, nil
}

// Next reads and decodes the next event.
func (s *Stream) Next() (*schedpb.Event, error) {
	raw, err := s.Raw()
	if err != nil {
		return nil, err
	}
	ev := &schedpb.Event{}
	if s.decodeAs == Protobuf {
		err = proto.Unmarshal(raw, ev)
	} else {
		err = protojson.Unmarshal(raw, ev)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding event %q: %w", raw, err)
	}
	if ev.Subscribed != nil {
		s.FrameworkID = ev.Subscribed.GetFrameworkId().GetValue()
	}
	return ev, nil
}

// Await reads events until one satisfies match, skipping the others
// (heartbeats, offers a test does not care about) but passing each to
// seen when not nil. The deadline bounds the wait, not the speed.
func (s *Stream) Await(timeout time.Duration, what string, match func(*schedpb.Event) bool) (*schedpb.Event, error) {
	type result struct {
		ev  *schedpb.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		for {
			ev, err := s.Next()
			if err != nil {
				done <- result{nil, err}
				return
			}
			if match(ev) {
				done <- result{ev, nil}
				return
			}
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", what, r.err)
		}
		return r.ev, nil
	case <-time.After(timeout):
		// Unblock the reader; the stream is unusable afterwards.
		s.Close()
		<-done
		return nil, fmt.Errorf("timed out after %v waiting for %s", timeout, what)
	}
}

// SubscribeCall builds a SUBSCRIBE for a new framework.
func SubscribeCall(name string, caps ...mesospb.FrameworkInfo_Capability_Type) *schedpb.Call {
	fi := &mesospb.FrameworkInfo{User: proto.String("root"), Name: proto.String(name)}
	for _, c := range caps {
		fi.Capabilities = append(fi.Capabilities, &mesospb.FrameworkInfo_Capability{Type: c.Enum()})
	}
	return &schedpb.Call{Type: schedpb.Call_SUBSCRIBE.Enum(), Subscribe: &schedpb.Call_Subscribe{FrameworkInfo: fi}}
}

// FID wraps a framework ID.
func FID(id string) *mesospb.FrameworkID { return &mesospb.FrameworkID{Value: proto.String(id)} }
