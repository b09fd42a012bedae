package telemetry

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
)

// clock is a settable time for the collector.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// hist is a histogram with n requests in the bucket of ms.
func hist(n uint64, ms float64) []uint64 {
	b := make([]uint64, meshapi.LatencyBuckets)
	b[Bucket(ms)] = n
	return b
}

func in(peer string, req, ok uint64, ms float64) *meshapi.StatsCell {
	return &meshapi.StatsCell{Direction: meshapi.StatsDirection_STATS_INBOUND, Peer: peer, PeerNamespace: "default", Requests: req, Successes: ok, LatencyBuckets: hist(req, ms)}
}

func out(peer, route, subset string, req, ok uint64, ms float64) *meshapi.StatsCell {
	return &meshapi.StatsCell{Direction: meshapi.StatsDirection_STATS_OUTBOUND, Peer: peer, PeerNamespace: "default", Route: route, Subset: subset,
		Requests: req, Successes: ok, LatencyBuckets: hist(req, ms)}
}

type rec struct {
	at       time.Duration // after t0
	instance string
	service  string
	cells    []*meshapi.StatsCell
}

func edgeOf(r api.StatsReport, caller, callee string) *api.EdgeStats {
	for i, e := range r.Edges {
		if e.Caller == caller && e.Callee == callee {
			return &r.Edges[i]
		}
	}
	return nil
}

func serviceOf(r api.StatsReport, svc string) *api.ServiceStats {
	for i, s := range r.Services {
		if s.Service == svc {
			return &r.Services[i]
		}
	}
	return nil
}

