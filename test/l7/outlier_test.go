package l7

import (
	"encoding/json"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/proxy"
)

// outlierStats reads a sidecar's GET /stats and returns upstream svc's
// endpoints by instance ID.
func (m *mesh) outlierStats(id, svc string) map[string]map[string]any {
	m.t.Helper()
	rec := httptest.NewRecorder()
	m.get(id).proxy.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	if rec.Code != 200 {
		m.t.Fatalf("GET /stats: %d %s", rec.Code, rec.Body)
	}
	var st proxy.Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		m.t.Fatalf("decoding /stats: %v\n%s", err, rec.Body)
	}
	// Read it as JSON objects, as a user's tool would.
	var raw struct {
		Upstreams []struct {
			Service   string           `json:"service"`
			Endpoints []map[string]any `json:"endpoints"`
		} `json:"upstreams"`
	}
	json.Unmarshal(rec.Body.Bytes(), &raw)
	out := map[string]map[string]any{}
	for _, u := range raw.Upstreams {
		if u.Service == svc {
			for _, e := range u.Endpoints {
				out[e["id"].(string)] = e
			}
		}
	}
	return out
}

// detectorGoroutines counts this process's outlier-detection timers.
func detectorGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "created by github.com/weftmesh/weft/core/proxy/balance.(*Detector).Update")
}

// TestOutlierSuccessRate: of three api instances, one answers 500 to
// every other request. It never fails twice in a row, so consecutive_5xx
// = 3 cannot eject it; its 50% success rate against the others' 100% is
// an outlier at stdev_factor 1 and the caller's sidecar ejects it, shows
// so in GET /stats, sends it nothing while ejected, and returns it when
// the ejection time ends with no traffic at all.
func TestOutlierSuccessRate(t *testing.T) {
	before := detectorGoroutines()
	var badHits atomic.Int64
	src := policyFor(`
  outlier_detection {
    consecutive_5xx     = 3
    interval            = "300ms"
    base_ejection_time  = "2s"
    max_ejected_percent = 34
    success_rate {
      minimum_hosts  = 3
      request_volume = 4
      stdev_factor   = 1
    }
  }`)
	m := start(t, src, inst{id: "web-1", svc: "web"},
		inst{id: "api-1", svc: "api", app: named("api-1")},
		inst{id: "api-2", svc: "api", app: named("api-2")},
		inst{id: "api-bad", svc: "api", app: flaky(&badHits)})
	if n := detectorGoroutines() - before; n != 1 {
		t.Errorf("%d outlier-detection goroutines, want 1: web-1's api upstream", n)
	}
	c := client(t)
	url := m.url("web-1", "api", "/")
	failures := 0
	eventually(t, "api-bad ejected by success rate", func() bool {
		if code, _, _ := do(t, c, "GET", url, nil); code == 500 {
			failures++
		}
		return m.outlierStats("web-1", "api")["api-bad"]["ejected"] == true
	})
	bad := m.outlierStats("web-1", "api")["api-bad"]
	if bad["reason"] != "success_rate" {
		t.Errorf("api-bad ejected for %v, want success_rate", bad["reason"])
	}
	for _, id := range []string{"api-1", "api-2"} {
		if e := m.outlierStats("web-1", "api")[id]; e["ejected"] != false {
			t.Errorf("%s ejected: %v", id, e)
		}
	}
	if failures < 2 {
		t.Errorf("%d failures seen before the ejection; the sweep needs at least request_volume tries", failures)
	}
	if got := m.metric("web-1", `weft_outlier_ejections_total{peer="api",reason="consecutive_5xx"}`); got != "" {
		t.Errorf("a consecutive_5xx ejection (%s): the 50%% instance never fails twice in a row", got)
	}
	if got := m.metric("web-1", `weft_outlier_ejections_total{peer="api",reason="success_rate"}`); got != "1" {
		t.Errorf("success_rate ejections %q, want 1", got)
	}
	until, err := time.Parse(time.RFC3339Nano, bad["until"].(string))
	if err != nil {
		t.Fatalf("until %v: %v", bad["until"], err)
	}

	// Ejected: every request goes to the others.
	hits := badHits.Load()
	for i := range 6 {
		code, body, _ := do(t, c, "GET", url, nil)
		if code != 200 || (body != "api-1" && body != "api-2") {
			if time.Now().Before(until) {
				t.Fatalf("request %d while api-bad is ejected: %d %q", i, code, body)
			}
		}
	}
	if badHits.Load() != hits && time.Now().Before(until) {
		t.Errorf("api-bad got %d requests while ejected", badHits.Load()-hits)
	}

	// No traffic at all now: the sidecar's own timer returns api-bad when
	// its ejection time ends.
	hits = badHits.Load()
	eventually(t, "api-bad back in the set without traffic", func() bool {
		return m.outlierStats("web-1", "api")["api-bad"]["ejected"] == false
	})
	if now := time.Now(); now.Before(until) {
		t.Errorf("api-bad returned at %v, before its ejection ended at %v", now, until)
	}
	if badHits.Load() != hits {
		t.Fatalf("api-bad got traffic during the no-traffic wait")
	}
	// Round robin over three: api-bad answers within three requests.
	for range 3 {
		do(t, c, "GET", url, nil)
	}
	if badHits.Load() == hits {
		t.Error("api-bad got none of three requests after its return")
	}

	// Outlier detection removed: the timer goroutine stops.
	m.apply(policyFor(""))
	if n := detectorGoroutines() - before; n != 0 {
		t.Errorf("%d outlier-detection goroutines left after the policy dropped outlier_detection", n)
	}
}
