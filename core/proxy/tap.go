package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/spiffe"
)

// Tap (`weft tap`, `weft top`): the controller asks a sidecar, on the Tap
// stream the sidecar keeps open beside its config stream, to send an event
// of every request that matches a filter, until an end time. With no tap
// running, what a request pays is one atomic load (tapping).
//
// Bounds: at most MaxTaps taps per sidecar (older ones beyond it are
// ignored), each at most its max_rps events a second (MaxTapRPS at
// most), and the sidecar at most MaxTapEventsPerSecond in all; events wait
// for the stream in a queue of tapQueue and are dropped (and counted, in
// the next message's dropped) when it is full: a slow controller or client
// never holds up a request.
const (
	MaxTaps               = 16
	MaxTapRPS             = 1000
	MaxTapEventsPerSecond = 2000
	tapQueue              = 512
	tapBatch              = 64
)

// tapper holds the taps a sidecar runs.
type tapper struct {
	// taps is nil when none runs: the one load a request pays.
	taps atomic.Pointer[[]*tapSpec]

	mu      sync.Mutex // serializes changes of taps
	events  chan *meshapi.TapEvent
	started chan uint64 // taps started, for the next message
	dropped atomic.Uint64
	all     tokenBucket // MaxTapEventsPerSecond
}

// tapSpec is one running tap.
type tapSpec struct {
	req *meshapi.TapRequest
	end time.Time
	rps tokenBucket
}

// tokenBucket allows rate events a second, with a burst of one second's.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time, rate float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens, b.last = rate, now
	}
	b.tokens = min(rate, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// tapping reports whether any tap runs: the only cost of tap on a
// request's path when none does.
func (p *Proxy) tapping() bool { return p.tap.taps.Load() != nil }

// Taps reports the IDs of the taps the proxy runs now (for tests and the
// admin page).
func (p *Proxy) Taps() []uint64 {
	var ids []uint64
	if ts := p.tap.taps.Load(); ts != nil {
		for _, t := range *ts {
			ids = append(ids, t.req.GetId())
		}
	}
	return ids
}

// startTap adds (or, with stop, removes) a tap, and drops expired ones.
func (t *tapper) apply(req *meshapi.TapRequest, now time.Time) (started bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keep []*tapSpec
	if cur := t.taps.Load(); cur != nil {
		for _, s := range *cur {
			if s.req.GetId() != req.GetId() && now.Before(s.end) {
				keep = append(keep, s)
			}
		}
	}
	end := time.UnixMilli(req.GetEndUnixMs())
	if !req.GetStop() && now.Before(end) && len(keep) < MaxTaps {
		s := &tapSpec{req: req, end: end}
		keep = append(keep, s)
		started = true
	}
	t.set(keep)
	return started
}

// set installs taps (nil when empty, so requests see none). t.mu held.
func (t *tapper) set(taps []*tapSpec) {
	if len(taps) == 0 {
		t.taps.Store(nil)
		return
	}
	t.taps.Store(&taps)
}

// expire drops the taps that have ended.
func (t *tapper) expire(now time.Time) {
	t.apply(&meshapi.TapRequest{Stop: true}, now)
}

// clear drops every tap (the stream that carried them ended).
func (t *tapper) clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.set(nil)
}

// match returns the IDs of the taps ev matches and whose rate allows it,
// nil when none.
func (t *tapper) match(ev *meshapi.TapEvent, fromNS string, now time.Time) []uint64 {
	ts := t.taps.Load()
	if ts == nil {
		return nil
	}
	var ids []uint64
	for _, s := range *ts {
		r := s.req
		switch {
		case !now.Before(s.end),
			ev.Inbound && !r.GetInbound(),
			!ev.Inbound && !r.GetOutbound(),
			ev.Inbound && r.GetFromService() != "" && r.GetFromService() != serviceOf(ev.Caller),
			ev.Inbound && r.GetFromNamespace() != "" && r.GetFromNamespace() != fromNS,
			!ev.Inbound && r.GetToService() != "" && r.GetToService() != ev.Callee,
			r.GetMethod() != "" && r.GetMethod() != ev.Method,
			!strings.HasPrefix(ev.Path, r.GetPathPrefix()):
			continue
		}
		rate := float64(min(max(r.GetMaxRps(), 1), MaxTapRPS))
		if !s.rps.take(now, rate) {
			t.dropped.Add(1)
			continue
		}
		ids = append(ids, r.GetId())
	}
	return ids
}

// serviceOf is the service of a SPIFFE ID, "" when it is none.
func serviceOf(id string) string {
	if i := strings.LastIndex(id, "/svc/"); i >= 0 {
		return id[i+len("/svc/"):]
	}
	return ""
}

// emit queues ev for the stream, or drops and counts it.
func (t *tapper) emit(ev *meshapi.TapEvent, now time.Time) {
	if !t.all.take(now, MaxTapEventsPerSecond) {
		t.dropped.Add(1)
		return
	}
	t.mu.Lock()
	ch := t.events
	t.mu.Unlock()
	select {
	case ch <- ev:
	default:
		t.dropped.Add(1)
	}
}

