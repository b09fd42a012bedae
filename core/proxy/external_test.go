package proxy

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
)

// A configuration whose external service cannot be reached as declared is
// refused whole (NACKed), with the reason; the last good one stays.
func TestExternalConfigChecked(t *testing.T) {
	cfg := func(ext *meshapi.External) *meshapi.ProxyConfig {
		return &meshapi.ProxyConfig{Service: "web", TrustDomain: "weft.test", SpiffeId: "spiffe://weft.test/ns/default/svc/web",
			Upstreams: []*meshapi.Upstream{{Name: "payments", Service: "payments", SpiffeId: "spiffe://weft.test/ns/default/svc/payments",
				LocalPort: 9100, External: ext,
				Endpoints: []*meshapi.Endpoint{{InstanceId: "external:payments", Address: "127.0.115.10", Port: 443}}}}}
	}
	for _, tc := range []struct {
		name string
		ext  *meshapi.External
		want string // "" : accepted
	}{
		{"plain", &meshapi.External{Host: "api.example", Port: 443}, ""},
		{"no host", &meshapi.External{Port: 443}, "external service with no host"},
		{"bad CA", &meshapi.External{Host: "api.example", Port: 443, Tls: &meshapi.ExternalTLS{CaPem: []byte("junk")}}, "holds no PEM certificate"},
		{"bad version", &meshapi.External{Host: "api.example", Port: 443, Tls: &meshapi.ExternalTLS{CaPem: testCAPEM, MinVersion: 0x0300}}, "unknown TLS version"},
		{"rule without source", &meshapi.External{Host: "api.example", Port: 443, Authz: &meshapi.Authz{Rules: []*meshapi.AuthzRule{{}}}}, "has no source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := listenerSpecs(cfg(tc.ext))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// testCAPEM is a CA certificate (hcl/testdata/valid/external/ca.pem).
var testCAPEM = []byte(`-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIUBwW9Ohof6l5fKuwJg/wgwkf6/aAwCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUV2VmdCB0ZXN0IG91dHNpZGUgQ0EwIBcNMjYxMjA1MDMyMDA0
WhgPMjEyNjExMTEwMzIwMDRaMB8xHTAbBgNVBAMMFFdlZnQgdGVzdCBvdXRzaWRl
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGLplT5nHXfVb8OJg0V4r+kjS
ZooKV2wEVQKxwOkKatg3jidj3d9l4VZ+HM1O3lH0bBuWKvS+CgbRXXCOpqbu+KNT
MFEwHQYDVR0OBBYEFEfEfLAukKlG9eweNWjvXEUHKyUxMB8GA1UdIwQYMBaAFEfE
fLAukKlG9eweNWjvXEUHKyUxMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
SAAwRQIgX6Pm3i2wQ19BdIIwRfIFG+r5nUcx6dIhbMHySEJsM5gCIQC71RFJRc0J
qVe0ROekAylaQqCyWnUWwk66kLz6gNoVgg==
-----END CERTIFICATE-----`)
