package meshserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
)

// statsEvents records what Options.Stats is told.
type statsEvents chan string

func (s statsEvents) Record(instance, service, namespace string, _ time.Time, r *meshapi.StatsReport) {
	s <- fmt.Sprintf("record %s %s/%s cells=%d", instance, namespace, service, len(r.GetCells()))
}

func (s statsEvents) Refused(reason string) { s <- "refused " + reason }

func (s statsEvents) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-s:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no stats event within 5s")
		return ""
	}
}

func goodReport(instance string) *meshapi.StatsReport {
	return &meshapi.StatsReport{InstanceId: instance, LatencyBounds: uint32(len(meshapi.LatencyBoundsMs)),
		Cells: []*meshapi.StatsCell{{Peer: "web", Requests: 3, Successes: 2, LatencyBuckets: make([]uint64, meshapi.LatencyBuckets)}}}
}

// A sidecar reports for its own instance only: one of api (its
// certificate) that names an instance of store, or changes instance on
// the way, or breaks a limit, is refused and nothing of it is recorded.
func TestReportIsCheckedAgainstTheCertificate(t *testing.T) {
	h, _, c := startHealth(t) // api-0 of api and store-0 of store; c holds api-0's certificate
	ev := make(statsEvents, 16)
	h.srv.o.Stats = ev
	many := goodReport("api-0")
	for range MaxReportCells {
		many.Cells = append(many.Cells, &meshapi.StatsCell{Peer: "web"})
	}
	for _, tc := range []struct {
		name    string
		reports []*meshapi.StatsReport
		want    []string
		code    codes.Code
	}{
		{"its own instance", []*meshapi.StatsReport{goodReport("api-0"), goodReport("api-0")},
			[]string{"record api-0 default/api cells=1", "record api-0 default/api cells=1"}, codes.OK},
		{"another service's instance (a lying sidecar)", []*meshapi.StatsReport{goodReport("store-0")},
			[]string{"refused instance"}, codes.PermissionDenied},
		{"an instance the registry does not hold", []*meshapi.StatsReport{goodReport("ghost-0")},
			[]string{"refused instance"}, codes.FailedPrecondition},
		{"no instance", []*meshapi.StatsReport{goodReport("")}, []string{"refused instance"}, codes.InvalidArgument},
		{"its own, then another", []*meshapi.StatsReport{goodReport("api-0"), goodReport("store-0")},
			[]string{"record api-0 default/api cells=1", "refused instance"}, codes.PermissionDenied},
		{"other latency bounds", []*meshapi.StatsReport{{InstanceId: "api-0", LatencyBounds: 3}}, []string{"refused invalid"}, codes.InvalidArgument},
		{"too many cells", []*meshapi.StatsReport{many}, []string{"refused invalid"}, codes.InvalidArgument},
		{"more successes than requests", []*meshapi.StatsReport{{InstanceId: "api-0", LatencyBounds: uint32(len(meshapi.LatencyBoundsMs)),
			Cells: []*meshapi.StatsCell{{Peer: "web", Requests: 1, Successes: 2}}}}, []string{"refused invalid"}, codes.InvalidArgument},
		{"a name too long", []*meshapi.StatsReport{{InstanceId: "api-0", LatencyBounds: uint32(len(meshapi.LatencyBoundsMs)),
			Cells: []*meshapi.StatsCell{{Peer: strings.Repeat("w", MaxReportName+1)}}}}, []string{"refused invalid"}, codes.InvalidArgument},
		{"buckets of another histogram", []*meshapi.StatsReport{{InstanceId: "api-0", LatencyBounds: uint32(len(meshapi.LatencyBoundsMs)),
			Cells: []*meshapi.StatsCell{{Peer: "web", Requests: 1, LatencyBuckets: []uint64{1}}}}}, []string{"refused invalid"}, codes.InvalidArgument},
		{"too many denials", []*meshapi.StatsReport{{InstanceId: "api-0", LatencyBounds: uint32(len(meshapi.LatencyBoundsMs)),
			Denials: make([]*meshapi.StatsDenial, MaxReportDenials+1)}}, []string{"refused invalid"}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := c.Report(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.reports {
				if err := st.Send(r); err != nil {
					break // the server ended the stream: CloseAndRecv says why
				}
			}
			_, err = st.CloseAndRecv()
			if got := status.Code(err); got != tc.code {
				t.Errorf("stream ended with %v (%v), want %v", got, err, tc.code)
			}
			for _, want := range tc.want {
				if got := ev.next(t); got != want {
					t.Errorf("event %q, want %q", got, want)
				}
			}
			select {
			case e := <-ev:
				t.Errorf("unexpected event %q", e)
			default:
			}
		})
	}
}
