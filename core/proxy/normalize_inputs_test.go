package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"testing"
)

func TestStripOwnedHeaders(t *testing.T) {
	h := http.Header{
		"X-Weft-Caller":           {"spiffe://evil/ns/x/svc/y"},
		"X-Forwarded-Client-Cert": {"By=x;URI=y"},
		"X_weft_caller":           {"forged with underscores"},
		"X-Weft_caller":           {"forged, mixed"},
		"Connection":              {"keep-alive, X-Weft-Caller", " x-forwarded-client-cert ,x_weft_caller", "X-Other"},
		"X-Other":                 {"1"},
	}
	stripOwnedHeaders(h)
	want := http.Header{"Connection": {"keep-alive", "X-Other"}, "X-Other": {"1"}}
	if len(h) != len(want) || strings.Join(h["Connection"], "|") != "keep-alive|X-Other" || h.Get("X-Other") != "1" {
		t.Errorf("after stripping: %v, want %v", h, want)
	}
	h = http.Header{"Connection": {"X-Weft-Caller"}}
	stripOwnedHeaders(h)
	if _, ok := h["Connection"]; ok {
		t.Errorf("a Connection header naming only owned headers stayed: %v", h)
	}
}

// TestInboundRewriteRestoresIdentity: the reverse proxy drops every
// header named in Connection after serveHTTP set the identity headers;
// rewrite puts them back, whatever reached it.
func TestInboundRewriteRestoresIdentity(t *testing.T) {
	seen := make(chan http.Header, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header }))
	defer app.Close()
	in := &inbound{}
	rp := &httputil.ReverseProxy{Rewrite: in.rewrite}
	r := httptest.NewRequest("GET", "/x", nil)
	r.URL.Scheme, r.URL.Host = "http", strings.TrimPrefix(app.URL, "http://")
	r.Header.Set("Connection", "X-Weft-Caller, X-Forwarded-Client-Cert")
	r.Header.Set(headerCaller, "spiffe://weft.test/ns/default/svc/web")
	r.Header.Set(headerXFCC, "By=a;URI=b")
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, r)
	h := <-seen
	if h.Get(headerCaller) != "spiffe://weft.test/ns/default/svc/web" || h.Get(headerXFCC) != "By=a;URI=b" {
		t.Errorf("the app saw %s %q and %s %q", headerCaller, h.Get(headerCaller), headerXFCC, h.Get(headerXFCC))
	}
}
