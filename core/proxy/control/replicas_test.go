package control_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/control"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

func TestParseControllers(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{"repeated flag", []string{"127.0.117.1:7400", "127.0.117.2:7400"}, []string{"127.0.117.1:7400", "127.0.117.2:7400"}, ""},
		{"comma list, spaces, repeats", []string{" 127.0.117.1:7400, ctl.example:7400 ,", "127.0.117.1:7400"}, []string{"127.0.117.1:7400", "ctl.example:7400"}, ""},
		{"ipv6", []string{"[::1]:7400"}, []string{"[::1]:7400"}, ""},
		{"none", []string{"", " , "}, nil, "no controller address"},
		{"no port", []string{"127.0.117.1"}, nil, `controller address "127.0.117.1": want host:port`},
		{"no host", []string{":7400"}, nil, `controller address ":7400": want host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := control.ParseControllers(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// Within a round every replica is tried once, each after a short spread
// wait; only the failure that ends the round waits a backoff delay.
func TestReplicasRoundThenBackoff(t *testing.T) {
	addrs := []string{"127.0.117.1:7400", "127.0.117.2:7400", "127.0.117.3:7400"}
	r, err := control.NewReplicas(addrs, control.ReplicaOptions{Spread: 10 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: 4 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := range 2 {
		var seen []string
		for i := range len(addrs) {
			cur := r.Current(ctx)
			seen = append(seen, cur.Addr)
			d := r.Failed(cur)
			last := i == len(addrs)-1
			switch {
			case last && d < 48*time.Minute: // the backoff's 20% jitter
				t.Fatalf("round %d: the failure that ends the round waits %v, want the backoff delay (1h less jitter)", round, d)
			case !last && d >= 10*time.Millisecond:
				t.Fatalf("round %d: failure %d waits %v, want less than the 10ms spread", round, i, d)
			}
		}
		slices.Sort(seen)
		if !slices.Equal(seen, addrs) {
			t.Fatalf("round %d tried %v, want each of %v once", round, seen, addrs)
		}
	}
	// A success starts over: the next failure waits a spread again.
	cur := r.Current(ctx)
	r.Succeeded(cur)
	if d := r.Failed(cur); d >= 10*time.Millisecond {
		t.Fatalf("the first failure after a success waits %v, want less than the spread", d)
	}
	// A failure of a replica that is no longer current (another caller
	// moved on) moves nothing.
	cur = r.Current(ctx)
	if r.Failed(control.Target{Addr: "127.0.117.9:7400"}); r.Current(ctx) != cur {
		t.Fatal("a stale failure moved the client off its current replica")
	}
}

// One replica: the first failure after a success waits a spread, not
// the minimum backoff, so sidecars of a restarted controller do not all
// come back together.
func TestReplicasSingleSpreadsFirstRetry(t *testing.T) {
	r, _ := control.NewReplicas([]string{"127.0.117.1:7400"}, control.ReplicaOptions{Spread: 10 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	cur := r.Current(context.Background())
	if d := r.Failed(cur); d >= 10*time.Millisecond {
		t.Fatalf("first failure waits %v, want less than the spread", d)
	}
	if d := r.Failed(cur); d < 48*time.Minute {
		t.Fatalf("second failure waits %v, want the backoff delay", d)
	}
}

// A DNS name stands for every address it resolves to, verified against
// the name; it is looked up again at the start of each round; a name
// that does not resolve stays as given.
func TestReplicasResolveNames(t *testing.T) {
	var lookups atomic.Int32
	answers := [][]string{{"127.0.117.10", "127.0.117.11"}, {"127.0.117.12"}}
	resolve := func(_ context.Context, host string) ([]string, error) {
		switch host {
		case "ctl.weft.test":
			n := lookups.Add(1)
			return answers[min(int(n), len(answers))-1], nil
		default:
			return nil, errors.New("no such host")
		}
	}
	r, err := control.NewReplicas([]string{"ctl.weft.test:7400", "127.0.117.20:7400", "gone.weft.test:7400"},
		control.ReplicaOptions{Spread: time.Millisecond, MinBackoff: time.Millisecond, Resolve: resolve, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Peek() != (control.Target{}) {
		t.Fatal("Peek before the first Current returned a replica")
	}
	ctx := context.Background()
	r.Current(ctx)
	got := r.Targets()
	slices.SortFunc(got, func(a, b control.Target) int { return strings.Compare(a.Addr, b.Addr) })
	want := []control.Target{
		{Addr: "127.0.117.10:7400", Name: "ctl.weft.test"},
		{Addr: "127.0.117.11:7400", Name: "ctl.weft.test"},
		{Addr: "127.0.117.20:7400", Name: "127.0.117.20"},
		{Addr: "gone.weft.test:7400", Name: "gone.weft.test"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for range len(want) {
		r.Failed(r.Current(ctx))
	}
	r.Current(ctx)
	if n := lookups.Load(); n != 2 {
		t.Fatalf("%d lookups after one full round, want 2 (one per round)", n)
	}
	if ts := r.Targets(); len(ts) != 3 || !slices.Contains(ts, control.Target{Addr: "127.0.117.12:7400", Name: "ctl.weft.test"}) {
		t.Fatalf("targets after the second lookup %v, want the name's new address", ts)
	}
}

// Every sidecar draws its own order: 900 sidecars given the same three
// replicas start spread over all three.
func TestReplicasSpreadSidecars(t *testing.T) {
	addrs := []string{"127.0.117.1:7400", "127.0.117.2:7400", "127.0.117.3:7400"}
	count := map[string]int{}
	for range 900 {
		r, _ := control.NewReplicas(addrs, control.ReplicaOptions{})
		count[r.Current(context.Background()).Addr]++
	}
	for _, a := range addrs {
		// 300 expected; below 200 has a chance far below 1e-9.
		if count[a] < 200 {
			t.Fatalf("first replicas of 900 sidecars: %v, want about 300 each", count)
		}
	}
}

// The client moves to the other replica when the one it streams from
// dies, subscribes there with the version it applied, refuses an older
// version from it (NACK with the reason, the last good config kept) and
// applies a newer one.
func TestClientFailsOverAndRefusesOlderVersions(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	a := proxytest.StartController(t, ca, proxytest.ControllerOptions{Service: "web"})
	b := proxytest.StartController(t, ca, proxytest.ControllerOptions{Service: "web"})
	w := &tenant{instance: "web-1"}
	c, err := control.New(w, control.Options{
		InstanceID: w.instance, Controllers: []string{a.Addr, b.Addr}, TrustBundle: ca.Pool, JoinToken: a.Token,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, FailoverSpread: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// The replica the client subscribed to first (its own random order).
	var first, other *proxytest.Controller
	select {
	case <-a.Requests:
		first, other = a, b
	case <-b.Requests:
		first, other = b, a
	case <-time.After(proxytest.Wait):
		t.Fatal("no subscription on either replica")
	}
	if got := c.Controller(); got != first.Addr {
		t.Fatalf("Controller() = %s, want %s, where it subscribed", got, first.Addr)
	}
	first.Send(t, &meshapi.ConfigUpdate{Version: 50, Config: &meshapi.ProxyConfig{InstanceId: w.instance}})
	if req := first.NextRequest(t); req.AppliedVersion != 50 {
		t.Fatalf("%v, want an ACK of 50", req)
	}

	killed := time.Now()
	first.Stop()
	sub := other.NextRequest(t)
	t.Logf("subscribed to the other replica %v after the first one stopped", time.Since(killed).Round(time.Millisecond))
	if sub.AppliedVersion != 50 {
		t.Fatalf("subscription on the other replica %v, want it to carry applied version 50", sub)
	}

	other.Send(t, &meshapi.ConfigUpdate{Version: 40, Config: &meshapi.ProxyConfig{InstanceId: w.instance}})
	req := other.NextRequest(t)
	if req.RejectedVersion != 40 || req.AppliedVersion != 50 || !strings.Contains(req.ErrorDetail, "older than version 50") {
		t.Fatalf("after an older version: %v, want a NACK of 40 keeping 50, saying it is older", req)
	}
	if v, _ := w.state(); v != 50 {
		t.Fatalf("the watcher holds version %d after the older one, want 50", v)
	}
	// The same version again (a replica that agrees) and a newer one
	// are applied.
	for _, v := range []uint64{50, 60} {
		other.Send(t, &meshapi.ConfigUpdate{Version: v, Config: &meshapi.ProxyConfig{InstanceId: w.instance}})
		if req := other.NextRequest(t); req.AppliedVersion != v || req.RejectedVersion != 0 {
			t.Fatalf("after version %d: %v, want an ACK of it", v, req)
		}
	}
	if v, _ := w.state(); v != 60 {
		t.Fatalf("the watcher holds version %d, want 60", v)
	}
}
