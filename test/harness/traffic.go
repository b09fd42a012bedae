package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Traffic is the steady traffic of the failover proofs: it calls URLs in
// turn, a GET and a POST in turn, one call every 20 ms (or Every), until Run's
// context ends, and counts what happens. A call succeeds when the demo
// app answers 200 naming Service as itself and Caller as the caller's
// SPIFFE ID; a failed call is kept (the first 20) with its time, method,
// URL and error.
type Traffic struct {
	URLs            []string
	Service, Caller string
	Every           time.Duration // between calls; 0: 20 ms

	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
}

// Run sends the calls until ctx ends.
func (h *Traffic) Run(ctx context.Context) {
	c := &http.Client{Timeout: 10 * time.Second}
	every := h.Every
	if every <= 0 {
		every = 20 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		url := h.URLs[i%len(h.URLs)]
		var req *http.Request
		if i/len(h.URLs)%2 == 0 {
			req, _ = http.NewRequestWithContext(ctx, "GET", url, nil)
		} else {
			req, _ = http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		}
		err := h.once(c, req)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			h.fail.Add(1)
			h.mu.Lock()
			if len(h.errs) < 20 {
				h.errs = append(h.errs, time.Now().Format("15:04:05.000")+" "+req.Method+" "+url+": "+err.Error())
			}
			h.mu.Unlock()
			continue
		}
		h.ok.Add(1)
	}
}

func (h *Traffic) once(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return err
	}
	var got struct{ Service, Caller string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil || got.Service != h.Service || got.Caller != h.Caller {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return nil
}

// Answered and Failed count the calls so far.
func (h *Traffic) Answered() int64 { return h.ok.Load() }
func (h *Traffic) Failed() int64   { return h.fail.Load() }

// Errors are the first failed calls.
func (h *Traffic) Errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.errs)
}

// WaitCalls waits (30 s at most) until n more calls than now succeeded.
func (h *Traffic) WaitCalls(t *testing.T, what string, n int64) {
	t.Helper()
	want := h.ok.Load() + n
	Eventually(t, what, 30*time.Second, func() error {
		if h.ok.Load() < want {
			return fmt.Errorf("%d of %d calls answered, %d failed: %v", h.ok.Load(), want, h.fail.Load(), h.Errors())
		}
		return nil
	})
}
