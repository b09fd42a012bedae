package meshserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
)

// healthEvents records what Options.Health is told, in order.
type healthEvents chan string

func (h healthEvents) ReportHealth(id string, healthy bool, reason string) {
	h <- fmt.Sprintf("report %s %v %s", id, healthy, reason)
}

func (h healthEvents) StreamGone(id string) { h <- "gone " + id }

// next returns the next event, failing the test after 5s without one.
func (h healthEvents) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-h:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no health event within 5s")
		return ""
	}
}

// none fails the test if an event is waiting.
func (h healthEvents) none(t *testing.T) {
	t.Helper()
	select {
	case e := <-h:
		t.Fatalf("unexpected health event %q", e)
	default:
	}
}

// startHealth is start with a recorder as Options.Health, and api-0
// (service api) and store-0 (service store) in the registry; it returns
// api-0's client certificate's client.
func startHealth(t *testing.T) (*harness, healthEvents, meshapi.MeshClient) {
	t.Helper()
	h := start(t)
	ev := make(healthEvents, 16)
	h.srv.o.Health = ev
	h.addInstance("api-0", "api")
	h.addInstance("store-0", "store")
	cert, err := join(t, h.dial(t, nil), "api-0", h.token(t, "api-0", "api"))
	if err != nil {
		t.Fatal(err)
	}
	return h, ev, h.dial(t, cert)
}

func TestHealthReportReachesHealth(t *testing.T) {
	h, ev, c := startHealth(t)
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first request may carry a report (a sidecar that reconnects).
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0", Health: &meshapi.HealthReport{Healthy: false, Reason: "GET /health: 500"}})
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	if got, want := ev.next(t), "report api-0 false GET /health: 500"; got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
	// A report alone, later on the stream.
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0", Health: &meshapi.HealthReport{Healthy: true}})
	if got, want := ev.next(t), "report api-0 true "; got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
	// A report whose request names another instance is still its
	// stream's: the stream is bound to api-0.
	st.Send(&meshapi.ConfigRequest{InstanceId: "store-0", Health: &meshapi.HealthReport{Healthy: false, Reason: "x"}})
	if got, want := ev.next(t), "report api-0 false x"; got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
	st.CloseSend()
	if _, err := st.Recv(); err == nil {
		t.Fatal("the stream did not end")
	}
	if got, want := ev.next(t), "gone api-0"; got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
}

// TestHealthReportForAnotherInstance: an identity cannot report the
// health of an instance of another service, even before that instance
// has a configuration (which would end the stream on its own).
func TestHealthReportForAnotherInstance(t *testing.T) {
	_, ev, c := startHealth(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		first *meshapi.ConfigRequest
		then  *meshapi.ConfigRequest
	}{
		{"in the subscribe request", &meshapi.ConfigRequest{InstanceId: "store-0", Health: &meshapi.HealthReport{Reason: "down"}}, nil},
		{"after it", &meshapi.ConfigRequest{InstanceId: "store-0"}, &meshapi.ConfigRequest{InstanceId: "store-0", Health: &meshapi.HealthReport{Reason: "down"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := c.StreamConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.Send(tc.first)
			if tc.then != nil {
				st.Send(tc.then)
			}
			if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "may not report the health") {
				t.Fatalf("reporting for store-0 with api's certificate: %v, want PermissionDenied", err)
			}
			ev.none(t)
		})
	}
}

// TestHealthReportWaitsForInstance: a report for an instance the registry
// does not hold yet (a controller just restarted) is handed over once it
// does, not dropped and not taken on trust.
func TestHealthReportWaitsForInstance(t *testing.T) {
	h, ev, c := startHealth(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	looked := make(chan string, 16)
	h.srv.o.Workloads = lookups{h.srv.o.Workloads, looked}
	wait := func() {
		t.Helper()
		select {
		case <-looked:
		case <-time.After(5 * time.Second):
			t.Fatal("the report was not looked at within 5s")
		}
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-1", Health: &meshapi.HealthReport{Reason: "early"}})
	wait()
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-1", Health: &meshapi.HealthReport{Reason: "latest"}})
	wait()
	ev.none(t)
	// Nothing is handed over while api-1 is unknown; then its first
	// configuration comes, and the latest report with it.
	h.addInstance("api-1", "api")
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-1": cfg("api-1", "api", 1)})
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	if got, want := ev.next(t), "report api-1 false latest"; got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
	ev.none(t)
}

func TestBoundReason(t *testing.T) {
	long := strings.Repeat("é", MaxReasonBytes) // 2 bytes each
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "GET /health: 500", "GET /health: 500"},
		{"control characters", "a\nb\x1b[31mc\x00", "a b [31mc "},
		{"invalid UTF-8", "a\xffb", "a?b"},
		{"long, cut on a rune", long, long[:MaxReasonBytes]},
		{"very long", strings.Repeat("x", 1<<20), strings.Repeat("x", MaxReasonBytes)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := boundReason(tc.in)
			if got != tc.want || len(got) > MaxReasonBytes || !utf8.ValidString(got) {
				t.Errorf("boundReason = %q (%d bytes), want %q", got, len(got), tc.want)
			}
		})
	}
}

// lookups signals every Instance lookup.
type lookups struct {
	Workloads
	looked chan string
}

func (l lookups) Instance(id string) (string, model.Instance, bool) {
	a, in, ok := l.Workloads.Instance(id)
	l.looked <- id
	return a, in, ok
}

// TestHealthReportGap: a sidecar that sends reports faster than that gets
// at most one handed over per HealthReportGap, and the latest is handed
// over last.
func TestHealthReportGap(t *testing.T) {
	h, ev, c := startHealth(t)
	h.srv.o.Health = make(healthEvents, 1000)
	ev = h.srv.o.Health.(healthEvents)
	h.srv.Update(map[string]*meshapi.ProxyConfig{"api-0": cfg("api-0", "api", 1)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&meshapi.ConfigRequest{InstanceId: "api-0"})
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	// 40 reports, one every 5ms: a flapping sidecar. (The ticker paces
	// the sender; nothing waits on it for a result.)
	start := time.Now()
	const n = 40
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		st.Send(&meshapi.ConfigRequest{InstanceId: "api-0", Health: &meshapi.HealthReport{Healthy: i%2 == 1, Reason: fmt.Sprint(i)}})
		<-tick.C
	}
	got := 0
	for {
		e := ev.next(t)
		got++
		if e == fmt.Sprintf("report api-0 true %d", n-1) {
			break
		}
	}
	if most := 1 + int(time.Since(start)/HealthReportGap); got > most {
		t.Errorf("%d reports sent in a burst: %d handed over in %s, want at most %d (one per %s)", n, got, time.Since(start), most, HealthReportGap)
	}
	ev.none(t)
}
