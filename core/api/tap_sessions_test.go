package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshserver"
)

type tapper struct{}

func (tapper) StartTap(meshserver.TapQuery) (*meshserver.TapSession, error) { return nil, nil }

type reportingTapper struct {
	tapper
	rep api.TapSessions
}

func (r reportingTapper) TapReport() api.TapSessions { return r.rep }

// GET /v1/tap/sessions: what the Tapper reports, behind the token; a
// Tapper that keeps no list says so.
func TestTapSessionsEndpoint(t *testing.T) {
	end := time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC)
	rep := api.TapSessions{Open: 2, Started: 1, ForPeers: []api.TapLeg{{Origin: "127.0.0.2:7402", ID: 7, Service: "web", End: end}}}
	for _, tc := range []struct {
		name  string
		tap   api.Tapper
		token string
		code  int
		want  string
	}{
		{"a replica's list", reportingTapper{rep: rep}, testToken, http.StatusOK, `"origin": "127.0.0.2:7402"`},
		{"no token", reportingTapper{rep: rep}, "", http.StatusUnauthorized, "Authorization: Bearer"},
		{"no list", tapper{}, testToken, http.StatusNotImplemented, "does not list its tap sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := api.NewHandler(api.Options{Token: testToken, Tap: tc.tap})
			req := httptest.NewRequest("GET", "/v1/tap/sessions", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("%d %s; want %d with %q", w.Code, w.Body.String(), tc.code, tc.want)
			}
			if tc.code == http.StatusOK {
				var got api.TapSessions
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Open != 2 || got.Started != 1 || len(got.ForPeers) != 1 || got.ForPeers[0] != rep.ForPeers[0] {
					t.Fatalf("decoded %+v (%v), want %+v", got, err, rep)
				}
			}
		})
	}
}
