package protect

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// Settings are one listener's defences. Zero means "no cap" only for
// MaxRequestBodyBytes; Defaults fills every other field.
type Settings struct {
	// ReadHeaderTimeout bounds the time a client takes to send a
	// request's headers; over TLS it also bounds the handshake.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle that long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block (HTTP/1.1), and is
	// the HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE.
	MaxHeaderBytes int
	// MaxHeaderCount bounds the number of header fields of a request.
	MaxHeaderCount int
	// MaxRequestBodyBytes bounds a request body; 0: no cap (the proxy
	// streams bodies, it never holds one whole).
	MaxRequestBodyBytes int64
	// MaxConcurrentStreams bounds the streams of one HTTP/2 connection.
	MaxConcurrentStreams int
	// MaxConnectionsPerSource bounds the connections one source IP
	// address holds open at once.
	MaxConnectionsPerSource int
	// MaxInFlight bounds the requests a listener serves at once; past it
	// a request is answered 503 with Retry-After at once.
	MaxInFlight int
}

// The defaults (docs/protection.md says why each).
const (
	DefaultReadHeaderTimeout       = 10 * time.Second
	DefaultIdleTimeout             = 5 * time.Minute
	DefaultMaxHeaderBytes          = 64 << 10
	DefaultMaxHeaderCount          = 100
	DefaultMaxConcurrentStreams    = 250
	DefaultMaxConnectionsPerSource = 1024
	DefaultMaxInFlight             = 4096
)

// Defaults are the settings of a listener that no policy tunes: the
// sidecar's inbound and outbound listeners and the gateway's.
func Defaults() Settings {
	return Settings{
		ReadHeaderTimeout:       DefaultReadHeaderTimeout,
		IdleTimeout:             DefaultIdleTimeout,
		MaxHeaderBytes:          DefaultMaxHeaderBytes,
		MaxHeaderCount:          DefaultMaxHeaderCount,
		MaxConcurrentStreams:    DefaultMaxConcurrentStreams,
		MaxConnectionsPerSource: DefaultMaxConnectionsPerSource,
		MaxInFlight:             DefaultMaxInFlight,
	}
}

// AdminDefaults are the settings of an admin port (the sidecar's, the
// controller's admin API): operators and scrapers, a few requests at
// once, small bodies.
func AdminDefaults() Settings {
	s := Defaults()
	s.IdleTimeout = 2 * time.Minute
	s.MaxHeaderBytes = 16 << 10
	s.MaxRequestBodyBytes = 1 << 20
	s.MaxConnectionsPerSource = 64
	s.MaxInFlight = 256
	return s
}

// ControllerDefaults are the settings of the controller's sidecar API:
// every sidecar holds one connection, and sidecars behind a NAT share an
// address, so the per-source cap is high.
func ControllerDefaults() Settings {
	s := Defaults()
	s.MaxConnectionsPerSource = 8192
	return s
}

// FromProto applies what p sets over base; a zero field keeps base's.
func FromProto(p *meshapi.Protection, base Settings) Settings {
	if p == nil {
		return base
	}
	s := base
	if d := p.GetReadHeaderTimeout().AsDuration(); d > 0 {
		s.ReadHeaderTimeout = d
	}
	if d := p.GetIdleTimeout().AsDuration(); d > 0 {
		s.IdleTimeout = d
	}
	if v := p.GetMaxHeaderBytes(); v > 0 {
		s.MaxHeaderBytes = int(v)
	}
	if v := p.GetMaxHeaderCount(); v > 0 {
		s.MaxHeaderCount = int(v)
	}
	if v := p.GetMaxRequestBodyBytes(); v > 0 {
		s.MaxRequestBodyBytes = int64(min(v, 1<<62))
	}
	if v := p.GetMaxConcurrentStreams(); v > 0 {
		s.MaxConcurrentStreams = int(v)
	}
	if v := p.GetMaxConnectionsPerSource(); v > 0 {
		s.MaxConnectionsPerSource = int(v)
	}
	if v := p.GetMaxInFlight(); v > 0 {
		s.MaxInFlight = int(v)
	}
	return s
}

