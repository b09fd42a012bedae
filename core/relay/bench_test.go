package relay

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
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

// BenchmarkTapMessage: one message of a tap leg, 256 events of a busy
// service as the sidecars send them, from the leg's encoding to the
// origin's session (what a replica spends per relayed event on both
// sides, the transport aside). Reported per event, with the message's
// bytes per event.
func BenchmarkTapMessage(b *testing.B) {
	origin := NewTaps(TapOptions{Local: meshserver.New(meshserver.Options{}), Peers: tapPeer{n: &tapNet{}, addr: "a"}})
	q := webQuery
	q.Duration = time.Hour
	sess, err := origin.StartTap(q)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range sess.Events {
		}
	}()
	const events = 256
	ev := webEvent("/api/v1/orders/12345")
	ev.Event.LatencyUs, ev.Event.ResponseBytes, ev.Event.Tries, ev.Event.Authority = 1834, 5120, 1, "web.default"
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		msg := tapMessage{Op: "events", Origin: "a", ID: sess.ID, From: "b"}
		for range events {
			p, err := proto.Marshal(ev.Event)
			if err != nil {
				b.Fatal(err)
			}
			msg.Events = append(msg.Events, tapItem{Instance: ev.Instance, TrustDomain: ev.Identity.TrustDomain,
				Namespace: ev.Identity.Namespace, Service: ev.Identity.Service, Event: p})
		}
		body, err := json.Marshal(msg)
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
		if err := origin.Receive(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events)/1000, "µs/event")
	b.ReportMetric(float64(size)/events, "bytes/event")
	sess.Close()
	<-done
}
