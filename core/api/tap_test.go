package api

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// GET /v1/tap's parameters: every bad spelling is refused with what to do,
// and good ones give the query the hub runs.
func TestTapQueryOf(t *testing.T) {
	for _, tc := range []struct {
		query string
		err   string // "" when accepted
		check func(t *testing.T, q string)
	}{
		{query: "service=api"},
		{query: "service=shop/api&from=web&path=/orders&method=POST&max_rps=5&duration=30s"},
		{query: "", err: "no service"},
		{query: "service=a/b/c", err: "want a service name"},
		{query: "service=api%0A", err: "want a service name"},
		{query: "service=" + strings.Repeat("a", 254), err: "want a service name"},
		{query: "service=api&service=web", err: "given 2 times"},
		{query: "service=api&token=x", err: "unknown parameter"},
		{query: "service=api&path=orders", err: "begins with /"},
		{query: "service=api&path=/a%3Fb", err: "without ? or #"},
		{query: "service=api&path=/a%00", err: "printable"},
		{query: "service=api&path=/" + strings.Repeat("a", 1024), err: "at most 1024"},
		{query: "service=api&method=G%20T", err: "HTTP method"},
		{query: "service=api&max_rps=0", err: "from 1 to 1000"},
		{query: "service=api&max_rps=1001", err: "from 1 to 1000"},
		{query: "service=api&max_rps=-1", err: "from 1 to 1000"},
		{query: "service=api&duration=11m", err: "up to 10m0s"},
		{query: "service=api&duration=-1s", err: "Go duration"},
		{query: "service=api&direction=sideways", err: "inbound, outbound or both"},
		{query: "service=api&from=web&direction=outbound", err: "from limits inbound"},
		{query: "service=api&to=db&direction=inbound", err: "to limits outbound"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = TapQueryOf(v)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one saying %q", err, tc.err)
			}
		})
	}
	q, _ := TapQueryOf(url.Values{"service": {"shop/api"}, "from": {"web"}})
	if q.Namespace != "shop" || q.Service != "api" || q.From != "web" || !q.Inbound || q.Outbound ||
		q.MaxRPS != DefaultTapRPS || q.Duration != DefaultTapDuration {
		t.Errorf("service=shop/api&from=web: %+v", q)
	}
	q, _ = TapQueryOf(url.Values{"service": {"api"}, "to": {"db"}, "duration": {"5s"}})
	if q.Inbound || !q.Outbound || q.To != "db" || q.Duration != 5*time.Second {
		t.Errorf("service=api&to=db: %+v", q)
	}
	q, _ = TapQueryOf(url.Values{"service": {"api"}})
	if !q.Inbound || !q.Outbound {
		t.Errorf("service=api taps both sides: %+v", q)
	}
}
