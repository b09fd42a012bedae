package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
)

// fakeStats answers with the window it was asked for.
type fakeStats struct{ asked time.Duration }

func (f *fakeStats) Stats(window time.Duration) api.StatsReport {
	f.asked = window
	return api.StatsReport{WindowSeconds: window.Seconds(), Services: []api.ServiceStats{{Service: "api", Golden: api.Golden{Requests: 3}}}}
}

func (f *fakeStats) Window() time.Duration { return 10 * time.Minute }

func TestStatsRoutes(t *testing.T) {
	fs := &fakeStats{}
	h := api.NewHandler(api.Options{Token: testToken, Stats: fs,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("weft_controller_builds_total 1\n")) })})
	for _, tc := range []struct {
		name, path, auth string
		code             int
		want             string
		window           time.Duration
	}{
		{"stats without the token", "/v1/stats", "", 401, "DATA_DIR/admin.token", 0},
		{"metrics without the token", "/metrics", "", 401, "DATA_DIR/admin.token", 0},
		{"metrics with another token", "/metrics", "Bearer x" + testToken, 401, "DATA_DIR/admin.token", 0},
		{"metrics", "/metrics", "Bearer " + testToken, 200, "weft_controller_builds_total 1", 0},
		{"stats, the default window", "/v1/stats", "Bearer " + testToken, 200, `"window_seconds": 60`, time.Minute},
		{"stats over 5 minutes", "/v1/stats?window=5m", "Bearer " + testToken, 200, `"service": "api"`, 5 * time.Minute},
		{"a window too short", "/v1/stats?window=1s", "Bearer " + testToken, 400, "from 10s to 10m0s", 0},
		{"a window longer than kept", "/v1/stats?window=11m", "Bearer " + testToken, 400, "from 10s to 10m0s", 0},
		{"a negative window", "/v1/stats?window=-1m", "Bearer " + testToken, 400, "out of range", 0},
		{"not a duration", "/v1/stats?window=soon", "Bearer " + testToken, 400, "give a duration such as 1m", 0},
		{"a huge window string", "/v1/stats?window=" + strings.Repeat("9", 5000) + "h", "Bearer " + testToken, 400, "too long", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs.asked = 0
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("GET %s = %d %q, want %d with %q", tc.path, rec.Code, rec.Body.String(), tc.code, tc.want)
			}
			if fs.asked != tc.window {
				t.Errorf("the source was asked for %v, want %v", fs.asked, tc.window)
			}
			if tc.code == 200 && strings.HasPrefix(tc.path, "/v1/stats") {
				var r api.StatsReport
				if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || len(r.Services) != 1 {
					t.Errorf("decoding: %v %+v", err, r)
				}
			}
		})
	}
}
