package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// gRPC status codes the proxy answers with itself.
const (
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// writeGRPCError answers a gRPC call with a status and no message, in one
// HEADERS frame ("trailers-only"), the way gRPC servers refuse a call.
func writeGRPCError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", grpcPercentEncode(msg))
	w.WriteHeader(http.StatusOK)
}

// grpcPercentEncode encodes a grpc-message value: bytes outside printable
// ASCII, and '%', become %XX.
func grpcPercentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// statusWriter remembers the status code of a response for metrics and the
// access log. It passes Flush (and everything else, through Unwrap) on.
type statusWriter struct {
	http.ResponseWriter
	code int
	// reqBody is the request's own body (inbound), which the reverse
	// proxy's error handler cannot read any more.
	reqBody io.ReadCloser
	// out counts the response's body bytes, body the request's (for the
	// access log and tap): countBody puts body in front of the request's.
	out  int64
	body countingBody
	// reason is why the proxy refused the request itself, for the access
	// log: an authorization denial, a rate limit.
	reason string
}

// countingBody counts what is read of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// countBody has w count what is read of r's body. It allocates nothing:
// the counter lives in w.
func (w *statusWriter) countBody(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	w.body.ReadCloser = r.Body
	r.Body = &w.body
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.out += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the response's status; 0 if nothing was written (the client
// went away).
func (w *statusWriter) status() int { return w.code }

// grpcStatus is the gRPC status of a gRPC response, else "".
func (w *statusWriter) grpcStatus() string {
	h := w.Header()
	s := h.Get("Grpc-Status")
	if s == "" {
		s = h.Get(http.TrailerPrefix + "Grpc-Status")
	}
	return s
}

// grpcTrailersOnly is a ReverseProxy.ModifyResponse for gRPC. A call that
// fails at once is answered "trailers-only": the status in the one HEADERS
// frame that ends the stream. A proxy that flushes headers early (as ours
// do, for streaming) would split that frame from the end of the stream,
// and clients would see a status in headers and no trailers. Moving the
// status to the trailers keeps the response valid however it is flushed.
func grpcTrailersOnly(resp *http.Response) error {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") || resp.Header.Get("Grpc-Status") == "" {
		return nil
	}
	if resp.Trailer == nil {
		resp.Trailer = make(http.Header)
	}
	for _, k := range []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"} {
		if v, ok := resp.Header[k]; ok {
			resp.Trailer[k] = v
			delete(resp.Header, k)
		}
	}
	return nil
}

// idleGuard calls fire when no byte moves for d; every read touches it.
type idleGuard struct {
	d time.Duration
	t *time.Timer
}

type idleGuardKey struct{}

func newIdleGuard(d time.Duration, fire func()) *idleGuard {
	return &idleGuard{d: d, t: time.AfterFunc(d, fire)}
}

func (g *idleGuard) touch() { g.t.Reset(g.d) }
func (g *idleGuard) stop()  { g.t.Stop() }

// guardedBody touches its guard on every read.
type guardedBody struct {
	io.ReadCloser
	g *idleGuard
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.g.touch()
	return n, err
}

// copyBuffers lends the reverse proxies their body-copy buffers; without
// it each request allocates 32 KiB, and the garbage collector pays for it.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// dropH2CUpgrade removes an HTTP/1.1 upgrade to h2c (RFC 7540 3.2, gone
// from RFC 9113) from h: Upgrade, HTTP2-Settings and their names in
// Connection. An application that switched would hold a connection on
// which every later request passes the proxy unseen (no route, rule or
// token check), so the request goes on as plain HTTP/1.1; WebSocket and
// other upgrades are untouched.
func dropH2CUpgrade(h http.Header) {
	h2c := false
	for _, v := range h["Upgrade"] {
		for tok := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(tok), "/")
			h2c = h2c || strings.EqualFold(name, "h2c")
		}
	}
	if !h2c {
		return
	}
	delete(h, "Upgrade")
	delete(h, "Http2-Settings")
	var kept []string
	for _, v := range h["Connection"] {
		var toks []string
		for tok := range strings.SplitSeq(v, ",") {
			if t := strings.TrimSpace(tok); !strings.EqualFold(t, "upgrade") && !strings.EqualFold(t, "http2-settings") {
				toks = append(toks, tok)
			}
		}
		if len(toks) > 0 {
			kept = append(kept, strings.Join(toks, ","))
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
	} else {
		h["Connection"] = kept
	}
}
