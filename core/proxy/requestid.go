package proxy

import (
	"math/rand/v2"
	"net/http"
)

// The request ID: the first Weft proxy a request meets (the caller's
// outbound listener, or an inbound one reached by a client outside the
// mesh) gives it an X-Request-Id when it has none, keeps a sane one, and
// replaces one that is not (several values, too long, a byte outside
// requestIDChars); the header then goes on to the application and the
// upstream, so the access logs of every sidecar on the way, and the
// applications, see the same ID. A generated ID is a random UUID (version
// 4), as Envoy's; ensureRequestID is called once per request, in
// inbound.serveHTTP and outbound.serveHTTP.

// headerRequestID is the request ID's header, canonical.
const headerRequestID = "X-Request-Id"

// maxRequestID bounds a caller's request ID; a longer one is replaced.
const maxRequestID = 128

// requestIDChars says which bytes a caller's request ID may hold: letters,
// digits and - _ . : + / = @ (UUIDs, hex, base64, "Root=1-..." trace IDs).
var requestIDChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-_.:+/=@" {
		t[c] = true
	}
	return t
}()

// saneRequestID says whether a caller's request ID is kept.
func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !requestIDChars[id[i]] {
			return false
		}
	}
	return true
}

// ensureRequestID gives h a request ID when it has no sane one (exactly
// one value, saneRequestID), and returns the ID h carries. Only a
// generated ID allocates.
func ensureRequestID(h http.Header) string {
	if v := h[headerRequestID]; len(v) == 1 && saneRequestID(v[0]) {
		return v[0]
	}
	id := newRequestID()
	h[headerRequestID] = []string{id}
	return id
}

// requestID is h's request ID, "" for none.
func requestID(h http.Header) string {
	if v := h[headerRequestID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// newRequestID is a random version-4 UUID, from the runtime's per-thread
// generator (math/rand/v2): no lock, no system call.
func newRequestID() string {
	var b [36]byte
	return string(appendRequestID(b[:0]))
}

// appendRequestID appends a new request ID (newRequestID's) to dst.
func appendRequestID(dst []byte) []byte {
	const hex = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // variant 10
	for i := 0; i < 32; i++ {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			dst = append(dst, '-')
		}
		v := hi
		if i >= 16 {
			v = lo
		}
		dst = append(dst, hex[v>>(60-4*(i%16))&15])
	}
	return dst
}

// traceID is the trace ID of h's W3C traceparent
// ("00-<32 hex>-<16 hex>-<2 hex>"), "" when there is none or it is
// malformed, or all zeros.
func traceID(h http.Header) string {
	v := h["Traceparent"]
	if len(v) != 1 {
		return ""
	}
	return traceIDOf(v[0])
}

// traceIDOf is traceID of the one traceparent value tp.
func traceIDOf(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || (len(tp) > 55 && tp[55] != '-') || tp[:2] == "ff" {
		return ""
	}
	zero := true
	for i := 0; i < 55; i++ {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		c := tp[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
		if i > 2 && i < 35 && c != '0' {
			zero = false
		}
	}
	if zero {
		return ""
	}
	return tp[3:35]
}
