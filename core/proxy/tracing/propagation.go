package tracing

import (
	"encoding/hex"
	"net/http"
)

// The trace context headers the sidecar reads and writes.
const (
	HeaderTraceparent = "Traceparent"
	HeaderTracestate  = "Tracestate"
	HeaderB3          = "B3"
	HeaderB3TraceID   = "X-B3-Traceid"
	HeaderB3SpanID    = "X-B3-Spanid"
	HeaderB3Parent    = "X-B3-Parentspanid"
	HeaderB3Sampled   = "X-B3-Sampled"
	HeaderB3Flags     = "X-B3-Flags"
)

// Size limits, checked before any parsing: a header longer than its limit
// is ignored as if absent (tracestate is dropped, the rest is a new trace).
const (
	// MaxTraceparent: version 00 is exactly 55 bytes; a later version may
	// append fields, which are ignored.
	MaxTraceparent = 128
	// MaxTracestate is the W3C's 512 bytes that every vendor must pass on.
	MaxTracestate = 512
	// MaxB3 fits "{32 hex}-{16 hex}-{d}-{16 hex}" (68 bytes).
	MaxB3 = 68
	// maxB3Field fits the longest X-B3-* value (a 128-bit trace ID).
	maxB3Field = 32
)

// Format is a set of trace context formats a request carried.
type Format uint8

// The formats, as bits of a Format.
const (
	W3C      Format = 1 << iota // traceparent (and tracestate)
	B3Single                    // b3
	B3Multi                     // X-B3-TraceId, X-B3-SpanId, ...
)

// Parent is the trace context a request arrived with.
type Parent struct {
	TraceID [16]byte
	SpanID  [8]byte
	// HasIDs is false for a B3 header that carries only a sampling
	// decision ("b3: 0"): a new trace starts with that decision.
	HasIDs bool
	// Decided says whether the caller made a sampling decision; Sampled
	// is that decision.
	Decided, Sampled bool
	// TraceState is the W3C tracestate, passed on as it came (or "").
	TraceState string
	// Formats are the formats present, to be written again downstream.
	Formats Format
}

// Extract reads the trace context of h. W3C traceparent wins over B3
// single, which wins over B3 multi; a malformed or oversized header counts
// as absent (a request with repeated traceparent headers has none, as the
// W3C says). ok is false when no usable context was found; Formats then
// still names the formats present, so that Inject rewrites them.
func Extract(h http.Header) (p Parent, ok bool) {
	if vs := h[HeaderTraceparent]; len(vs) > 0 {
		p.Formats |= W3C
		if len(vs) == 1 && parseTraceparent(vs[0], &p) {
			ok = true
			if ts := h[HeaderTracestate]; len(ts) == 1 && validTracestate(ts[0]) {
				p.TraceState = ts[0]
			}
		}
	}
	if vs := h[HeaderB3]; len(vs) > 0 {
		p.Formats |= B3Single
		var q Parent
		if !ok && len(vs) == 1 && parseB3Single(vs[0], &q) {
			q.Formats = p.Formats
			p, ok = q, true
		}
	}
	if _, present := h[HeaderB3TraceID]; present || h[HeaderB3Sampled] != nil || h[HeaderB3Flags] != nil {
		p.Formats |= B3Multi
		var q Parent
		if !ok && parseB3Multi(h, &q) {
			q.Formats = p.Formats
			p, ok = q, true
		}
	}
	return p, ok
}

// parseTraceparent parses "00-{32 hex}-{16 hex}-{2 hex}" (lower case
// only; an all-zero ID and version ff are invalid).
func parseTraceparent(s string, p *Parent) bool {
	if len(s) < 55 || len(s) > MaxTraceparent {
		return false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	var ver [1]byte
	if !lowerHex(ver[:], s[0:2]) || ver[0] == 0xff {
		return false
	}
	if ver[0] == 0 && len(s) != 55 {
		return false
	}
	if len(s) > 55 && s[55] != '-' {
		return false
	}
	var flags [1]byte
	if !lowerHex(p.TraceID[:], s[3:35]) || !lowerHex(p.SpanID[:], s[36:52]) || !lowerHex(flags[:], s[53:55]) {
		return false
	}
	if p.TraceID == ([16]byte{}) || p.SpanID == ([8]byte{}) {
		return false
	}
	p.HasIDs, p.Decided, p.Sampled = true, true, flags[0]&1 == 1
	return true
}

// validTracestate checks tracestate's size and characters (printable
// ASCII, at most 32 members); its members are passed on, not read.
func validTracestate(s string) bool {
	if len(s) == 0 || len(s) > MaxTracestate {
		return false
	}
	members := 1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
		if c == ',' {
			members++
		}
	}
	return members <= 32
}

