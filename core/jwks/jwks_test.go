package jwks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/proxy/jwtauth/jwttest"
)

// TestResolver: keys are inlined, refreshed when they change, a bad or
// failed read keeps the last good keys, and an unchanged set (304) sends
// nothing.
func TestResolver(t *testing.T) {
	idp := jwttest.New(t, "https://idp.test", jose.ES256)
	var mu sync.Mutex
	serve := func() []byte { return idp.JWKS(t) }
	fetches, notModified := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		body := serve()
		etag := `"` + string(rune('a'+len(body)%26)) + `"`
		if r.Header.Get("If-None-Match") == etag {
			notModified++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(file, idp.JWKS(t), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := &policy.Policy{JWTProviders: map[string]policy.JWTProvider{
		"url":  {Name: "url", JWKSURL: srv.URL, JWKSRefresh: time.Second},
		"file": {Name: "file", JWKSFile: file, JWKSRefresh: time.Second},
	}}
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	r := New(Options{Tick: 10 * time.Millisecond, Now: func() time.Time { clock.Lock(); defer clock.Unlock(); return now }})
	advance := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }
	in, out := make(chan *policy.Policy, 1), make(chan *policy.Policy, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx, in, out)
	in <- pol
	next := func(what string) *policy.Policy {
		t.Helper()
		select {
		case p := <-out:
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("no policy within 10s: %s", what)
			return nil
		}
	}
	p := next("the first policy")
	if string(p.JWTProviders["url"].JWKS) != string(idp.JWKS(t)) || string(p.JWTProviders["file"].JWKS) != string(idp.JWKS(t)) {
		t.Fatalf("keys not inlined: %+v", p.JWTProviders)
	}
	if pol.JWTProviders["url"].JWKS != nil {
		t.Fatal("the policy passed in was changed")
	}

	// Unchanged: a refresh gets 304 and sends nothing.
	advance(2 * time.Second)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return notModified > 0 })
	select {
	case p := <-out:
		t.Fatalf("a policy was sent for unchanged keys: %+v", p.JWTProviders["url"])
	default:
	}

	// A bad key set keeps the last good keys.
	good := idp.JWKS(t)
	mu.Lock()
	serve = func() []byte { return []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`) }
	mu.Unlock()
	advance(2 * time.Second)
	waitFor(t, func() bool {
		for _, s := range r.Statuses() {
			if s.Source == "url:"+srv.URL && s.Error != "" {
				return true
			}
		}
		return false
	})
	if got := r.Resolve(pol).JWTProviders["url"].JWKS; string(got) != string(good) {
		t.Fatalf("after a bad read the keys are %s, want the last good ones", got)
	}

	// A rotation is sent on.
	idp.Rotate(t, jose.RS256, true)
	mu.Lock()
	serve = func() []byte { return idp.JWKS(t) }
	mu.Unlock()
	advance(2 * time.Minute)
	p = next("the rotated keys")
	if string(p.JWTProviders["url"].JWKS) != string(idp.JWKS(t)) {
		t.Fatalf("rotated keys not sent: %s", p.JWTProviders["url"].JWKS)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