// Validate checks what a configuration asks for, so that a sidecar
// refuses (NACKs) settings that would leave a listener without defence.
func Validate(p *meshapi.Protection) error {
	if p == nil {
		return nil
	}
	if d := p.GetReadHeaderTimeout(); d != nil && (d.AsDuration() < 0 || d.AsDuration() > time.Hour) {
		return fmt.Errorf("protection: read_header_timeout %s is out of range; give 0 to 1h", d.AsDuration())
	}
	if d := p.GetIdleTimeout(); d != nil && (d.AsDuration() < 0 || d.AsDuration() > 24*time.Hour) {
		return fmt.Errorf("protection: idle_timeout %s is out of range; give 0 to 24h", d.AsDuration())
	}
	if v := p.GetMaxHeaderBytes(); v > 0 && (v < 1024 || v > 1<<20) {
		return fmt.Errorf("protection: max_header_bytes %d is out of range; give 1024 to 1048576", v)
	}
	if b := p.GetBlocking(); b != nil && (b.GetAddresses() || b.GetIdentities()) && b.GetThreshold() == 0 {
		return fmt.Errorf("protection: blocking is on but its threshold is 0; give the number of signals that blocks a source")
	}
	return nil
}

// ServerKey is what an http.Server fixes when it starts: a change of it
// needs a new server (the sidecar gives the listener a new handler on the
// same socket).
func (s Settings) ServerKey() string {
	return fmt.Sprintf("%s/%s/%d/%d", s.ReadHeaderTimeout, s.IdleTimeout, s.MaxHeaderBytes, s.MaxConcurrentStreams)
}

// The reasons a Shield refuses a connection or request, the label values
// of the metrics.
const (
	ReasonSourceConnections = "source_connections" // the source holds MaxConnectionsPerSource
	ReasonShed              = "shed"               // MaxInFlight requests in flight
	ReasonHeaderCount       = "header_count"       // more than MaxHeaderCount header fields
	ReasonBodyTooLarge      = "body_too_large"     // a body past MaxRequestBodyBytes
	ReasonBlocked           = "blocked"            // the intrusion tracker blocks the source
)

// Reasons lists every reason, in a fixed order.
var Reasons = []string{ReasonSourceConnections, ReasonShed, ReasonHeaderCount, ReasonBodyTooLarge, ReasonBlocked}

// Options configure a Shield.
type Options struct {
	// Listener names the listener in messages ("inbound", "admin").
	Listener string
	// Refused, when set, hears of every refusal: the reason, the client's
	// address (host:port) and, for a request, the request (nil for a
	// connection). It must not block.
	Refused func(reason, addr string, r *http.Request)
	// Blocked, when set, is asked for every connection whether its
	// source address (an IP, no port) is blocked; a blocked one is
	// closed at once.
	Blocked func(ip string) bool
	// IPv6Prefix, when above 0, makes an IPv6 source its prefix of this
	// many bits (64 for clients outside the mesh: one subscriber is
	// commonly given a whole /64, and a limit per address would give it
	// a new allowance per address): connections are counted per prefix
	// and Blocked is asked about the prefix ("2001:db8:1:2::/64").
	IPv6Prefix int
}

// Shield is one listener's defences. Safe for concurrent use.
type Shield struct {
	o        Options
	cur      atomic.Pointer[Settings]
	inFlight atomic.Int64

	mu    sync.Mutex
	conns map[netip.Prefix]int // open connections by source (SourceKey)
}

// NewShield returns a Shield applying s.
func NewShield(s Settings, o Options) *Shield {
	sh := &Shield{o: o, conns: map[netip.Prefix]int{}}
	sh.Set(s)
	return sh
}

// Set swaps the settings in: new connections and requests get them.
func (sh *Shield) Set(s Settings) { sh.cur.Store(&s) }

// Settings returns the settings in force.
func (sh *Shield) Settings() Settings { return *sh.cur.Load() }

// InFlight is the number of requests in flight.
func (sh *Shield) InFlight() int64 { return sh.inFlight.Load() }

