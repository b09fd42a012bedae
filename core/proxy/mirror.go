package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/balance"
)

// mirrorTimeout bounds one mirrored request; maxMirrors bounds the copies
// in flight per upstream listener, past which copies are dropped, so a slow
// mirror never holds the caller back or piles up.
const (
	mirrorTimeout = 10 * time.Second
	maxMirrors    = 64
)

// mirrorTarget is a compiled meshapi.Mirror.
type mirrorTarget struct {
	service string
	wantID  string
	percent int
	lb      balancer
}

func compileMirror(m *meshapi.Mirror) *mirrorTarget {
	if m == nil {
		return nil
	}
	eps := balance.Build(m.GetEndpoints(), nil)
	return &mirrorTarget{service: m.GetService(), wantID: m.GetSpiffeId(), percent: int(m.GetPercent()), lb: balance.New(meshapi.LB_LB_ROUND_ROBIN, eps, nil)}
}

// mirrors sends copies of requests for one upstream listener.
type mirrors struct {
	p     *Proxy
	slots chan struct{}
	mu    sync.Mutex
	trs   map[string]*http.Transport // by the mirror's SPIFFE ID
}

func (ms *mirrors) transport(wantID string) *http.Transport {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if tr := ms.trs[wantID]; tr != nil {
		return tr
	}
	if ms.trs == nil {
		ms.trs = map[string]*http.Transport{}
	}
	cfg := ms.p.clientTLS(func() string { return wantID }, []string{"h2"})
	tr := &http.Transport{
		Protocols: protocols(false, true, false),
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialMesh(ctx, addr, cfg, ms.p.opts.DialTimeout)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	ms.trs[wantID] = tr
	return tr
}

// hopHeaders are not copied to a mirrored request.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade"}

// send copies r, with body, to the mirror in the background when a slot
// is free.
func (ms *mirrors) send(r *http.Request, body []byte, m *mirrorTarget) {
	select {
	case ms.slots <- struct{}{}:
	default:
		ms.p.metrics.mirrored.WithLabelValues(m.service, "dropped").Inc()
		return
	}
	ep := m.lb.Pick(nil)
	if ep == nil {
		<-ms.slots
		ms.p.metrics.mirrored.WithLabelValues(m.service, "dropped").Inc()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), mirrorTimeout)
	u := *r.URL
	u.Scheme, u.Host = "https", ep.Addr
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		cancel()
		<-ms.slots
		return
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Host = r.Host + "-shadow"
	if len(body) == 0 {
		out.Body = http.NoBody
	}
	tr := ms.transport(m.wantID)
	go func() {
		defer func() { <-ms.slots }()
		defer cancel()
		resp, err := tr.RoundTrip(out)
		if err != nil {
			ms.p.metrics.mirrored.WithLabelValues(m.service, "error").Inc()
			ms.p.log.Warn("mirror: sending a copy", "service", m.service, "err", err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ms.p.metrics.mirrored.WithLabelValues(m.service, "sent").Inc()
	}()
}

func (ms *mirrors) close() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, tr := range ms.trs {
		tr.CloseIdleConnections()
	}
}
