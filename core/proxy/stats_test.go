package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/spiffe"
)

func TestLatencyBucket(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {500 * time.Microsecond, 0}, {501 * time.Microsecond, 1}, {time.Millisecond, 1},
		{3 * time.Millisecond, 3}, {32768 * time.Millisecond, 16}, {time.Hour, 17},
	} {
		t.Run(tc.d.String(), func(t *testing.T) {
			if got := latencyBucket(tc.d); got != tc.want {
				t.Errorf("latencyBucket(%s) = %d, want %d", tc.d, got, tc.want)
			}
			// The sidecar's buckets are the bounds the controller reads.
			if tc.want < len(meshapi.LatencyBoundsMs) && float64(tc.d)/float64(time.Millisecond) > meshapi.LatencyBoundsMs[tc.want] {
				t.Errorf("%s is above bound %d, %vms", tc.d, tc.want, meshapi.LatencyBoundsMs[tc.want])
			}
		})
	}
}

func TestSucceeded(t *testing.T) {
	for _, tc := range []struct {
		code    int
		grpc    string
		refused bool
		want    bool
	}{
		{200, "", false, true}, {404, "", false, true}, {403, "", true, false}, {500, "", false, false},
		{503, "", false, false}, {0, "", false, false}, {200, "0", false, true}, {200, "5", false, true},
		{200, "14", false, false}, {200, "13", false, false}, {200, "junk", false, false},
	} {
		t.Run(strconv.Itoa(tc.code)+"/"+tc.grpc, func(t *testing.T) {
			if got := succeeded(tc.code, tc.grpc, tc.refused); got != tc.want {
				t.Errorf("succeeded(%d, %q, %v) = %v", tc.code, tc.grpc, tc.refused, got)
			}
		})
	}
}

// The counts of a report the controller did not take go into the next
// one: nothing is lost, nothing counted twice.
func TestReportKeepsWhatWasNotSent(t *testing.T) {
	s := newStats()
	web := spiffe.Identity{TrustDomain: "t", Namespace: "default", Service: "web"}
	c := s.caller(web)
	for range 3 {
		c.observe(true, time.Millisecond)
	}
	r1, _ := s.collect("api-0", time.Now(), time.Now()) // not sent: no commit
	if n := r1.Cells[0].Requests; n != 3 {
		t.Fatalf("first report: %d requests, want 3", n)
	}
	c.observe(false, 40*time.Millisecond)
	c.observe(true, time.Millisecond)
	r2, snap := s.collect("api-0", time.Now(), time.Now())
	if got := r2.Cells[0]; got.Requests != 5 || got.Successes != 4 || got.LatencyBuckets[1] != 4 || got.LatencyBuckets[7] != 1 {
		t.Fatalf("second report after a dropped one: %v, want 5 requests, 4 successes", got)
	}
	s.commit(snap)
	c.observe(true, time.Millisecond)
	r3, snap := s.collect("api-0", time.Now(), time.Now())
	if got := r3.Cells[0]; got.Requests != 1 || got.Peer != "web" || got.PeerNamespace != "default" {
		t.Fatalf("report after a sent one: %v, want 1 request of web", got)
	}
	s.commit(snap)
	if r4, _ := s.collect("api-0", time.Now(), time.Now()); len(r4.Cells) != 0 {
		t.Errorf("nothing happened, yet the report has %v", r4.Cells)
	}
}

// Callers the configuration did not name get cells up to a bound; the
// rest share the overflow cell.
func TestCallerCellsAreBounded(t *testing.T) {
	s := newStats()
	for i := range maxCallerCells + 10 {
		s.caller(spiffe.Identity{Namespace: "default", Service: "svc" + strconv.Itoa(i)}).observe(true, 0)
	}
	if got := s.other.requests.Load(); got != 10 {
		t.Errorf("overflow cell counted %d, want the 10 callers past %d", got, maxCallerCells)
	}
	if n := len(*s.callers.Load()); n != maxCallerCells {
		t.Errorf("%d caller cells, want %d", n, maxCallerCells)
	}
	// A caller the configuration's intentions name has its cell whatever
	// came before.
	s.bind(&meshapi.ProxyConfig{Namespace: "default", Inbound: &meshapi.Inbound{Authz: &meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "named"}}}}})
	if c := s.caller(spiffe.Identity{Namespace: "default", Service: "named"}); c == s.other {
		t.Error("a caller an intention names went to the overflow cell")
	}
}

// Denials are kept for the next report, the latest maxDenials.
func TestReportCarriesDenials(t *testing.T) {
	s := newStats()
	id := spiffe.Identity{TrustDomain: "t", Namespace: "default", Service: "web"}
	for i := range maxDenials + 5 {
		s.denied(s.caller(id), id, "GET", "/p"+strconv.Itoa(i)+"\xff", "no intention allows web")
	}
	r, _ := s.collect("api-0", time.Now(), time.Now())
	if len(r.Denials) != maxDenials || r.Denials[maxDenials-1].Path != "/p"+strconv.Itoa(maxDenials+4) || r.Cells[0].Denied != maxDenials+5 {
		t.Fatalf("denials %v, cell %v", r.Denials, r.Cells)
	}
	if r2, _ := s.collect("api-0", time.Now(), time.Now()); len(r2.Denials) != 0 {
		t.Errorf("denials reported twice: %v", r2.Denials)
	}
}