// SourceIP is the address of a host:port (or the whole string when it
// has no port), unmapped.
func SourceIP(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap().String()
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// SourceKey is the source a client address (host:port, or a bare
// address) counts as: its address, unmapped, or for IPv6 with v6bits
// above 0 its prefix of that length ("2001:db8:1:2::/64"). A string that
// is no address is returned as it is.
func SourceKey(addr string, v6bits int) string {
	p, ok := sourcePrefix(addr, v6bits)
	if !ok {
		return SourceIP(addr)
	}
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func sourcePrefix(addr string, v6bits int) (netip.Prefix, bool) {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr()
	} else if a, err := netip.ParseAddr(addr); err == nil {
		ip = a
	} else {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap().WithZone("")
	bits := ip.BitLen()
	if ip.Is6() && v6bits > 0 && v6bits < bits {
		bits = v6bits
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

func (sh *Shield) refused(reason, addr string, r *http.Request) {
	if sh.o.Refused != nil {
		sh.o.Refused(reason, addr, r)
	}
}

// Admit takes a new connection in: it returns a connection that frees its
// place when closed, or false (and closes c) when c's source is blocked or
// already holds MaxConnectionsPerSource connections.
func (sh *Shield) Admit(c net.Conn) (net.Conn, bool) {
	addr := c.RemoteAddr().String()
	if _, err := netip.ParseAddrPort(addr); err != nil { // not TCP (a pipe in a test): nothing to count by
		return c, true
	}
	ip, _ := sourcePrefix(addr, sh.o.IPv6Prefix)
	if sh.o.Blocked != nil && sh.o.Blocked(SourceKey(addr, sh.o.IPv6Prefix)) {
		sh.refused(ReasonBlocked, addr, nil)
		c.Close()
		return nil, false
	}
	max := sh.cur.Load().MaxConnectionsPerSource
	sh.mu.Lock()
	n := sh.conns[ip]
	if max > 0 && n >= max {
		sh.mu.Unlock()
		sh.refused(ReasonSourceConnections, addr, nil)
		c.Close()
		return nil, false
	}
	sh.conns[ip] = n + 1
	sh.mu.Unlock()
	return &admitted{Conn: c, release: func() { sh.release(ip) }}, true
}

func (sh *Shield) release(ip netip.Prefix) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.conns[ip] - 1; n > 0 {
		sh.conns[ip] = n
	} else {
		delete(sh.conns, ip)
	}
}

// Sources is the number of source addresses holding a connection.
func (sh *Shield) Sources() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.conns)
}

// admitted frees its source's place once, when closed.
type admitted struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *admitted) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite half-closes when the connection can.
func (c *admitted) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// NetConn is the connection Admit wrapped (tls.Server and friends do not
// need it; a caller that type-asserts the raw connection does).
func (c *admitted) NetConn() net.Conn { return c.Conn }

// Listener wraps ln so that Accept returns only the connections Admit
// takes; the others are closed and Accept goes on.
func (sh *Shield) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, sh: sh} }

type listener struct {
	net.Listener
	sh *Shield
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ac, ok := l.sh.Admit(c); ok {
			return ac, nil
		}
	}
}

// Server sets what an http.Server fixes at start: the header timeout
// (which bounds a TLS handshake too), the idle timeout, the header bytes
// and the HTTP/2 streams per connection. Call it before the server
// starts.
func (sh *Shield) Server(srv *http.Server) {
	s := sh.Settings()
	srv.ReadHeaderTimeout = s.ReadHeaderTimeout
	srv.IdleTimeout = s.IdleTimeout
	// net/http allows 4 KiB past MaxHeaderBytes; the cap is ours.
	srv.MaxHeaderBytes = max(1, s.MaxHeaderBytes-4096)
	if srv.HTTP2 == nil {
		srv.HTTP2 = &http.HTTP2Config{}
	}
	srv.HTTP2.MaxConcurrentStreams = s.MaxConcurrentStreams
	srv.HTTP2.MaxDecoderHeaderTableSize = 4096
	srv.HTTP2.MaxEncoderHeaderTableSize = 4096
}

