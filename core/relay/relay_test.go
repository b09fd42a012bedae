package relay

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/budget"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/telemetry"
)

// peers delivers what one relay sends to the others, in memory (the
// replicas' connections in core/state are tested end to end).
type peers struct {
	to    []*Relay
	sent  int
	bytes int
}

func (p *peers) SendPeers(kind string, body []byte) error {
	if kind != Kind {
		return fmt.Errorf("kind %q", kind)
	}
	p.sent++
	p.bytes += len(body)
	for _, r := range p.to {
		if err := r.Receive(body); err != nil {
			return err
		}
	}
	return nil
}

type replica struct {
	relay *Relay
	coll  *telemetry.Collector
	pool  *budget.Pool
	out   *peers
}

func newReplicas(n int, now func() time.Time, maxMessage int) []*replica {
	rs := make([]*replica, n)
	for i := range rs {
		r := &replica{coll: telemetry.New(telemetry.Options{Now: now}), out: &peers{}}
		r.pool = budget.NewPool(budget.Options{Granted: func(k budget.Key, instance string, n float64, requests uint64, window time.Duration, at time.Time) {
			r.relay.Granted(k, instance, n, requests, window, at)
		}})
		r.relay = New(Options{Collector: r.coll, Pool: r.pool, Send: r.out, MaxMessage: maxMessage})
		rs[i] = r
	}
	for i, r := range rs {
		for j, o := range rs {
			if i != j {
				r.out.to = append(r.out.to, o.relay)
			}
		}
	}
	return rs
}

func report(peer string, requests uint64) *meshapi.StatsReport {
	buckets := make([]uint64, len(meshapi.LatencyBoundsMs)+1)
	buckets[2] = requests
	return &meshapi.StatsReport{Cells: []*meshapi.StatsCell{{Direction: meshapi.StatsDirection_STATS_INBOUND, Peer: peer, PeerNamespace: "default",
		Requests: requests, Successes: requests, LatencyBuckets: buckets}}}
}

// TestStatsSameFromEveryReplica: each replica's sidecars report to it
// alone; once the relays have sent, GET /v1/stats is the same from every
// replica, each report counted once, also when the queue goes out in
// several messages.
func TestStatsSameFromEveryReplica(t *testing.T) {
	for _, maxMessage := range []int{512 << 10, 600} {
		t.Run(fmt.Sprint("max message ", maxMessage), func(t *testing.T) {
			t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
			now := func() time.Time { return t0.Add(30 * time.Second) }
			rs := newReplicas(3, now, maxMessage)
			for i := range 30 {
				r := rs[i%3]
				r.relay.Record(fmt.Sprint("api-", i%5), "api", "default", t0.Add(time.Duration(i)*time.Second), report("web", uint64(i+1)))
			}
			for _, r := range rs {
				r.relay.Flush()
			}
			if maxMessage == 600 && rs[0].out.sent < 2 {
				t.Errorf("a queue of 10 reports went out in %d message(s) of at most %d bytes, want several", rs[0].out.sent, maxMessage)
			}
			want := rs[0].coll.Stats(time.Minute)
			if len(want.Services) != 1 || want.Services[0].Golden.Requests != 465 || want.ReportingSidecars != 5 {
				b, _ := json.Marshal(want)
				t.Fatalf("replica 0's stats: %s; want service api with 465 requests (1+...+30) from 5 sidecars", b)
			}
			for i, r := range rs[1:] {
				if got := r.coll.Stats(time.Minute); !reflect.DeepEqual(got, want) {
					a, _ := json.Marshal(got)
					b, _ := json.Marshal(want)
					t.Errorf("replica %d's stats differ from replica 0's:\n%s\n%s", i+1, a, b)
				}
			}
			for i, r := range rs {
				if r.relay.Dropped() != 0 {
					t.Errorf("dropped %d", r.relay.Dropped())
				}
				// Each replica received 10 reports itself, the rest relayed.
				if n := r.coll.Counters().Received; n != 10 {
					t.Errorf("replica %d counts %d reports received, want its own 10", i, n)
				}
			}
		})
	}
}

// TestBudgetsSharedAcrossReplicas: two sidecars of one service on two
// replicas share one limit: once the demand is relayed, each replica
// divides the limit between both, in the same shares.
func TestBudgetsSharedAcrossReplicas(t *testing.T) {
	rs := newReplicas(2, time.Now, 0)
	k := budget.Key{Namespace: "default", Service: "api", Limit: "global"}
	now := time.Now()
	// Alone on its replica, each would get the whole limit.
	if share, members := rs[0].pool.Grant(k, "api-0", 100, 30, time.Second, now); share != 100 || members != 1 {
		t.Fatalf("api-0 alone: share %v of %d members", share, members)
	}
	rs[1].pool.Grant(k, "api-1", 100, 90, time.Second, now)
	for _, r := range rs {
		r.relay.Flush()
	}
	s0, m0 := rs[0].pool.Grant(k, "api-0", 100, 30, time.Second, now)
	s1, m1 := rs[1].pool.Grant(k, "api-1", 100, 90, time.Second, now)
	if m0 != 2 || m1 != 2 {
		t.Fatalf("members %d and %d, want 2 on each replica", m0, m1)
	}
	if s0+s1 > 100.0001 || s0 >= s1 {
		t.Errorf("shares %v (api-0, demand 30/s) and %v (api-1, demand 90/s): want them to add up to at most the limit, 100, and api-1's the larger", s0, s1)
	}
	for _, r := range rs {
		r.relay.Flush()
	}
	a, b := rs[0].pool.Snapshot(k), rs[1].pool.Snapshot(k)
	if len(a) != 2 || len(b) != 2 || a[0].Demand != b[0].Demand || a[1].Demand != b[1].Demand {
		t.Errorf("the replicas hold different members: %+v and %+v", a, b)
	}
}

// TestReceiveRefusesGarbage: a message that is not one is an error, and
// records nothing.
func TestReceiveRefusesGarbage(t *testing.T) {
	now := time.Now()
	rs := newReplicas(1, func() time.Time { return now }, 0)
	for _, body := range []string{"", "{", "[1,2]", `{"stats":[{"instance":"api-0","service":"api","report":"////"}]}`} {
		if err := rs[0].relay.Receive([]byte(body)); err == nil {
			t.Errorf("Receive(%q) = nil, want an error", body)
		}
	}
	if st := rs[0].coll.Stats(time.Minute); len(st.Services) != 0 {
		t.Errorf("garbage recorded: %+v", st.Services)
	}
}
