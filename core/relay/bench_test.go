package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// BenchmarkRelaySecond: one second of a 1,000-sidecar mesh reporting
// every 10 s (100 reports of 15 cells) relayed from one replica to two
// others: Record and Flush on the sender, Receive on each receiver.
// Reported per relayed report.
func BenchmarkRelaySecond(b *testing.B) {
	reports := make([]*meshapi.StatsReport, 100)
	for i := range reports {
		r := &meshapi.StatsReport{}
		for j := range 15 {
			buckets := make([]uint64, len(meshapi.LatencyBoundsMs)+1)
			buckets[j%len(buckets)] = 10
			dir := meshapi.StatsDirection_STATS_INBOUND
			if j >= 5 {
				dir = meshapi.StatsDirection_STATS_OUTBOUND
			}
			r.Cells = append(r.Cells, &meshapi.StatsCell{Direction: dir, Peer: fmt.Sprint("svc-", (i+j)%100), PeerNamespace: "default",
				Requests: 10, Successes: 10, LatencyBuckets: buckets, BytesIn: 1000, BytesOut: 2000})
		}
		reports[i] = r
	}
	rs := newReplicas(3, time.Now, 0)
	rs[1].out.to, rs[2].out.to = nil, nil
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		now := time.Now()
		for i, r := range reports {
			rs[0].relay.Record(fmt.Sprint("sidecar-", i), fmt.Sprint("svc-", i%100), "default", now, r)
		}
		rs[0].relay.Flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reports))/1000, "µs/report")
	b.ReportMetric(float64(rs[0].out.bytes)/float64(b.N), "bytes/message")
}
