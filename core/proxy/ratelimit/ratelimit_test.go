package ratelimit

import (
	"net/http/httptest"

	"github.com/weftmesh/weft/core/meshapi"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := &tokenBucket{rate: 2, burst: 3}
	for i := range 3 {
		if ok, _ := b.take(t0); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	ok, wait := b.take(t0)
	if ok || wait != 500*time.Millisecond {
		t.Errorf("past the burst: %v, wait %v; want refused, 500ms", ok, wait)
	}
	if ok, _ := b.take(t0.Add(500 * time.Millisecond)); !ok {
		t.Error("a token did not come back after 1/rate")
	}
	if ok, _ := b.take(t0.Add(time.Hour)); !ok {
		t.Error("refused after an hour")
	}
	// The bucket holds burst tokens at most, however long it waited.
	for i := range 2 {
		if ok, _ := b.take(t0.Add(time.Hour)); !ok {
			t.Fatalf("take %d after a refill refused", i)
		}
	}
	if ok, _ := b.take(t0.Add(time.Hour)); ok {
		t.Error("the bucket held more than its burst")
	}
	if got := RetryAfter(1500 * time.Millisecond); got != "2" {
		t.Errorf("Retry-After for 1.5s = %q, want 2", got)
	}
	if got := RetryAfter(time.Millisecond); got != "1" {
		t.Errorf("Retry-After for 1ms = %q, want 1", got)
	}
}

// A global limit's bucket starts as the whole limit, then enforces the
// share it is given, and counts what it takes.
func TestGlobalShare(t *testing.T) {
	ls, err := Compile([]*meshapi.RateLimit{{Name: "all", RequestsPerSecond: 100, Burst: 4, Global: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := ls[0]
	r := httptest.NewRequest("GET", "/", nil)
	t0 := time.Unix(1000, 0)
	if rate, burst := l.Share(); !l.Global() || rate != 100 || burst != 4 {
		t.Fatalf("before a grant: %v/s burst %d, want the whole limit, 100/s burst 4", rate, burst)
	}
	l.SetShare(t0, 1, 2)
	var admitted int
	for range 5 {
		if ok, _ := l.Allow("web", r, t0); ok {
			admitted++
		}
	}
	if req, adm := l.Usage(); admitted != 2 || req != 5 || adm != 2 {
		t.Errorf("under a share of burst 2: admitted %d, usage %d/%d; want 2, 5 requests 2 admitted", admitted, req, adm)
	}
	// One second on, one more token at 1/s.
	if ok, _ := l.Allow("web", r, t0.Add(time.Second)); !ok {
		t.Error("no token after a second at 1/s")
	}
	if _, err := Compile([]*meshapi.RateLimit{{Name: "x", RequestsPerSecond: 1, Burst: 1, Global: true, PerCaller: true}}, nil); err == nil {
		t.Error("a global limit per caller compiled")
	}
}
