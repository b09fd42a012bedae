package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/telemetry"
)

// The reporting part of the control-plane benchmark (issue 14): every
// simulated sidecar sends golden-signal reports on the Report RPC, as
// core/proxy's RunReports does, and the controller's telemetry.Collector
// adds them up. Measured: the controller's CPU per report, what one
// sidecar reporting every 10 s costs it, and its memory with the window
// full of reports.

// CPReporting are the reporting figures.
type CPReporting struct {
	Interval        string  `json:"interval"`
	Rounds          int     `json:"rounds"`
	CellsPerReport  int     `json:"cells_per_report"`
	ReportsReceived uint64  `json:"reports_received"`
	CPUPerReportUs  float64 `json:"controller_cpu_us_per_report"`
	// CorePctPerThousand10s: the share of one core that 1,000 sidecars
	// reporting every 10 s take, from CPUPerReportUs.
	CorePctPerThousand10s float64 `json:"core_pct_1000_sidecars_10s"`
	RSSGrowthMiB          float64 `json:"controller_rss_growth_mib"`
	HeapAfterMiB          float64 `json:"controller_heap_mib"`
	StatsQueryMs          float64 `json:"stats_query_ms"`
}

// cpStats is what the cp-controller's GET /stats answers.
type cpStats struct {
	Received  uint64  `json:"received"`
	Refused   uint64  `json:"refused"`
	HeapMiB   float64 `json:"heap_mib"`
	QueryMs   float64 `json:"query_ms"`
	Reporting int     `json:"reporting"`
}

// serveCPStats adds GET /stats to the cp-controller's control mux.
func serveCPStats(mux *http.ServeMux, c *telemetry.Collector) {
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		t := time.Now()
		rep := c.Stats(10 * time.Minute)
		q := time.Since(t)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		cs := c.Counters()
		var refused uint64
		for _, n := range cs.Refused {
			refused += n
		}
		json.NewEncoder(w).Encode(cpStats{Received: cs.Received, Refused: refused, HeapMiB: float64(ms.HeapAlloc) / (1 << 20),
			QueryMs: float64(q.Microseconds()) / 1000, Reporting: rep.ReportingSidecars})
	})
}

func getCPStats(ctlAddr string) (cpStats, error) {
	var s cpStats
	resp, err := http.Get("http://" + ctlAddr + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// simReport is a report like a sidecar's with traffic from 5 callers and
// to each upstream (a route cell each), with full histograms and two
// denials.
func (s *simSidecar) simReport(shape CPShape, i, round int) *meshapi.StatsReport {
	r := &meshapi.StatsReport{InstanceId: s.instance, LatencyBounds: uint32(len(meshapi.LatencyBoundsMs)),
		StartUnixMs: time.Now().Add(-10 * time.Second).UnixMilli(), EndUnixMs: time.Now().UnixMilli()}
	cell := func(dir meshapi.StatsDirection, peer, route string) *meshapi.StatsCell {
		b := make([]uint64, meshapi.LatencyBuckets)
		for k := range b {
			b[k] = uint64((k*7 + round) % 13)
		}
		var n uint64
		for _, v := range b {
			n += v
		}
		return &meshapi.StatsCell{Direction: dir, Peer: peer, PeerNamespace: "default", Route: route, Requests: n, Successes: n - n/50,
			LatencyBuckets: b, BytesIn: 1000 * n, BytesOut: 4000 * n, Connections: 1, Active: 2}
	}
	for d := 1; d <= 5; d++ {
		r.Cells = append(r.Cells, cell(meshapi.StatsDirection_STATS_INBOUND, shape.svc(i+shape.Services-d), ""))
	}
	for d := 1; d <= shape.Upstreams; d++ {
		r.Cells = append(r.Cells, cell(meshapi.StatsDirection_STATS_OUTBOUND, shape.svc(i+d), ""))
	}
	r.Denials = []*meshapi.StatsDenial{
		{UnixMs: time.Now().UnixMilli(), Caller: "spiffe://" + TrustDomain + "/ns/default/svc/intruder", Method: "GET", Path: "/admin", Reason: "no intention allows intruder"},
	}
	return r
}

// reportRounds sends rounds reports, one every interval (the sidecars
// spread over the interval), on one Report stream per sidecar.
func reportRounds(ctx context.Context, sims []*simSidecar, shape CPShape, addr string, interval time.Duration, rounds int) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(sims))
	for i, s := range sims {
		wg.Go(func() {
			cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(s.tls)), grpc.WithNoProxy())
			if err != nil {
				errs <- err
				return
			}
			defer cc.Close()
			st, err := meshapi.NewMeshClient(cc).Report(ctx)
			if err != nil {
				errs <- err
				return
			}
			// Spread the sidecars over the interval, as their start times do.
			t := time.NewTimer(time.Duration(i) * interval / time.Duration(len(sims)))
			defer t.Stop()
			for round := range rounds {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if err := st.Send(s.simReport(shape, i, round)); err != nil {
					_, err = st.CloseAndRecv()
					errs <- fmt.Errorf("sidecar %s, report %d: %w", s.instance, round, err)
					return
				}
				t.Reset(interval)
			}
			if _, err := st.CloseAndRecv(); err != nil {
				errs <- fmt.Errorf("sidecar %s: closing its reports: %w", s.instance, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// measureReporting runs the reporting phase against the running
// cp-controller (pid, its control address ctlAddr).
func measureReporting(ctx context.Context, o CPOptions, sims []*simSidecar, addr, ctlAddr string, pid int) (*CPReporting, error) {
	rounds, interval := o.ReportRounds, o.ReportEvery
	before, err := getCPStats(ctlAddr)
	if err != nil {
		return nil, err
	}
	rss0, cpu0, err := procStats(pid)
	if err != nil {
		return nil, err
	}
	if err := reportRounds(ctx, sims, o.Shape, addr, interval, rounds); err != nil {
		return nil, err
	}
	rss1, cpu1, err := procStats(pid)
	if err != nil {
		return nil, err
	}
	after, err := getCPStats(ctlAddr)
	if err != nil {
		return nil, err
	}
	n := after.Received - before.Received
	if want := uint64(rounds * len(sims)); n != want || after.Refused != before.Refused {
		return nil, fmt.Errorf("the controller took %d reports (%d refused), want %d", n, after.Refused-before.Refused, want)
	}
	r := &CPReporting{Interval: interval.String(), Rounds: rounds, CellsPerReport: 5 + o.Shape.Upstreams, ReportsReceived: n,
		RSSGrowthMiB: float64(rss1-rss0) / 1024, HeapAfterMiB: after.HeapMiB, StatsQueryMs: after.QueryMs}
	r.CPUPerReportUs = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	// 1,000 sidecars every 10 s: 100 reports a second.
	r.CorePctPerThousand10s = r.CPUPerReportUs * 100 / 1e6 * 100
	o.logf("control plane: %d reports (%d sidecars x %d, every %s, %d cells each): controller CPU %.0fus per report (1,000 sidecars every 10s: %.2f%% of a core), RSS +%.1f MiB, heap %.1f MiB, GET /v1/stats over 10 minutes %.1f ms",
		n, len(sims), rounds, interval, r.CellsPerReport, r.CPUPerReportUs, r.CorePctPerThousand10s, r.RSSGrowthMiB, r.HeapAfterMiB, r.StatsQueryMs)
	return r, nil
}
