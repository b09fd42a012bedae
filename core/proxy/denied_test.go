package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestGatewayWriterScrubsDenials: a callee sidecar's marked refusal
// reaches an outside client with its status and challenge but a generic
// body (gRPC: message); anything unmarked passes unchanged.
func TestGatewayWriterScrubsDenials(t *testing.T) {
	const detail = "weft: spiffe://weft.local/ns/default/svc/public may not call admin: no intention allows GET /x"
	for _, tc := range []struct {
		name             string
		marked, grpc     bool
		code             int
		wantBody, wantGM string
	}{
		{"403 marked", true, false, 403, "weft gateway: access denied\n", ""},
		{"401 marked", true, false, 401, "weft gateway: authentication required\n", ""},
		{"grpc denied", true, true, 200, "", "weft gateway: access denied"},
		{"403 of an app", false, false, 403, detail, ""},
		{"grpc of an app", false, true, 200, "", detail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := &gatewayWriter{ResponseWriter: rec}
			if tc.marked {
				markDenied(w)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
			if tc.grpc {
				writeGRPCError(w, grpcPermissionDenied, detail)
			} else {
				w.Header().Set("Content-Length", "999")
				w.WriteHeader(tc.code)
				w.Write([]byte(detail))
			}
			if rec.Code != tc.code {
				t.Errorf("status %d, want %d", rec.Code, tc.code)
			}
			if got := rec.Body.String(); got != tc.wantBody {
				t.Errorf("body %q, want %q", got, tc.wantBody)
			}
			if tc.grpc {
				if got := rec.Header().Get("Grpc-Message"); got != grpcPercentEncode(tc.wantGM) {
					t.Errorf("grpc-message %q, want %q", got, grpcPercentEncode(tc.wantGM))
				}
			}
			if rec.Header().Get(HeaderDenied) != "" {
				t.Error("the marker reached the client")
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("the challenge was dropped")
			}
			if tc.marked && !tc.grpc && rec.Header().Get("Content-Length") == "999" {
				t.Error("the upstream's Content-Length was kept with a replaced body")
			}
		})
	}
}

// TestStripSignalDropsDeniedMarker: an application cannot have the
// gateway replace its body by sending the marker itself.
func TestStripSignalDropsDeniedMarker(t *testing.T) {
	resp := &http.Response{Header: http.Header{"X-Weft-Denied": {"1"}}, Trailer: http.Header{"X-Weft-Denied": {"1"}}}
	stripSignal(resp)
	if resp.Header.Get(HeaderDenied) != "" || resp.Trailer.Get(HeaderDenied) != "" {
		t.Errorf("marker kept: header %v trailer %v", resp.Header, resp.Trailer)
	}
}
