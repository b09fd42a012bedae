package ratelimit

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestPerSourceIPEvasion: a client that spends its burst, then comes back
// with headers that name another client, or from another spelling or
// address of the same network, is still refused; many sources cost a
// bounded table.
func TestPerSourceIPEvasion(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name          string
		first, second string // RemoteAddr of the burst, then of the retry
		hdr           map[string]string
		refused       bool // the retry is refused
	}{
		{"same address", "192.0.2.7:1000", "192.0.2.7:2000", nil, true},
		{"X-Forwarded-For names another", "192.0.2.7:1000", "192.0.2.7:2000", map[string]string{"X-Forwarded-For": "198.51.100.1"}, true},
		{"X-Real-IP and Forwarded", "192.0.2.7:1000", "192.0.2.7:2000", map[string]string{"X-Real-Ip": "198.51.100.1", "Forwarded": "for=198.51.100.1"}, true},
		{"IPv4-mapped IPv6 spelling", "192.0.2.7:1000", "[::ffff:192.0.2.7]:2000", nil, true},
		{"IPv6 in another case and zero spelling", "[2001:db8::1]:1000", "[2001:DB8:0:0::1]:2000", nil, true},
		{"IPv6 with a zone", "[fe80::1%eth0]:1000", "[fe80::1%eth1]:2000", nil, true},
		{"another address of the same IPv6 /64", "[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:2000", nil, true},
		{"another IPv6 /64", "[2001:db8:1:2::1]:1000", "[2001:db8:1:3::1]:2000", nil, false},
		{"another IPv4 address", "192.0.2.7:1000", "192.0.2.8:1000", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls, err := Compile([]*meshapi.RateLimit{{Name: "ip", RequestsPerSecond: 1, Burst: 2, PerSourceIp: true}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			l := ls[0]
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.first
			for range 2 {
				l.Allow("", r, now)
			}
			r = httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.second
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			if ok, _ := l.Allow("", r, now); ok == tc.refused {
				t.Errorf("the retry from %s: allowed %v, want %v", tc.second, ok, !tc.refused)
			}
		})
	}

	// 100000 sources at once: the table stays within MaxBuckets, and a
	// source in the middle of the flood is limited all the same.
	ls, err := Compile([]*meshapi.RateLimit{{Name: "ip", RequestsPerSecond: 1, Burst: 1, PerSourceIp: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := ls[0]
	r := httptest.NewRequest("GET", "/", nil)
	peak := 0
	for i := range 100000 {
		r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255)
		l.Allow("", r, now)
		peak = max(peak, len(l.buckets))
	}
	t.Logf("100000 sources: at most %d buckets (MaxBuckets %d)", peak, MaxBuckets)
	if peak > MaxBuckets {
		t.Errorf("the bucket table grew to %d, past MaxBuckets %d", peak, MaxBuckets)
	}
}
