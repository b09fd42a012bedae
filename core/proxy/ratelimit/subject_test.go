package ratelimit

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestPerJWTSubject: each end user has a bucket; their number is bounded.
func TestPerJWTSubject(t *testing.T) {
	ls, err := Compile([]*meshapi.RateLimit{{Name: "users", RequestsPerSecond: 1, Burst: 2, PerJwtSubject: "corp"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := ls[0]
	if l.JWTProvider() != "corp" {
		t.Fatalf("JWTProvider = %q", l.JWTProvider())
	}
	r := httptest.NewRequest("GET", "/", nil)
	now := time.Unix(1000, 0)
	for _, sub := range []string{"alice", "bob"} {
		for i := range 3 {
			ok, _ := l.AllowSubject("web", sub, r, now)
			if ok != (i < 2) {
				t.Fatalf("%s request %d: allowed %v, want %v (burst 2 each)", sub, i+1, ok, i < 2)
			}
		}
	}
	// Many end users: the buckets stay bounded.
	for i := range MaxSubjectBuckets + 500 {
		l.AllowSubject("web", fmt.Sprint("user-", i), r, now)
	}
	if n := len(l.buckets); n > MaxSubjectBuckets+1 {
		t.Fatalf("%d buckets, more than %d", n, MaxSubjectBuckets+1)
	}
	// Later, filled-up buckets make room again.
	later := now.Add(time.Minute)
	if ok, _ := l.AllowSubject("web", "newcomer", r, later); !ok {
		t.Fatal("a new end user was refused after the buckets filled up again")
	}
	if _, ok := l.buckets["\x00newcomer"]; !ok {
		t.Fatal("the newcomer got no bucket of its own")
	}
}
