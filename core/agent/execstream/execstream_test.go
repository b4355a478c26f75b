package execstream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFramesRoundTripAndSplit(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := NewWriter(bw)
	big := bytes.Repeat([]byte("x"), MaxFrame+10)
	if _, err := w.Stream(Stdout).Write(big); err != nil {
		t.Fatal(err)
	}
	if err := w.Frame(StdinClose, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Frame(Exit, ExitPayload(137)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, want := range []struct {
		t byte
		n int
	}{{Stdout, MaxFrame}, {Stdout, 10}, {StdinClose, 0}, {Exit, 3}} {
		typ, p, err := Read(&buf)
		if err != nil || typ != want.t || len(p) != want.n {
			t.Fatalf("frame %c/%d: got %c/%d, %v", want.t, want.n, typ, len(p), err)
		}
		if typ == Stdout {
			got = append(got, p...)
		}
		if typ == Exit {
			if c, err := ParseExit(p); err != nil || c != 137 {
				t.Errorf("exit = %d, %v", c, err)
			}
		}
	}
	if !bytes.Equal(got, big) {
		t.Error("split stdout does not reassemble")
	}
	if _, _, err := Read(&buf); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: %v, want EOF", err)
	}
}

func TestBadFrames(t *testing.T) {
	hdr := []byte{Stdout, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], MaxFrame+1)
	if _, _, err := Read(bytes.NewReader(hdr)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	binary.BigEndian.PutUint32(hdr[1:], 4)
	if _, _, err := Read(bytes.NewReader(append(hdr, 'a'))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
	for _, p := range []string{"", "-1", "256", "x"} {
		if _, err := ParseExit([]byte(p)); err == nil {
			t.Errorf("ParseExit(%q) accepted", p)
		}
	}
	if c, r, err := ParseResize(ResizePayload(80, 24)); err != nil || c != 80 || r != 24 {
		t.Errorf("resize round trip: %d %d %v", c, r, err)
	}
	if _, _, err := ParseResize([]byte("0 24")); err == nil {
		t.Error("zero columns accepted")
	}
}
