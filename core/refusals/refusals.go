package refusals

import (
	"errors"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The reasons a handshake is refused for, the label values of the
// metrics.
const (
	NotTLS              = "not_tls"               // plaintext or garbage where TLS was expected
	NoClientCertificate = "no_client_certificate" // mTLS without a certificate
	BadCertificate      = "bad_certificate"       // a certificate that does not verify: another CA, expired, wrong identity
	PeerRejected        = "peer_rejected"         // the peer refused ours (a TLS alert from it)
	Timeout             = "timeout"               // the handshake did not finish in time
	Closed              = "closed"                // closed before sending anything
	Reset               = "reset"                 // reset by the peer mid-handshake
	Protocol            = "protocol"              // any other TLS failure: versions, ciphers, ALPN
	Other               = "other"
)

// Reasons lists every reason, in a fixed order.
var Reasons = []string{NotTLS, NoClientCertificate, BadCertificate, PeerRejected, Timeout, Closed, Reset, Protocol, Other}

// Reason classifies a failed handshake's error.
func Reason(err error) string {
	if err == nil {
		return Other
	}
	if errors.Is(err, io.EOF) {
		return Closed
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) {
		return Timeout
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return Reset
	}
	return reasonText(err.Error())
}

// reasonText classifies an error by its text: what net/http's error log
// gives, and the fallback of Reason.
func reasonText(msg string) string {
	switch {
	case msg == "EOF":
		return Closed
	case strings.Contains(msg, "first record does not look like a TLS handshake"),
		strings.Contains(msg, "HTTP request to an HTTPS server"),
		strings.Contains(msg, "oversized record"),
		strings.Contains(msg, "unsupported SSLv2"):
		return NotTLS
	case strings.Contains(msg, "didn't provide a certificate"), strings.Contains(msg, "presented no certificate"):
		return NoClientCertificate
	case strings.Contains(msg, "remote error"):
		return PeerRejected
	case strings.Contains(msg, "certificate"), strings.Contains(msg, "x509:"), strings.Contains(msg, "identity"):
		return BadCertificate
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "deadline exceeded"):
		return Timeout
	case strings.Contains(msg, "connection reset"), strings.Contains(msg, "broken pipe"):
		return Reset
	case strings.Contains(msg, "unexpected EOF"):
		return Closed
	case strings.Contains(msg, "tls:"):
		return Protocol
	}
	return Other
}

// Options configure a Log.
type Options struct {
	// Prefix starts every line, naming the listener: "inbound: ".
	Prefix string
	// Logf writes one line. Required.
	Logf func(format string, args ...any)
	// Every is the least time between two lines. Default: 1s.
	Every time.Duration
	// Counted, when set, is called with the reason of every refusal (a
	// Prometheus counter's Inc).
	Counted func(reason string)
}

// Log is one listener's refused handshakes: rate-limited lines and
// counters. Safe for concurrent use.
type Log struct {
	o      Options
	total  atomic.Uint64
	counts map[string]*atomic.Uint64 // every reason, fixed at New

	mu         sync.Mutex
	open       bool // a period is under way: refusals are summed up
	suppressed int
	lastAddr   string
	lastErr    string
	timer      *time.Timer
	closed     bool
}

// New returns a Log.
func New(o Options) *Log {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	l := &Log{o: o, counts: make(map[string]*atomic.Uint64, len(Reasons))}
	for _, r := range Reasons {
		l.counts[r] = new(atomic.Uint64)
	}
	return l
}

// Refused records a handshake from addr that failed with err, and returns
// its reason.
func (l *Log) Refused(addr string, err error) string {
	reason := Reason(err)
	l.record(addr, err.Error(), reason)
	return reason
}

func (l *Log) record(addr, msg, reason string) {
	l.total.Add(1)
	l.counts[reason].Add(1)
	if l.o.Counted != nil {
		l.o.Counted(reason)
	}
	if reason == Closed {
		return // a TCP health check or a scan: counted, not written
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.open {
		l.suppressed++
		l.lastAddr, l.lastErr = addr, msg
		return
	}
	l.o.Logf("%srefused connection from %s: TLS handshake: %s", l.o.Prefix, addr, msg)
	l.open = true
	l.timer = time.AfterFunc(l.o.Every, l.endPeriod)
}

// endPeriod writes the summary of the period that ends, if any refusal
// was held back, and starts another; a quiet period ends the rate limit.
func (l *Log) endPeriod() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.suppressed == 0 {
		l.open = false
		return
	}
	l.flush()
	l.timer = time.AfterFunc(l.o.Every, l.endPeriod)
}

func (l *Log) flush() {
	if l.suppressed == 0 {
		return
	}
	l.o.Logf("%s%d more refused handshakes in the last %v, last from %s: %s", l.o.Prefix, l.suppressed, l.o.Every, l.lastAddr, l.lastErr)
	l.suppressed = 0
}

// Close writes what is held back and stops the timer; later refusals are
// counted, not written.
func (l *Log) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.flush()
	l.open = false
}

// Counts are a Log's counters.
type Counts struct {
	Total    uint64            `json:"total"`
	ByReason map[string]uint64 `json:"by_reason,omitempty"`
}

// Counts returns the counters; ByReason holds the reasons seen.
func (l *Log) Counts() Counts {
	c := Counts{Total: l.total.Load()}
	for r, n := range l.counts {
		if v := n.Load(); v > 0 {
			if c.ByReason == nil {
				c.ByReason = map[string]uint64{}
			}
			c.ByReason[r] = v
		}
	}
	return c
}

// HTTPErrorLog is an error log for an http.Server that serves TLS: its
// "http: TLS handshake error from ADDR: ERR" lines go to l, every other
// line to w.
func HTTPErrorLog(l *Log, w io.Writer) *log.Logger {
	return log.New(&httpLogWriter{l: l, w: w}, "", log.LstdFlags)
}

type httpLogWriter struct {
	l *Log
	w io.Writer
}

const httpHandshakeError = "http: TLS handshake error from "

func (h *httpLogWriter) Write(p []byte) (int, error) {
	line := string(p)
	if i := strings.Index(line, httpHandshakeError); i >= 0 {
		rest := strings.TrimRight(line[i+len(httpHandshakeError):], "\n")
		// ADDR is host:port, or [v6]:port; ERR follows ": ".
		if addr, msg, ok := cutAddr(rest); ok {
			h.l.record(addr, msg, reasonText(msg))
			return len(p), nil
		}
	}
	return h.w.Write(p)
}

// cutAddr splits "ADDR: MSG" where ADDR itself may hold colons.
func cutAddr(s string) (addr, msg string, ok bool) {
	i := strings.Index(s, ": ")
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+2:], true
}
