package proxy

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

func tapReq(id uint64, end time.Time, mod func(*meshapi.TapRequest)) *meshapi.TapRequest {
	r := &meshapi.TapRequest{Id: id, Inbound: true, Outbound: true, MaxRps: MaxTapRPS, EndUnixMs: end.UnixMilli()}
	if mod != nil {
		mod(r)
	}
	return r
}

const clientID = "spiffe://weft.test/ns/shop/svc/client"

// Each filter of a tap holds on the sidecar: a request that fails one
// matches nothing.
func TestTapMatch(t *testing.T) {
	now := time.Now()
	end := now.Add(time.Minute)
	in := func() *meshapi.TapEvent {
		return &meshapi.TapEvent{Inbound: true, Caller: clientID, Callee: "api", Method: "GET", Path: "/orders/1"}
	}
	out := func() *meshapi.TapEvent {
		return &meshapi.TapEvent{Caller: "spiffe://weft.test/ns/shop/svc/api", Callee: "db", Method: "POST", Path: "/q"}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*meshapi.TapRequest)
		ev    func() *meshapi.TapEvent
		match bool
	}{
		{"any inbound", nil, in, true},
		{"any outbound", nil, out, true},
		{"inbound only skips outbound", func(r *meshapi.TapRequest) { r.Outbound = false }, out, false},
		{"outbound only skips inbound", func(r *meshapi.TapRequest) { r.Inbound = false }, in, false},
		{"from the caller", func(r *meshapi.TapRequest) { r.FromService = "client" }, in, true},
		{"from another caller", func(r *meshapi.TapRequest) { r.FromService = "web" }, in, false},
		{"from the caller's namespace", func(r *meshapi.TapRequest) { r.FromService, r.FromNamespace = "client", "shop" }, in, true},
		{"from the caller's name in another namespace", func(r *meshapi.TapRequest) { r.FromService, r.FromNamespace = "client", "default" }, in, false},
		{"to the upstream", func(r *meshapi.TapRequest) { r.ToService = "db" }, out, true},
		{"to another upstream", func(r *meshapi.TapRequest) { r.ToService = "cache" }, out, false},
		{"path prefix", func(r *meshapi.TapRequest) { r.PathPrefix = "/orders/" }, in, true},
		{"other path prefix", func(r *meshapi.TapRequest) { r.PathPrefix = "/admin" }, in, false},
		{"method", func(r *meshapi.TapRequest) { r.Method = "GET" }, in, true},
		{"method is case-sensitive", func(r *meshapi.TapRequest) { r.Method = "get" }, in, false},
		{"ended", func(r *meshapi.TapRequest) { r.EndUnixMs = now.Add(-time.Second).UnixMilli() }, in, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tp tapper
			r := tapReq(7, end, tc.mod)
			tp.taps.Store(&[]*tapSpec{{req: r, end: time.UnixMilli(r.EndUnixMs)}})
			ids := tp.match(tc.ev(), "shop", now)
			if got := len(ids) == 1 && ids[0] == 7; got != tc.match {
				t.Errorf("matched %v, want match %v", ids, tc.match)
			}
		})
	}
}

// A tap sends at most its max_rps events a second, and the sidecar at most
// MaxTapEventsPerSecond in all; the rest are counted as dropped.
func TestTapRates(t *testing.T) {
	now := time.Now()
	var tp tapper
	tp.apply(tapReq(1, now.Add(time.Minute), func(r *meshapi.TapRequest) { r.MaxRps = 5 }), now)
	n := 0
	for range 100 {
		if tp.match(&meshapi.TapEvent{Inbound: true, Path: "/"}, "", now) != nil {
			n++
		}
	}
	if n != 5 || tp.dropped.Load() != 95 {
		t.Errorf("a tap of max_rps 5 passed %d of 100 events at once, dropped %d; want 5 and 95", n, tp.dropped.Load())
	}
	// A second later, 5 more.
	if tp.match(&meshapi.TapEvent{Inbound: true, Path: "/"}, "", now.Add(time.Second)) == nil {
		t.Error("the tap's rate did not refill after a second")
	}
	// max_rps 0 or past MaxTapRPS is held within 1..MaxTapRPS.
	var big tapper
	big.apply(tapReq(2, now.Add(time.Minute), func(r *meshapi.TapRequest) { r.MaxRps = 1 << 30 }), now)
	n = 0
	for range 3 * MaxTapRPS {
		if big.match(&meshapi.TapEvent{Inbound: true, Path: "/"}, "", now) != nil {
			n++
		}
	}
	if n != MaxTapRPS {
		t.Errorf("a tap asking for max_rps 2^30 passed %d events in an instant, want at most %d", n, MaxTapRPS)
	}

	// The sidecar's own cap, over every tap.
	var all tapper
	all.events = make(chan *meshapi.TapEvent, 4*MaxTapEventsPerSecond)
	for range 2 * MaxTapEventsPerSecond {
		all.emit(&meshapi.TapEvent{}, now)
	}
	if got := len(all.events); got != MaxTapEventsPerSecond || all.dropped.Load() != MaxTapEventsPerSecond {
		t.Errorf("the sidecar queued %d of %d events in an instant and dropped %d; want %d queued", got, 2*MaxTapEventsPerSecond, all.dropped.Load(), MaxTapEventsPerSecond)
	}
}

// A stream that does not keep up never blocks a request: events past the
// queue are dropped and counted.
func TestTapQueueFullDrops(t *testing.T) {
	now := time.Now()
	var tp tapper
	tp.events = make(chan *meshapi.TapEvent, 3)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			tp.emit(&meshapi.TapEvent{}, now.Add(time.Duration(i)*time.Millisecond))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("emit blocked on a full queue")
	}
	if len(tp.events) != 3 || tp.dropped.Load() != 7 {
		t.Errorf("queued %d, dropped %d; want 3 and 7", len(tp.events), tp.dropped.Load())
	}
	// No stream yet (no queue): every event is dropped, nothing blocks.
	var none tapper
	none.emit(&meshapi.TapEvent{}, now)
	if none.dropped.Load() != 1 {
		t.Errorf("an event without a stream was not counted as dropped")
	}
}

// Taps start and stop, end at their time, are capped at MaxTaps, and with
// none left the request path sees nil again (its one atomic load).
func TestTapLifecycle(t *testing.T) {
	now := time.Now()
	var p Proxy
	if p.tapping() {
		t.Fatal("a new proxy taps")
	}
	if !p.tap.apply(tapReq(1, now.Add(time.Minute), nil), now) || !p.tapping() {
		t.Fatal("a tap did not start")
	}
	if p.tap.apply(tapReq(2, now.Add(-time.Second), nil), now) {
		t.Error("a tap whose end has passed started")
	}
	p.tap.apply(&meshapi.TapRequest{Id: 1, Stop: true}, now)
	if p.tapping() {
		t.Errorf("taps %v run after the only one stopped", p.Taps())
	}
	for i := range MaxTaps + 4 {
		p.tap.apply(tapReq(uint64(10+i), now.Add(time.Minute), nil), now)
	}
	if n := len(p.Taps()); n != MaxTaps {
		t.Errorf("%d taps run, want at most %d", n, MaxTaps)
	}
	p.tap.expire(now.Add(2 * time.Minute))
	if p.tapping() {
		t.Errorf("taps %v run after their end", p.Taps())
	}
}
