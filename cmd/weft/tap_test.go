package main

import (
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
)

func TestTapLine(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.Local)
	for _, tc := range []struct {
		name string
		ev   api.TapEvent
		want []string
		not  []string
	}{
		{"allowed inbound", api.TapEvent{Time: at, Direction: "inbound", Instance: "api-0", Caller: "spiffe://d/ns/default/svc/web", Callee: "api",
			Method: "GET", Authority: "api", Path: "/x", Status: 200, LatencyMs: 1.5, RequestBytes: 0, ResponseBytes: 42},
			[]string{"03:04:05.006", "inbound", "api-0", "spiffe://d/ns/default/svc/web -> api", "GET api/x", " 200 1.5ms", "req=0B rsp=42B"}, []string{"DENIED", "reason"}},
		{"denied", api.TapEvent{Time: at, Direction: "inbound", Instance: "api-0", Caller: "c", Callee: "api", Method: "GET", Path: "/admin", Status: 403, Denied: "no intention"},
			[]string{"DENIED 403", `reason="no intention"`}, nil},
		{"outbound with route, upstream and retries", api.TapEvent{Time: at, Direction: "outbound", Instance: "web-0", Caller: "c", Callee: "api",
			Upstream: "10.0.0.1:15001", Route: "orders", Method: "POST", Path: "/o", Status: 503, Tries: 3, RequestBytes: -1, GRPCStatus: "14"},
			[]string{"(10.0.0.1:15001)", "route=orders", " 503 grpc=14", "tries=3"}, []string{"req="}},
		{"a hostile path cannot add a line", api.TapEvent{Time: at, Path: "/a\nb\x1b[2J", Status: 200},
			[]string{`/a\nb\x1b[2J`}, []string{"\n", "\x1b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tapLine(tc.ev)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("%q has %q", got, w)
				}
			}
		})
	}
}

func TestTopTable(t *testing.T) {
	var tt topTable
	ev := func(path string, status int, ms float64, denied string) api.TapEvent {
		return api.TapEvent{Type: "request", Method: "GET", Path: path, Status: status, LatencyMs: ms, Denied: denied}
	}
	for _, e := range []api.TapEvent{
		ev("/a", 200, 3, ""), ev("/a", 500, 1, ""), ev("/a", 200, 2, ""),
		ev("/b", 403, 0.1, "no intention"), {Type: "joined"}, ev("/c", 0, 9, ""),
	} {
		tt.add(e)
	}
	rows := tt.sorted()
	if len(rows) != 3 || rows[0].Path != "/a" || rows[0].Count != 3 || rows[0].Success != 2 || rows[0].Best != 1 || rows[0].Worst != 3 || rows[0].Last != 2 {
		t.Fatalf("rows %+v", rows)
	}
	if rows[1].Path != "/b" || rows[1].Denied != 1 || rows[1].Success != 0 {
		t.Errorf("denied row %+v", rows[1])
	}
	if rows[2].Success != 0 {
		t.Errorf("a request without a response counted as a success: %+v", rows[2])
	}
	var b strings.Builder
	tt.write(&b, 1)
	if strings.Count(b.String(), "\n") != 2 || !strings.Contains(b.String(), "66.7%") {
		t.Errorf("table with --rows 1:\n%s", b.String())
	}
	// Bounded: random paths stop adding rows at maxTopRows.
	var big topTable
	for i := range maxTopRows + 10 {
		big.add(ev("/r"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), 200, 1, ""))
	}
	if n := len(big.sorted()); n != maxTopRows {
		t.Errorf("%d rows, want at most %d", n, maxTopRows)
	}
}