// tapInbound reports a request the inbound listener served or refused
// (denied: why authorization refused it) to the taps it matches. Call it
// only when tapping.
func (p *Proxy) tapInbound(r *http.Request, caller spiffe.Identity, service string, w *statusWriter, start time.Time, d time.Duration, denied string) {
	p.tapInboundView(tapView{method: r.Method, authority: r.Host, path: r.URL.Path, status: w.status(), grpcStatus: w.grpcStatus(),
		reqBytes: r.ContentLength, respBytes: w.out}, caller, service, start, d, denied)
}

// tapView is what a tap reads of an inbound request and its response,
// from either HTTP/1.1 engine.
type tapView struct {
	method, authority, path string
	status                  int
	grpcStatus              string
	reqBytes, respBytes     int64
}

// tapInboundView is tapInbound for a request seen as v.
func (p *Proxy) tapInboundView(v tapView, caller spiffe.Identity, service string, start time.Time, d time.Duration, denied string) {
	now := time.Now()
	ev := &meshapi.TapEvent{
		UnixNano: start.UnixNano(), Inbound: true, Caller: caller.String(), Callee: service,
		Method: v.method, Authority: v.authority, Path: v.path, Status: uint32(v.status), GrpcStatus: v.grpcStatus,
		LatencyUs: d.Microseconds(), RequestBytes: v.reqBytes, ResponseBytes: v.respBytes, Denied: denied,
	}
	if ev.TapIds = p.tap.match(ev, caller.Namespace, now); ev.TapIds != nil {
		p.tap.emit(ev, now)
	}
}

// tapOutbound reports a request the outbound listener of upstream service
// served to the taps it matches. Call it only when tapping.
func (p *Proxy) tapOutbound(r *http.Request, service string, pk *picked, w *statusWriter, start time.Time, d time.Duration) {
	now := time.Now()
	ev := &meshapi.TapEvent{
		UnixNano: start.UnixNano(), Callee: service, UpstreamInstance: pk.addr,
		Method: r.Method, Authority: r.Host, Path: r.URL.Path, Status: uint32(w.status()), GrpcStatus: w.grpcStatus(),
		LatencyUs: d.Microseconds(), RequestBytes: r.ContentLength, ResponseBytes: w.out, Tries: uint32(pk.tries),
	}
	if c := p.creds.Load(); c != nil {
		ev.Caller = c.ID.String()
	}
	if pk.route != nil {
		ev.Route = pk.route.name
	}
	if ev.TapIds = p.tap.match(ev, "", now); ev.TapIds != nil {
		p.tap.emit(ev, now)
	}
}

// RunTap keeps the proxy's Tap stream open on cc, the controller
// connection its config stream uses, until ctx ends, reopening it with
// backoff when it breaks; a controller without the Tap RPC is left alone.
// control.Options.Beside runs it (NewClient sets it).
func (p *Proxy) RunTap(ctx context.Context, cc grpc.ClientConnInterface, instanceID string) {
	bo := backoff.New(200*time.Millisecond, 10*time.Second)
	for {
		got, err := p.tapOnce(ctx, cc, instanceID)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			p.log.Info("the controller does not serve tap (an older version): weft tap will not see this sidecar")
			return
		}
		if got {
			bo.Reset()
		}
		d := bo.Next()
		p.log.Debug("tap stream ended; reopening", "err", err, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// tapOnce runs one Tap stream: the first message names the instance; the
// controller's requests start and stop taps; events go out in batches.
func (p *Proxy) tapOnce(ctx context.Context, cc grpc.ClientConnInterface, instanceID string) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := meshapi.NewMeshClient(cc).Tap(sctx)
	if err != nil {
		return false, err
	}
	t := &p.tap
	t.mu.Lock()
	t.events = make(chan *meshapi.TapEvent, tapQueue)
	t.started = make(chan uint64, MaxTaps*4)
	events, started := t.events, t.started
	t.mu.Unlock()
	defer t.clear()
	if err := stream.Send(&meshapi.TapEvents{InstanceId: instanceID}); err != nil {
		return false, err
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if t.apply(req, time.Now()) {
				select {
				case started <- req.GetId():
				default:
				}
			}
		}
	}()
	expire := time.NewTicker(time.Second)
	defer expire.Stop()
	for {
		msg := &meshapi.TapEvents{}
		select {
		case <-ctx.Done():
			return got, nil
		case err := <-recvErr:
			if errors.Is(err, context.Canceled) {
				return got, nil
			}
			return got, err
		case <-expire.C:
			t.expire(time.Now())
			if n := t.dropped.Swap(0); n > 0 {
				msg.Dropped = n
				break
			}
			continue
		case id := <-started:
			got = true
			msg.Started = append(msg.Started, id)
		case ev := <-events:
			msg.Events = append(msg.Events, ev)
		}
	batch:
		for len(msg.Events) < tapBatch {
			select {
			case ev := <-events:
				msg.Events = append(msg.Events, ev)
			case id := <-started:
				msg.Started = append(msg.Started, id)
			default:
				break batch
			}
		}
		msg.Dropped += t.dropped.Swap(0)
		if err := stream.Send(msg); err != nil {
			return got, err
		}
	}
}
