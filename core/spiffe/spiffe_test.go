package spiffe

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Identity
		wantErr string
	}{
		{in: "spiffe://weft.local/ns/default/svc/api", want: Identity{"weft.local", "default", "api"}},
		{in: "spiffe://example.org/ns/team-a/svc/store", want: Identity{"example.org", "team-a", "store"}},
		{in: "https://weft.local/ns/default/svc/api", wantErr: "want spiffe://"},
		{in: "spiffe:///ns/default/svc/api", wantErr: "want spiffe://"},
		{in: "spiffe://weft.local/svc/api", wantErr: "want spiffe://"},
		{in: "spiffe://weft.local/ns/default/svc/", wantErr: "want spiffe://"},
		{in: "spiffe://weft.local/ns/default/svc/api/extra", wantErr: "want spiffe://"},
		{in: "::not a url", wantErr: "parsing SPIFFE ID"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want the input back", got.String())
			}
		})
	}
}

func TestFromCert(t *testing.T) {
	u := func(s string) *url.URL { v, _ := url.Parse(s); return v }
	tests := []struct {
		name    string
		uris    []*url.URL
		want    string
		wantErr string
	}{
		{"one SPIFFE ID", []*url.URL{u("spiffe://t/ns/n/svc/s")}, "spiffe://t/ns/n/svc/s", ""},
		{"other URIs are ignored", []*url.URL{u("https://example.com"), u("spiffe://t/ns/n/svc/s")}, "spiffe://t/ns/n/svc/s", ""},
		{"none", nil, "", "no SPIFFE ID"},
		{"two", []*url.URL{u("spiffe://t/ns/n/svc/a"), u("spiffe://t/ns/n/svc/b")}, "", "more than one"},
		{"malformed", []*url.URL{u("spiffe://t/workload/x")}, "", "want spiffe://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromCert(&x509.Certificate{URIs: tc.uris})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("FromCert = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestVerifyPeerNoCertificate(t *testing.T) {
	if _, err := VerifyPeer(nil, x509.NewCertPool(), "t", timeZero); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("error = %v, want 'no certificate'", err)
	}
}

var timeZero = time.Time{}
