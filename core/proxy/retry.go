package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// maxRetryBody is the largest request body kept for retries; a request
// with a larger body is tried once.
const maxRetryBody = 64 << 10

// retryPolicy is a compiled meshapi.RetryPolicy.
type retryPolicy struct {
	attempts     int
	perTry       time.Duration
	on           map[string]bool
	grpcCodes    map[int]bool
	percent      int
	minPerSecond int
	budget       *retryBudget
}

var grpcRetryCodes = map[string]int{
	"cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14,
}

func newRetryPolicy(rp *meshapi.RetryPolicy, budget *retryBudget) (*retryPolicy, error) {
	p := &retryPolicy{
		attempts:     int(rp.GetAttempts()),
		perTry:       rp.GetPerTryTimeout().AsDuration(),
		on:           map[string]bool{},
		grpcCodes:    map[int]bool{},
		percent:      int(rp.GetBudgetPercent()),
		minPerSecond: int(rp.GetBudgetMinPerSecond()),
		budget:       budget,
	}
	if p.budget == nil {
		p.budget = &retryBudget{now: time.Now}
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

// retriableError reports whether a failed try may be retried.
func (p *retryPolicy) retriableError(err error, perTryExpired bool) bool {
	if perTryExpired {
		return true
	}
	var de *dialError
	if errors.As(err, &de) {
		return p.on["connect-failure"]
	}
	return p.on["reset"]
}

// retriableStatus reports whether a response asks for a retry by its
// status or its gRPC status.
func (p *retryPolicy) retriableStatus(code int, grpcStatus string) bool {
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

// bodyRecorder passes a request body through and keeps a copy of up to
// maxRetryBody bytes, so the body can be sent again (a retry, a mirror)
// once it went out whole. Close leaves the body open: the server closes
// it when the request ends, and a try whose dial failed leaves the rest
// for the next one.
type bodyRecorder struct {
	r    io.ReadCloser
	mu   sync.Mutex
	buf  []byte
	n    int64 // bytes read
	over bool  // more than maxRetryBody: no copy
	eof  bool
}

func (b *bodyRecorder) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.mu.Lock()
	b.n += int64(n)
	if !b.over {
		if len(b.buf)+n > maxRetryBody {
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

func (b *bodyRecorder) Close() error { return nil }

// complete returns the whole body once it was read to the end, within
// maxRetryBody.
func (b *bodyRecorder) complete() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, b.eof && !b.over
}

// untouched reports whether nothing of the body was read yet.
func (b *bodyRecorder) untouched() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n == 0 && !b.eof
}

type readCloser struct {
	io.Reader
	io.Closer
}

// peekGRPCStatus returns the gRPC status of a response that carries one in
// its headers, or, for a response that ends without a message (a
// trailers-only answer moved to trailers by a sidecar), in its trailers.
// It may read the first chunk of the body, which it puts back.
func peekGRPCStatus(resp *http.Response) string {
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
