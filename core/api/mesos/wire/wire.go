// Package wire is the transport of the Mesos v1 HTTP APIs, shared by the
// master's endpoints (package mesos) and the agent's executor endpoint:
// content negotiation, stout-style JSON, RecordIO framing, libprocess-style
// errors.
package wire

import (
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The two media types of the Mesos v1 APIs.
const (
	TypeJSON     = "application/json"
	TypeProtobuf = "application/x-protobuf"
)

// MaxBody bounds a request body. Mesos has no limit of its own; an ACCEPT
// launching hundreds of tasks stays far below this.
const MaxBody = 16 << 20

// RequestType checks Content-Type the way Mesos does: the whole header
// must be exactly one of the two types (no parameters), else 400 when it
// is missing and 415 otherwise.
func RequestType(r *http.Request) (string, int, string) {
	vals := r.Header.Values("Content-Type")
	if len(vals) == 0 {
		return "", http.StatusBadRequest, "Expecting 'Content-Type' to be present"
	}
	switch ct := vals[len(vals)-1]; ct {
	case TypeJSON, TypeProtobuf:
		return ct, 0, ""
	}
	return "", http.StatusUnsupportedMediaType,
		"Expecting 'Content-Type' of " + TypeJSON + " or " + TypeProtobuf
}

// ResponseType negotiates Accept as libprocess does: no header Accepts
// everything; entries are matched case-insensitively against type/subtype,
// type/* and */*, an explicit q=0 rejects; JSON is asked first, so any
// header that allows JSON gets JSON whatever the q-values say. Repeated
// header lines are one list.
func ResponseType(r *http.Request) (string, bool) {
	vals := r.Header.Values("Accept")
	if len(vals) == 0 {
		return TypeJSON, true
	}
	header := strings.Join(vals, ",")
	for _, want := range []string{TypeJSON, TypeProtobuf} {
		if Accepts(header, want) {
			return want, true
		}
	}
	return "", false
}

func Accepts(header, mediaType string) bool {
	header = strings.NewReplacer(" ", "", "\t", "").Replace(strings.ToLower(header))
	typ, _, _ := strings.Cut(mediaType, "/")
	candidates := []string{mediaType, typ + "/*", "*/*"}
	for _, c := range candidates {
		for _, entry := range strings.Split(header, ",") {
			name, params, _ := strings.Cut(entry, ";")
			if name != c {
				continue
			}
			rejected := false
			for _, p := range strings.Split(params, ";") {
				if k, v, ok := strings.Cut(p, "="); ok && k == "q" {
					if q, err := strconv.ParseFloat(v, 64); err == nil && q == 0 {
						rejected = true
					}
				}
			}
			if !rejected {
				return true
			}
		}
	}
	return false
}

// Decode parses a request body in the given media type. JSON follows
// stout's rules where protojson allows: snake_case keys, unknown keys and
// unknown enum names in optional fields dropped, null as unset, numbers
// as strings, Base64 bytes; required fields are checked either way.
func Decode(contentType string, body []byte, m proto.Message) error {
	if contentType == TypeProtobuf {
		return proto.Unmarshal(body, m)
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, m)
}

// Encode serializes a message in the negotiated media type.
func Encode(contentType string, m proto.Message) ([]byte, error) {
	if contentType == TypeProtobuf {
		return proto.Marshal(m)
	}
	return MarshalJSON(m), nil
}

// MarshalJSON writes a message the way stout's jsonify does, which
// protojson does not: compact, fields in declaration order, 64-bit
// integers as bare numbers, doubles always with a fraction ("15.0"),
// empty repeated fields omitted, and unset optional fields that declare a
// default (not Deprecated) written with that default.
func MarshalJSON(m proto.Message) []byte {
	var b []byte
	return appendMessage(b, m.ProtoReflect())
}

func appendMessage(b []byte, m protoreflect.Message) []byte {
	b = append(b, '{')
	first := true
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		has := m.Has(fd)
		if !has && (fd.IsList() || fd.IsMap() || !fd.HasDefault() || Deprecated(fd)) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, string(fd.Name()))
		b = append(b, ':')
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			b = append(b, '[')
			for j := 0; j < l.Len(); j++ {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendValue(b, fd, l.Get(j))
			}
			b = append(b, ']')
		case fd.IsMap():
			mp := v.Map()
			keys := make([]protoreflect.MapKey, 0, mp.Len())
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool { keys = append(keys, k); return true })
			sort.Slice(keys, func(x, y int) bool { return keys[x].String() < keys[y].String() })
			b = append(b, '{')
			for j, k := range keys {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k.String())
				b = append(b, ':')
				b = appendValue(b, fd.MapValue(), mp.Get(k))
			}
			b = append(b, '}')
		default:
			b = appendValue(b, fd, v)
		}
	}
	return append(b, '}')
}

