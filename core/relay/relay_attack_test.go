package relay

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/budget"
	"github.com/weftmesh/weft/core/telemetry"
)

// Hostile tests of what one replica's relay hands another
// (docs/ha-threats.md). Only a replica that proved the state key reaches
// Receive (core/state: TestRaftPortAttack refuses a sidecar's certificate,
// an outside client and a replayed proof), so these are the messages of a
// peer that is broken, of another version, or whose clock is wrong:
// none may stop the replica or erase what its own sidecars reported.

func relayed(t *testing.T, items ...statsItem) []byte {
	t.Helper()
	b, err := json.Marshal(message{Stats: items})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRelayAttackReceivedTimes: a relayed report dated before 1970, at the
// end of int64, far in the future or older than the window is not
// recorded (counted, by reason), never panics, and never evicts the
// receiver's own recent reports; one from a peer whose clock runs a few
// seconds ahead counts now.
func TestRelayAttackReceivedTimes(t *testing.T) {
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	rep, err := proto.Marshal(report("web", 7))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		ms       int64
		recorded bool
	}{
		{"before 1970", -5000, false},
		{"the smallest int64", math.MinInt64, false},
		{"the largest int64", math.MaxInt64, false},
		{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), false},
		{"an hour ahead", now.Add(time.Hour).UnixMilli(), false},
		{"11 minutes old (out of the window)", now.Add(-11 * time.Minute).UnixMilli(), false},
		{"5 seconds ahead (a clock a little off)", now.Add(5 * time.Second).UnixMilli(), true},
		{"a second old", now.Add(-time.Second).UnixMilli(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicas(1, func() time.Time { return now }, 0)
			r := rs[0]
			// The replica's own sidecar reported a moment ago.
			r.relay.Record("api-0", "api", "default", now.Add(-time.Minute), report("web", 3))
			err := r.relay.Receive(relayed(t, statsItem{Instance: "api-1", Service: "api", Namespace: "default", ReceivedMs: tc.ms, Report: rep}))
			if err != nil {
				t.Fatalf("Receive: %v (a message of good form is taken, its bad items counted)", err)
			}
			st := r.coll.Stats(r.coll.Window())
			want := uint64(3)
			if tc.recorded {
				want = 10
			}
			if len(st.Services) != 1 || st.Services[0].Golden.Requests != want {
				b, _ := json.Marshal(st.Services)
				t.Fatalf("stats %s; want api with %d requests (its own 3%s)", b, want, map[bool]string{true: " and the relayed 7", false: ""}[tc.recorded])
			}
			if refused := r.coll.Counters().Refused[telemetry.RefusedOutOfWindow]; (refused == 1) == tc.recorded {
				t.Fatalf("counted %d relayed reports out of the window, want %d", refused, map[bool]int{true: 0, false: 1}[tc.recorded])
			}
		})
	}
}

// TestRelayAttackMessages: messages of every size and shape a broken peer
// could send are refused whole, with a reason, and record nothing.
func TestRelayAttackMessages(t *testing.T) {
	now := time.Now()
	many := make([]demandItem, MaxQueued+1)
	manyB, _ := json.Marshal(message{Demand: many})
	for _, tc := range []struct {
		name, body, want string
	}{
		{"nested 10,000 deep", strings.Repeat(`{"stats":[`, 5000) + strings.Repeat("]}", 5000), "decoding a relay message"},
		{"stats an object", `{"stats":{"instance":"x"}}`, "decoding a relay message"},
		{"received_ms a float", fmt.Sprintf(`{"stats":[{"instance":"x","received_ms":%d.5}]}`, now.UnixMilli()), "decoding a relay message"},
		{"received_ms beyond int64", `{"stats":[{"instance":"x","received_ms":99999999999999999999}]}`, "decoding a relay message"},
		{"n NaN", `{"demand":[{"namespace":"default","service":"api","limit":"g","instance":"a","n":NaN}]}`, "decoding a relay message"},
		{"a report not protobuf", `{"stats":[{"instance":"x","report":"` + strings.Repeat("/", 64) + `"}]}`, "decoding a relayed report"},
		{"more items than a queue holds", string(manyB), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicas(1, func() time.Time { return now }, 0)
			err := rs[0].relay.Receive([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Receive: %v, want an error with %q", err, tc.want)
			}
			if st := rs[0].coll.Stats(time.Minute); len(st.Services) != 0 {
				t.Fatalf("recorded %+v", st.Services)
			}
		})
	}
}

// TestRelayAttackDemand: a peer's demand with a negative window, a
// negative or huge rate, or a limit of 0 leaves the local shares
// finite and within the limit.
func TestRelayAttackDemand(t *testing.T) {
	k := budget.Key{Namespace: "default", Service: "api", Limit: "global"}
	for _, tc := range []struct {
		name string
		it   demandItem
	}{
		{"negative window", demandItem{N: 100, Requests: 50, WindowMs: -1000}},
		{"zero window", demandItem{N: 100, Requests: 50, WindowMs: 0}},
		{"huge rate", demandItem{N: 100, Requests: math.MaxUint64, WindowMs: 1}},
		{"negative limit", demandItem{N: -100, Requests: 50, WindowMs: 1000}},
		{"huge limit", demandItem{N: math.MaxFloat64, Requests: 50, WindowMs: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicas(1, time.Now, 0)
			it := tc.it
			it.Namespace, it.Service, it.Limit, it.Instance = k.Namespace, k.Service, k.Limit, "api-9"
			b, _ := json.Marshal(message{Demand: []demandItem{it}})
			if err := rs[0].relay.Receive(b); err != nil {
				t.Fatalf("Receive: %v", err)
			}
			share, members := rs[0].pool.Grant(k, "api-0", 100, 30, time.Second, time.Now())
			if math.IsNaN(share) || math.IsInf(share, 0) || share < 0 || share > 100 || members != 2 {
				t.Fatalf("the local sidecar's share %v of 100 among %d members: want a finite share within the limit", share, members)
			}
			t.Logf("local share %.2f/s of 100/s", share)
		})
	}
}