// Handler checks every request before next sees it: load shedding (503
// with Retry-After and X-Weft-Overloaded at once), the number of header
// fields (431), the declared body length (413), and it caps the body
// that streams in.
func (sh *Shield) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sh.cur.Load()
		if n := sh.inFlight.Add(1); s.MaxInFlight > 0 && n > int64(s.MaxInFlight) {
			sh.inFlight.Add(-1)
			sh.refused(ReasonShed, r.RemoteAddr, r)
			w.Header().Set("Retry-After", "1")
			w.Header().Set("X-Weft-Overloaded", "true")
			w.Header().Set("Connection", "close")
			refuse(w, r, http.StatusServiceUnavailable, grpcUnavailable,
				fmt.Sprintf("weft: the %s listener is saturated (%d requests in flight); retry in a second", sh.o.Listener, s.MaxInFlight))
			return
		}
		defer sh.inFlight.Add(-1)
		if s.MaxHeaderCount > 0 {
			n := 0
			for _, v := range r.Header {
				n += len(v)
			}
			if n > s.MaxHeaderCount {
				sh.refused(ReasonHeaderCount, r.RemoteAddr, r)
				w.Header().Set("Connection", "close")
				refuse(w, r, http.StatusRequestHeaderFieldsTooLarge, grpcResourceExhausted,
					fmt.Sprintf("weft: the request has %d header fields, more than the %d this listener takes; send fewer", n, s.MaxHeaderCount))
				return
			}
		}
		if s.MaxRequestBodyBytes > 0 && r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > s.MaxRequestBodyBytes {
				sh.refused(ReasonBodyTooLarge, r.RemoteAddr, r)
				w.Header().Set("Connection", "close")
				refuse(w, r, http.StatusRequestEntityTooLarge, grpcResourceExhausted,
					fmt.Sprintf("weft: the request body of %d bytes is larger than the %d this listener takes", r.ContentLength, s.MaxRequestBodyBytes))
				return
			}
			r.Body = &cappedBody{ReadCloser: r.Body, left: s.MaxRequestBodyBytes, limit: s.MaxRequestBodyBytes, onOver: func() { sh.refused(ReasonBodyTooLarge, r.RemoteAddr, r) }}
		}
		next.ServeHTTP(w, r)
	})
}

// ErrBodyTooLarge is what a capped body's Read returns past the cap.
type ErrBodyTooLarge struct{ Limit int64 }

func (e *ErrBodyTooLarge) Error() string {
	return "the request body is larger than the " + strconv.FormatInt(e.Limit, 10) + " bytes this listener takes"
}

// cappedBody fails a read past its cap.
type cappedBody struct {
	io.ReadCloser
	left   int64
	limit  int64
	onOver func()
	over   bool
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.over {
		return 0, &ErrBodyTooLarge{Limit: b.limit}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		b.over = true
		b.onOver()
		return int(b.left), &ErrBodyTooLarge{Limit: b.limit}
	}
	b.left -= int64(n)
	return n, err
}

// gRPC status codes a Shield answers with.
const (
	grpcResourceExhausted = 8
	grpcUnavailable       = 14
)

// refuse answers with status, or, for a gRPC call, with the gRPC code in
// a trailers-only response.
func refuse(w http.ResponseWriter, r *http.Request, status, grpcCode int, msg string) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		h := w.Header()
		h.Del("Connection")
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(grpcCode))
		h.Set("Grpc-Message", msg)
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.ProtoMajor >= 2 {
		w.Header().Del("Connection") // not an HTTP/2 header
	}
	http.Error(w, msg, status)
}

// Enter counts a request in flight for an engine that serves requests
// without Handler (the sidecar's byte-level HTTP/1.1 engine): false, and
// nothing counted, when MaxInFlight requests are in flight already; the
// engine then answers as Handler does and counts the refusal itself.
// Every Enter that returned true is followed by one Leave.
func (sh *Shield) Enter() bool {
	s := sh.cur.Load()
	if n := sh.inFlight.Add(1); s.MaxInFlight > 0 && n > int64(s.MaxInFlight) {
		sh.inFlight.Add(-1)
		return false
	}
	return true
}

// Leave ends a request Enter counted.
func (sh *Shield) Leave() { sh.inFlight.Add(-1) }
