package telemetry

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// benchReport is a report of sidecar i of 1,000 (service svc-i): 5
// callers and 10 upstreams, each a cell with a full histogram.
func benchReport(i int) *meshapi.StatsReport {
	r := &meshapi.StatsReport{InstanceId: "svc-" + strconv.Itoa(i) + "-0"}
	b := make([]uint64, meshapi.LatencyBuckets)
	for k := range b {
		b[k] = uint64(k + 1)
	}
	for d := 1; d <= 5; d++ {
		r.Cells = append(r.Cells, &meshapi.StatsCell{Direction: meshapi.StatsDirection_STATS_INBOUND, Peer: "svc-" + strconv.Itoa((i+1000-d)%1000),
			PeerNamespace: "default", Requests: 171, Successes: 170, LatencyBuckets: b})
	}
	for d := 1; d <= 10; d++ {
		r.Cells = append(r.Cells, &meshapi.StatsCell{Direction: meshapi.StatsDirection_STATS_OUTBOUND, Peer: "svc-" + strconv.Itoa((i+d)%1000),
			PeerNamespace: "default", Requests: 171, Successes: 170, LatencyBuckets: b})
	}
	return r
}

// BenchmarkCollector: Record of one report (15 cells), and the memory of
// a full window: 1,000 sidecars, each with 5 callers and 10 upstreams
// of its own (10,000 edges: a caller's 5 callers are the
// upstreams of others),
// reporting every 10 s for 10 minutes.
//
//	go test -run - -bench Collector -benchmem ./core/telemetry
func BenchmarkCollector(b *testing.B) {
	reports := make([]*meshapi.StatsReport, 1000)
	for i := range reports {
		reports[i] = benchReport(i)
	}
	b.Run("record", func(b *testing.B) {
		c := New(Options{})
		now := time.Now()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Record(reports[i%1000].InstanceId, "svc-"+strconv.Itoa(i%1000), "default", now, reports[i%1000])
			i++
		}
	})
	b.Run("window_1000_sidecars", func(b *testing.B) {
		for b.Loop() {
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			t := t0
			c := New(Options{Now: func() time.Time { return t }})
			for s := range DefaultSteps {
				at := t0.Add(time.Duration(s) * DefaultStep)
				for i, r := range reports {
					c.Record(r.InstanceId, "svc-"+strconv.Itoa(i), "default", at, r)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB/window")
			t = t0.Add(DefaultSteps * DefaultStep)
			start := time.Now()
			rep := c.Stats(10 * time.Minute)
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/query")
			if len(rep.Edges) != 10000 {
				b.Fatalf("%d edges", len(rep.Edges))
			}
			runtime.KeepAlive(c)
		}
	})
}