func Deprecated(fd protoreflect.FieldDescriptor) bool {
	o, ok := fd.Options().(*descriptorpb.FieldOptions)
	return ok && o.GetDeprecated()
}

func appendValue(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessage(b, v.Message())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendString(b, string(ev.Name()))
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10)
	case protoreflect.StringKind:
		return appendString(b, v.String())
	case protoreflect.BytesKind:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes())
		return append(b, '"')
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool())
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		return AppendDouble(b, v.Float())
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(b, v.Uint(), 10)
	}
	panic(fmt.Sprintf("mesos json: unhandled kind %v", fd.Kind()))
}

// AppendDouble writes 15 as 15.0, as rapidjson does; infinities as the
// strings stout Accepts back.
func AppendDouble(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	}
	format := byte('g')
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		format = 'f'
	}
	s := strconv.FormatFloat(f, format, -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return append(b, s...)
}

// appendString writes a JSON string: quotes, backslashes and control
// characters escaped, valid UTF-8 copied, invalid bytes replaced by U+FFFD
// (as a JSON parser would).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// RecordIO frames one record: its length in bytes, a newline, the bytes.
func RecordIO(payload []byte) []byte {
	out := make([]byte, 0, len(payload)+12)
	out = strconv.AppendInt(out, int64(len(payload)), 10)
	out = append(out, '\n')
	return append(out, payload...)
}

// TextError answers an error the way libprocess does: plain text.
func TextError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}

// ReadCall does what both v1 endpoints check first, in Mesos's order: the
// method (405), the Content-Type (415/400), reading the body and decoding
// it into call (400). It answers the request itself and returns false on
// any failure.
func ReadCall(w http.ResponseWriter, r *http.Request, call proto.Message) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		TextError(w, http.StatusMethodNotAllowed, fmt.Sprintf("Expecting a 'POST' request, received '%s'", r.Method))
		return false
	}
	ctype, code, msg := RequestType(r)
	if code != 0 {
		TextError(w, code, msg)
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		TextError(w, http.StatusBadRequest, "Failed to read request body: "+err.Error())
		return false
	}
	if err := Decode(ctype, body, call); err != nil {
		TextError(w, http.StatusBadRequest, "Failed to parse body into Call protobuf: "+err.Error())
		return false
	}
	return true
}

// Stream writes the events of a subscription (scheduler or executor): one
// RecordIO record per write, flushed, so that each record is one HTTP
// chunk as Mesos sends them.
type Stream struct {
	w           io.Writer
	flusher     http.Flusher
	contentType string
}

// NewStream returns the event stream over w in contentType; false when the
// connection cannot stream (no http.Flusher).
func NewStream(w http.ResponseWriter, contentType string) (*Stream, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		return nil, false
	}
	return &Stream{w: w, flusher: f, contentType: contentType}, true
}

// Flush sends what is buffered (the headers, before the first record).
func (s *Stream) Flush() { s.flusher.Flush() }

// Write sends one event. An event that cannot be encoded is an
// EncodeError (the stream is still good); any other error means the
// client is gone.
func (s *Stream) Write(ev proto.Message) error {
	b, err := Encode(s.contentType, ev)
	if err != nil {
		return &EncodeError{Err: err}
	}
	if _, err := s.w.Write(RecordIO(b)); err != nil {
		return err
	}
	s.flusher.Flush()
	return nil
}

// EncodeError is an event Stream.Write could not encode.
type EncodeError struct{ Err error }

func (e *EncodeError) Error() string { return "encode event: " + e.Err.Error() }
func (e *EncodeError) Unwrap() error { return e.Err }
