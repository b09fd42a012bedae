package mirror

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/balance"
)

// timeout bounds one mirrored request; MaxInFlight bounds the copies in
// flight per Sender (one per upstream listener), past which copies are
// dropped, so a slow mirror never holds the caller back or piles up.
const (
	timeout     = 10 * time.Second
	MaxInFlight = 64
)

// Target is a compiled meshapi.Mirror.
type Target struct {
	Service string
	wantID  string
	// Percent is the share of the route's requests to copy.
	Percent int
	lb      balance.Balancer
}

// Compile compiles m; nil for none.
func Compile(m *meshapi.Mirror) *Target {
	if m == nil {
		return nil
	}
	eps := balance.Build(m.GetEndpoints(), nil)
	return &Target{Service: m.GetService(), wantID: m.GetSpiffeId(), Percent: int(m.GetPercent()), lb: balance.New(meshapi.LB_LB_ROUND_ROBIN, eps, nil)}
}

// Options are what a Sender needs from the sidecar.
type Options struct {
	// Dialer returns, once per mirror identity, how to dial a sidecar of
	// the mirror over mTLS, requiring the SPIFFE ID wantID.
	Dialer func(wantID string) func(ctx context.Context, addr string) (net.Conn, error)
	// Counted counts a copy by service and result: sent, error, dropped.
	Counted func(service, result string)
	// Logger receives failed copies.
	Logger *slog.Logger
}

// Sender sends copies of requests for one upstream listener.
type Sender struct {
	o     Options
	slots chan struct{}
	mu    sync.Mutex
	trs   map[string]*http.Transport // by the mirror's SPIFFE ID
}

// NewSender returns a sender with MaxInFlight slots.
func NewSender(o Options) *Sender {
	return &Sender{o: o, slots: make(chan struct{}, MaxInFlight)}
}

// Drop counts a copy of a request to t that is not sent (its body was too
// large to keep, or did not go out whole).
func (ms *Sender) Drop(t *Target) { ms.o.Counted(t.Service, "dropped") }

func (ms *Sender) transport(wantID string) *http.Transport {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if tr := ms.trs[wantID]; tr != nil {
		return tr
	}
	if ms.trs == nil {
		ms.trs = map[string]*http.Transport{}
	}
	dial := ms.o.Dialer(wantID)
	protos := new(http.Protocols)
	protos.SetHTTP2(true)
	tr := &http.Transport{
		Protocols: protos,
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, addr)
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

// Send copies r, with body, to the mirror m in the background when a slot
// is free, else drops it.
func (ms *Sender) Send(r *http.Request, body []byte, m *Target) {
	select {
	case ms.slots <- struct{}{}:
	default:
		ms.o.Counted(m.Service, "dropped")
		return
	}
	ep := m.lb.Pick(nil)
	if ep == nil {
		<-ms.slots
		ms.o.Counted(m.Service, "dropped")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
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
			ms.o.Counted(m.Service, "error")
			ms.o.Logger.Warn("mirror: sending a copy", "service", m.Service, "err", err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ms.o.Counted(m.Service, "sent")
	}()
}

// Close closes the idle connections to mirrors.
func (ms *Sender) Close() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, tr := range ms.trs {
		tr.CloseIdleConnections()
	}
}
