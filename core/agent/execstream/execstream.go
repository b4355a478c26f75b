// Package execstream is the wire format of `corral task exec`: after an
// HTTP/1.1 upgrade to Protocol, the client and the agent exchange frames
// of one type byte, a big-endian uint32 length and that many bytes. The
// master's operator API forwards the upgraded connection untouched.
//
// Client to agent: Stdin (data), StdinClose (no payload), Resize
// ("COLS ROWS", with a TTY). Agent to client: Stdout, Stderr (data), Error
// (a message: the command could not start or was cut off) and, last,
// Exit (the exit status in decimal: 0-255, 128+N for signal N).
package execstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// Protocol is the Upgrade token of a task exec connection.
const Protocol = "corral-exec"

// Frame types.
const (
	Stdin      byte = 'i'
	StdinClose byte = 'I'
	Resize     byte = 'r'
	Stdout     byte = 'o'
	Stderr     byte = 'e'
	Error      byte = 'E'
	Exit       byte = 'x'
)

// MaxFrame bounds one frame's payload; writers split larger data.
const MaxFrame = 32 << 10

// Writer writes frames; it is safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter writes frames to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Frame writes one frame of type t, splitting p into MaxFrame pieces.
func (fw *Writer) Frame(t byte, p []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for first := true; first || len(p) > 0; first = false {
		n := min(len(p), MaxFrame)
		var hdr [5]byte
		hdr[0] = t
		binary.BigEndian.PutUint32(hdr[1:], uint32(n))
		if _, err := fw.w.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := fw.w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	if f, ok := fw.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

// Stream is an io.Writer that sends what is written as frames of type t.
func (fw *Writer) Stream(t byte) io.Writer { return streamWriter{fw, t} }

type streamWriter struct {
	fw *Writer
	t  byte
}

func (s streamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.fw.Frame(s.t, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ErrFrameTooLarge is a frame longer than MaxFrame: not this protocol.
var ErrFrameTooLarge = errors.New("execstream: frame larger than the protocol allows")

// Read reads one frame. io.EOF means the peer closed between frames.
func Read(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, ErrFrameTooLarge
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return hdr[0], p, nil
}

// ExitPayload and ParseExit encode the Exit frame.
func ExitPayload(code int) []byte { return []byte(strconv.Itoa(code)) }

// ParseExit reads an Exit frame's payload.
func ParseExit(p []byte) (int, error) {
	c, err := strconv.Atoi(string(p))
	if err != nil || c < 0 || c > 255 {
		return 0, fmt.Errorf("execstream: bad exit status %q", p)
	}
	return c, nil
}

// ResizePayload and ParseResize encode a terminal size.
func ResizePayload(cols, rows int) []byte { return fmt.Appendf(nil, "%d %d", cols, rows) }

// ParseResize reads a Resize frame's payload.
func ParseResize(p []byte) (cols, rows int, err error) {
	f := strings.Fields(string(p))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("execstream: bad size %q", p)
	}
	if cols, err = strconv.Atoi(f[0]); err == nil {
		rows, err = strconv.Atoi(f[1])
	}
	if err != nil || cols <= 0 || rows <= 0 || cols > 1<<15 || rows > 1<<15 {
		return 0, 0, fmt.Errorf("execstream: bad size %q", p)
	}
	return cols, rows, nil
}