func TestCollector(t *testing.T) {
	for _, tc := range []struct {
		name   string
		recs   []rec
		now    time.Duration
		window time.Duration
		check  func(t *testing.T, r api.StatsReport)
	}{{
		name: "deltas of two instances and two reports add up",
		recs: []rec{
			{1 * time.Second, "api-0", "api", []*meshapi.StatsCell{in("web", 10, 9, 3)}},
			{2 * time.Second, "api-1", "api", []*meshapi.StatsCell{in("web", 5, 5, 3)}},
			{12 * time.Second, "api-0", "api", []*meshapi.StatsCell{in("web", 5, 4, 3)}},
		},
		now: 15 * time.Second, window: time.Minute,
		check: func(t *testing.T, r api.StatsReport) {
			s := serviceOf(r, "api")
			if s == nil || s.Golden.Requests != 20 || s.Golden.Successes != 18 || s.Instances != 2 || s.Golden.SuccessRate != 0.9 {
				t.Fatalf("service api: %+v", s)
			}
			if e := edgeOf(r, "web", "api"); e == nil || e.Golden.Requests != 20 {
				t.Fatalf("edge web -> api: %+v", e)
			}
			if r.ReportingSidecars != 2 || len(r.Instances) != 2 || r.Instances[0].Golden.Requests != 15 {
				t.Errorf("instances: %d reporting, %+v", r.ReportingSidecars, r.Instances)
			}
			if b := Bucket(s.Golden.P99Ms); b != Bucket(3) {
				t.Errorf("p99 %vms in bucket %d, want %d", s.Golden.P99Ms, b, Bucket(3))
			}
			if len(s.Series) != 6 || s.Series[5].RPS != 0.5 || s.Series[4].RPS != 1.5 {
				t.Errorf("series %+v, want 6 steps ending 1.5, 0.5 rps", s.Series)
			}
		},
	}, {
		name: "a report older than the window is gone",
		recs: []rec{
			{0, "api-0", "api", []*meshapi.StatsCell{in("web", 100, 100, 1)}},
			{5 * time.Minute, "api-0", "api", []*meshapi.StatsCell{in("web", 7, 7, 1)}},
		},
		now: 5*time.Minute + time.Second, window: time.Minute,
		check: func(t *testing.T, r api.StatsReport) {
			if s := serviceOf(r, "api"); s == nil || s.Golden.Requests != 7 {
				t.Fatalf("service api: %+v, want the newest 7 requests only", s)
			}
		},
	}, {
		name: "the ring forgets what is older than it keeps",
		recs: []rec{
			{0, "api-0", "api", []*meshapi.StatsCell{in("web", 100, 100, 1)}},
			// The same slot of the ring, ten minutes on.
			{10 * time.Minute, "api-0", "api", []*meshapi.StatsCell{in("web", 1, 1, 1)}},
		},
		now: 10*time.Minute + time.Second, window: 10 * time.Minute,
		check: func(t *testing.T, r api.StatsReport) {
			if s := serviceOf(r, "api"); s == nil || s.Golden.Requests != 1 {
				t.Fatalf("service api: %+v, want 1 request", s)
			}
		},
	}, {
		name: "a report the sidecar could not send arrives merged into the next: nothing lost",
		recs: []rec{
			// 3 s of traffic dropped, then sent with the next 3 s.
			{4 * time.Second, "api-0", "api", []*meshapi.StatsCell{in("web", 60, 60, 2)}},
		},
		now: 5 * time.Second, window: time.Minute,
		check: func(t *testing.T, r api.StatsReport) {
			if s := serviceOf(r, "api"); s == nil || s.Golden.Requests != 60 {
				t.Fatalf("service api: %+v", s)
			}
		},
	}, {
		name: "routes and subsets come from the caller; the edge from the callee when it reports",
		recs: []rec{
			{time.Second, "web-0", "web", []*meshapi.StatsCell{
				out("api", "", "", 4, 4, 1), out("api", "canary", "v2", 6, 3, 8), out("external", "", "", 2, 2, 1)}},
			{time.Second, "api-0", "api", []*meshapi.StatsCell{in("web", 10, 7, 1)}},
		},
		now: 2 * time.Second, window: time.Minute,
		check: func(t *testing.T, r api.StatsReport) {
			e := edgeOf(r, "web", "api")
			if e == nil || e.Golden.Requests != 10 || e.Golden.Successes != 7 || len(e.Routes) != 2 {
				t.Fatalf("edge web -> api: %+v", e)
			}
			if rt := e.Routes[1]; rt.Route != "canary" || rt.Subset != "v2" || rt.Golden.Requests != 6 || rt.Golden.SuccessRate != 0.5 {
				t.Errorf("route canary/v2: %+v", rt)
			}
			// No sidecar of "external" reports: the caller's view.
			if x := edgeOf(r, "web", "external"); x == nil || x.Golden.Requests != 2 {
				t.Errorf("edge web -> external: %+v", x)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t0}
			c := New(Options{Now: clk.now})
			for _, r := range tc.recs {
				c.Record(r.instance, r.service, "default", t0.Add(r.at), &meshapi.StatsReport{InstanceId: r.instance, Cells: r.cells})
			}
			clk.t = t0.Add(tc.now)
			tc.check(t, c.Stats(tc.window))
		})
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buckets []uint64
		q, want float64
	}{
		{"empty", make([]uint64, meshapi.LatencyBuckets), 0.99, 0},
		{"all in (1,2] ms: linear within", hist(100, 1.5), 0.5, 1.5},
		{"all in the first bucket", hist(10, 0.1), 0.99, 0.495},
		{"past the last bound: the last bound", hist(10, 1e6), 0.5, 32768},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quantile(tc.q, tc.buckets); got != tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// A step's maps are bounded whatever the reports name.
func TestCollectorBoundsKeys(t *testing.T) {
	c := New(Options{Now: func() time.Time { return t0 }})
	cells := make([]*meshapi.StatsCell, 0, 4096)
	for i := range 4096 {
		cells = append(cells, out("svc", string(rune('a'+i%26))+time.Duration(i).String(), "", 1, 1, 1))
	}
	for range MaxKeys/4096 + 2 {
		c.Record("web-0", "web", "default", t0, &meshapi.StatsReport{Cells: cells, InstanceId: "web-0"})
		for _, x := range cells {
			x.Route += "x"
		}
	}
	if got := c.Counters().CellsDropped; got == 0 {
		t.Errorf("no cell dropped past MaxKeys (%d) routes", MaxKeys)
	}
}
