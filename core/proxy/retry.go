package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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

// bufferBody reads up to maxRetryBody of req's body so it can be sent
// again. It returns false, with the body left readable, when the body is
// larger.
func bufferBody(req *http.Request) ([]byte, bool, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, true, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, maxRetryBody+1))
	if err != nil {
		return nil, false, fmt.Errorf("reading the request body: %w", err)
	}
	if len(buf) > maxRetryBody {
		req.Body = readCloser{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return nil, false, nil
	}
	req.Body.Close()
	return buf, true, nil
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