// parseB3Single parses "{trace}-{span}[-{sampled}[-{parent}]]" or a lone
// sampling decision ("0", "1", "d").
func parseB3Single(s string, p *Parent) bool {
	if len(s) == 0 || len(s) > MaxB3 {
		return false
	}
	if len(s) == 1 {
		return b3Sampling(s, p)
	}
	var parts [4]string
	n := 0
	for start, i := 0, 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '-' {
			if n == len(parts) {
				return false
			}
			parts[n] = s[start:i]
			n++
			start = i + 1
		}
	}
	if n < 2 || !b3TraceID(parts[0], p) || !b3SpanID(parts[1], p) {
		return false
	}
	if n >= 3 && !b3Sampling(parts[2], p) {
		return false
	}
	if n == 4 {
		var parent [8]byte
		if len(parts[3]) != 16 || !lowerHex(parent[:], parts[3]) {
			return false
		}
	}
	p.HasIDs = true
	return true
}

// parseB3Multi reads the X-B3-* headers; each must appear at most once.
func parseB3Multi(h http.Header, p *Parent) bool {
	get := func(k string) (string, bool) {
		vs := h[k]
		if len(vs) > 1 || (len(vs) == 1 && len(vs[0]) > maxB3Field) {
			return "", false
		}
		if len(vs) == 0 {
			return "", true
		}
		return vs[0], true
	}
	tid, ok1 := get(HeaderB3TraceID)
	sid, ok2 := get(HeaderB3SpanID)
	smp, ok3 := get(HeaderB3Sampled)
	flg, ok4 := get(HeaderB3Flags)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return false
	}
	switch {
	case flg == "1":
		p.Decided, p.Sampled = true, true
	case flg != "":
		return false
	case smp == "1", smp == "true":
		p.Decided, p.Sampled = true, true
	case smp == "0", smp == "false":
		p.Decided = true
	case smp != "":
		return false
	}
	if tid == "" && sid == "" {
		return p.Decided // a decision alone
	}
	if !b3TraceID(tid, p) || !b3SpanID(sid, p) {
		return false
	}
	p.HasIDs = true
	return true
}

func b3Sampling(s string, p *Parent) bool {
	switch s {
	case "0":
		p.Decided, p.Sampled = true, false
	case "1", "d":
		p.Decided, p.Sampled = true, true
	default:
		return false
	}
	return true
}

// b3TraceID reads a 64- or 128-bit trace ID; a 64-bit one fills the low
// half.
func b3TraceID(s string, p *Parent) bool {
	switch len(s) {
	case 32:
		if !lowerHex(p.TraceID[:], s) {
			return false
		}
	case 16:
		p.TraceID = [16]byte{}
		if !lowerHex(p.TraceID[8:], s) {
			return false
		}
	default:
		return false
	}
	return p.TraceID != [16]byte{}
}

func b3SpanID(s string, p *Parent) bool {
	return len(s) == 16 && lowerHex(p.SpanID[:], s) && p.SpanID != [8]byte{}
}

// lowerHex decodes s, lower-case hex of exactly 2*len(dst) digits, into dst.
func lowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

// Child is the context a sidecar writes onto the request it sends on.
type Child struct {
	TraceID    [16]byte
	SpanID     [8]byte
	ParentID   [8]byte // zero: a new trace
	Sampled    bool
	TraceState string
}

// Inject writes c onto h: always traceparent (and tracestate when there
// is one), and the B3 formats in formats, replacing what h had, so that
// an application that passes the headers on continues this trace.
func Inject(h http.Header, c Child, formats Format) {
	tid := hex.EncodeToString(c.TraceID[:])
	sid := hex.EncodeToString(c.SpanID[:])
	flags, b3s := "00", "0"
	if c.Sampled {
		flags, b3s = "01", "1"
	}
	h[HeaderTraceparent] = []string{"00-" + tid + "-" + sid + "-" + flags}
	if c.TraceState != "" {
		h[HeaderTracestate] = []string{c.TraceState}
	} else {
		delete(h, HeaderTracestate)
	}
	hasParent := c.ParentID != [8]byte{}
	if formats&B3Single != 0 {
		v := tid + "-" + sid + "-" + b3s
		if hasParent {
			v += "-" + hex.EncodeToString(c.ParentID[:])
		}
		h[HeaderB3] = []string{v}
	}
	if formats&B3Multi != 0 {
		h[HeaderB3TraceID] = []string{tid}
		h[HeaderB3SpanID] = []string{sid}
		h[HeaderB3Sampled] = []string{b3s}
		delete(h, HeaderB3Flags)
		if hasParent {
			h[HeaderB3Parent] = []string{hex.EncodeToString(c.ParentID[:])}
		} else {
			delete(h, HeaderB3Parent)
		}
	}
}
