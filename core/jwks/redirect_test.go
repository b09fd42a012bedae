package jwks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
)

// TestFetchRedirects: the key set URL is https, and a redirect may not
// take the fetch to plain http, where anyone on the path could answer
// with keys of their own; a redirect that stays on https is followed.
func TestFetchRedirects(t *testing.T) {
	evil := jwttest.New(t, "https://idp.test", jose.ES256)
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		w.Write(evil.JWKS(t))
	}))
	defer plain.Close()
	var secure *httptest.Server
	secure = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http":
			http.Redirect(w, r, plain.URL+"/jwks.json", http.StatusFound)
		case "/to-https":
			http.Redirect(w, r, secure.URL+"/jwks.json", http.StatusMovedPermanently)
		default:
			w.Write(evil.JWKS(t))
		}
	}))
	defer secure.Close()
	r := New(Options{Client: secure.Client()})
	for _, tc := range []struct{ path, err string }{
		{"/to-https", ""},
		{"/to-http", "redirect"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			b, _, err := r.fetch(context.Background(), &source{url: secure.URL + tc.path})
			switch {
			case tc.err == "" && (err != nil || len(b) == 0):
				t.Errorf("fetch: %d bytes, %v", len(b), err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("fetch: %d bytes, %v; want an error about the %s", len(b), err, tc.err)
			}
		})
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("the plain http server was asked %d times, want never", n)
	}
}
