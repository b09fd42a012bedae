package retry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// MaxBody is the largest request body kept for retries; a request with a
// larger body is tried once.
const MaxBody = 64 << 10

// Policy is a compiled meshapi.RetryPolicy.
type Policy struct {
	attempts     int
	perTry       time.Duration
	on           map[string]bool
	grpcCodes    map[int]bool
	percent      int
	minPerSecond int
	budget       *Budget
}

var grpcRetryCodes = map[string]int{
	"cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14,
}

// New compiles rp. budget is the route's budget from the previous
// configuration, which carries over; nil starts a new one.
func New(rp *meshapi.RetryPolicy, budget *Budget) (*Policy, error) {
	p := &Policy{
		attempts:     int(rp.GetAttempts()),
		perTry:       rp.GetPerTryTimeout().AsDuration(),
		on:           map[string]bool{},
		grpcCodes:    map[int]bool{},
		percent:      int(rp.GetBudgetPercent()),
		minPerSecond: int(rp.GetBudgetMinPerSecond()),
		budget:       budget,
	}
	if p.budget == nil {
		p.budget = &Budget{now: time.Now}
	}
	for _, c := range rp.GetRetryOn() {
		switch c {
		case "5xx", "gateway-error", "reset", "connect-failure":
			p.on[c] = true
		default:
			code, ok := grpcRetryCodes[c]
			if !ok {
				return nil, fmt.Errorf("unknown retry condition %q", c)
			}
			p.grpcCodes[code] = true
		}
	}
	return p, nil
}

// Attempts is how many tries a request gets, the first included.
func (p *Policy) Attempts() int { return p.attempts }

// PerTry bounds the wait for each try's response headers (0: none).
func (p *Policy) PerTry() time.Duration { return p.perTry }

// Budget is the route's retry budget, to carry over to the next
// configuration.
func (p *Policy) Budget() *Budget { return p.budget }

// ReadsGRPCStatus reports whether the policy retries gRPC codes, so a
// response's gRPC status must be read (PeekGRPCStatus).
func (p *Policy) ReadsGRPCStatus() bool { return len(p.grpcCodes) > 0 }

// Request counts a request in the budget.
func (p *Policy) Request() { p.budget.request() }

// AllowRetry takes a retry from the budget, if there is one left.
func (p *Policy) AllowRetry() bool { return p.budget.allow(p.percent, p.minPerSecond) }

// RetriableError reports whether a failed try may be retried: after the
// per-try timeout, a failure to connect (dialFailed) on
// "connect-failure", any other failure on "reset".
func (p *Policy) RetriableError(dialFailed, perTryExpired bool) bool {
	if perTryExpired {
		return true
	}
	if dialFailed {
		return p.on["connect-failure"]
	}
	return p.on["reset"]
}

// RetriableStatus reports whether a response asks for a retry by its
// status or its gRPC status.
func (p *Policy) RetriableStatus(code int, grpcStatus string) bool {
	if code >= 500 && p.on["5xx"] {
		return true
	}
	if (code == 502 || code == 503 || code == 504) && p.on["gateway-error"] {
		return true
	}
	if grpcStatus != "" {
		n, err := strconv.Atoi(grpcStatus)
		return err == nil && p.grpcCodes[n]
	}
	return false
}

// BodyRecorder passes a request body through and keeps a copy of up to
// MaxBody bytes, so the body can be sent again (a retry, a mirror)
// once it went out whole. Close leaves the body open: the server closes
// it when the request ends, and a try whose dial failed leaves the rest
// for the next one.
type BodyRecorder struct {
	r    io.ReadCloser
	mu   sync.Mutex
	buf  []byte
	n    int64 // bytes read
	over bool  // more than MaxBody: no copy
	eof  bool
}

// NewBodyRecorder records r as it is read.
func NewBodyRecorder(r io.ReadCloser) *BodyRecorder { return &BodyRecorder{r: r} }

func (b *BodyRecorder) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.mu.Lock()
	b.n += int64(n)
	if !b.over {
		if len(b.buf)+n > MaxBody {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	b.mu.Unlock()
	return n, err
}

func (b *BodyRecorder) Close() error { return nil }

// Complete returns the whole body once it was read to the end, within
// MaxBody.
func (b *BodyRecorder) Complete() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, b.eof && !b.over
}

// Untouched reports whether nothing of the body was read yet.
func (b *BodyRecorder) Untouched() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n == 0 && !b.eof
}

type readCloser struct {
	io.Reader
	io.Closer
}

// PeekGRPCStatus returns the gRPC status of a response that carries one in
// its headers, or, for a response that ends without a message (a
// trailers-only answer moved to trailers by a sidecar), in its trailers.
// It may read the first chunk of the body, which it puts back.
func PeekGRPCStatus(resp *http.Response) string {
	if s := resp.Header.Get("Grpc-Status"); s != "" {
		return s
	}
	buf := make([]byte, 512)
	n, err := resp.Body.Read(buf)
	if n == 0 && err == io.EOF {
		return resp.Trailer.Get("Grpc-Status")
	}
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(buf[:n]), errReader{err}, resp.Body), resp.Body}
	return ""
}

// errReader returns err once (nil: nothing), so a peeked read error is
// seen in order.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil || e.err == io.EOF {
		return 0, io.EOF
	}
	return 0, e.err
}