// slowSender never takes a report until released; it counts the calls.
type slowSender struct {
	mu    sync.Mutex
	calls int
	got   []*meshapi.StatsReport
	fail  bool
}

func (s *slowSender) SendStats(ctx context.Context, r *meshapi.StatsReport) error {
	s.mu.Lock()
	s.calls++
	fail := s.fail
	s.mu.Unlock()
	if fail {
		<-ctx.Done() // a controller that does not read
		return ctx.Err()
	}
	s.mu.Lock()
	s.got = append(s.got, r)
	s.mu.Unlock()
	return nil
}

// A controller that does not take reports costs the sidecar nothing but
// a dropped report per interval, and the counts come with the next one
// it takes.
func TestRunReportsDropsAndCatchesUp(t *testing.T) {
	p := New(Options{Log: discard{}})
	defer p.Close()
	p.applied.Store(&appliedConfig{version: 1, cfg: &meshapi.ProxyConfig{InstanceId: "api-0"}})
	web := spiffe.Identity{Namespace: "default", Service: "web"}
	for range 7 {
		p.stats.caller(web).observe(true, time.Millisecond)
	}
	snd := &slowSender{fail: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.RunReports(ctx, 20*time.Millisecond, snd) }()
	waitFor(t, func() bool { return p.stats.dropped.Load() >= 2 })
	snd.mu.Lock()
	snd.fail = false
	snd.mu.Unlock()
	waitFor(t, func() bool { snd.mu.Lock(); defer snd.mu.Unlock(); return len(snd.got) > 0 })
	cancel()
	<-done
	var n uint64
	for _, r := range snd.got {
		for _, c := range r.Cells {
			n += c.Requests
		}
	}
	if n != 7 || snd.got[0].ReportsDropped < 2 || snd.got[0].InstanceId != "api-0" {
		t.Errorf("reports after the drops: %d requests (want 7), first %v", n, snd.got[0])
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// Counting a request for the report and for Prometheus (with route and
// subset labels) allocates nothing, inbound and outbound.
func TestAccountingAllocatesNothing(t *testing.T) {
	p := New(Options{Log: discard{}})
	defer p.Close()
	caller := spiffe.Identity{TrustDomain: "t", Namespace: "default", Service: "web"}
	rec := &statusWriter{ResponseWriter: httptest.NewRecorder(), code: 200}
	st := &outboundState{service: "api", all: &pool{}}
	sub := &pool{subset: "v2"}
	rt := &route{name: "canary", splits: []*pool{sub}}
	st.routes = []*route{rt}
	p.stats.bindOutbound(st, "spiffe://t/ns/default/svc/api")
	o := &outbound{p: p}
	pk := &picked{route: rt, pool: sub}
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"inbound", func() {
			p.metrics.request(dirInbound, caller.Service, "", "", rec.status(), time.Millisecond)
			p.stats.inbound(caller, rec, false, time.Millisecond)
		}},
		{"outbound by route and subset", func() { o.count(st, pk, http.StatusOK, rec.grpcStatus(), time.Millisecond) }},
		{"outbound before routing", func() { o.count(st, nil, http.StatusBadRequest, "", time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f() // the first request of a series makes it
			if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
				t.Errorf("%v allocations per request", n)
			}
		})
	}
	if sub.cell.requests.Load() == 0 || st.all.cell.requests.Load() == 0 {
		t.Error("the outbound cells counted nothing")
	}
}

// BenchmarkRequestAccounting is what reporting and the route and subset
// labels add to a request: go test -run - -bench RequestAccounting
// -benchmem ./core/proxy (0 allocs/op).
func BenchmarkRequestAccounting(b *testing.B) {
	p := New(Options{Log: discard{}})
	defer p.Close()
	caller := spiffe.Identity{TrustDomain: "t", Namespace: "default", Service: "web"}
	rec := &statusWriter{ResponseWriter: httptest.NewRecorder(), code: 200}
	st := &outboundState{service: "api", all: &pool{}}
	sub := &pool{subset: "v2"}
	rt := &route{name: "canary", splits: []*pool{sub}}
	st.routes = []*route{rt}
	p.stats.bindOutbound(st, "spiffe://t/ns/default/svc/api")
	o := &outbound{p: p}
	pk := &picked{route: rt, pool: sub}
	b.Run("inbound", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.metrics.request(dirInbound, caller.Service, "", "", rec.status(), time.Millisecond)
			p.stats.inbound(caller, rec, false, time.Millisecond)
		}
	})
	b.Run("outbound", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			o.count(st, pk, http.StatusOK, "", time.Millisecond)
		}
	})
	b.Run("reporting_only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.stats.inbound(caller, rec, false, time.Millisecond)
		}
	})
}
