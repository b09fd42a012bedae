package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

const resumeTD = "weft.test"

// resumeCreds are credentials for service svc from leafCA, trusting the
// roots of trust.
func resumeCreds(t testing.TB, leafCA *proxytest.CA, svc string, ttl time.Duration, trust ...*proxytest.CA) *Credentials {
	t.Helper()
	cert, err := leafCA.Leaf("default", svc, proxytest.LeafOptions{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	var roots []byte
	for _, ca := range trust {
		roots = append(roots, ca.RootPEM...)
	}
	c, err := NewCredentials(cert, roots)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// resumeServer is an api sidecar whose app answers with the caller the
// inbound told it (X-Weft-Caller); it returns the inbound's address.
func resumeServer(t testing.TB, c *Credentials) (*Proxy, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Weft-Caller"))
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	p := New(Options{Log: io.Discard, DrainTimeout: time.Second})
	t.Cleanup(func() { p.Close() })
	p.SetCredentials(c)
	port := ln.Addr().(*net.TCPAddr).Port
	err = p.Apply(1, &meshapi.ProxyConfig{
		InstanceId: "api-1", Service: "api", Namespace: "default", TrustDomain: resumeTD,
		SpiffeId: "spiffe://" + resumeTD + "/ns/default/svc/api",
		Inbound: &meshapi.Inbound{BindAddress: "127.0.0.1", AppAddress: "127.0.0.1", AppPort: uint32(port), Protocol: meshapi.Protocol_PROTOCOL_HTTP,
			Authz: &meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "web", Action: meshapi.Action_ACTION_ALLOW}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Addr(KeyInbound).String()
}

// call dials addr with cfg on a new connection, sends one request and
// returns whether the session was resumed and the caller the app was
// told, or the error of the dial or of the exchange.
func call(addr string, cfg *tls.Config) (resumed bool, caller string, err error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /who HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return false, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c.ConnectionState().DidResume, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return c.ConnectionState().DidResume, string(b), err
}

// TestMeshSessionResumption: a mesh client resumes its TLS session with
// a sidecar's inbound (a ticket from the first connection), and the
// callee still knows the caller from the certificate kept in the
// session; nothing lets a resumed session carry a peer past what a full
// handshake allows now: the caller's certificate expired, the callee's
// roots rotated to a new CA, the identity the caller wants changed; a
// renewal on either side gets a full handshake (the caller then
// presents its new certificate); WEFT_TLS_RESUMPTION=off turns it off.
func TestMeshSessionResumption(t *testing.T) {
	webID := "spiffe://" + resumeTD + "/ns/default/svc/web"
	apiID := "spiffe://" + resumeTD + "/ns/default/svc/api"
	ca, err := proxytest.NewCA(resumeTD)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := proxytest.NewCA(resumeTD) // the next root
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		off  bool
		// change happens between the first call and the second.
		change func(t *testing.T, server, client *Proxy, want *string)
		// What the second call must give: resumed, or an error (the
		// caller not let through).
		resumed, refused bool
	}{
		{name: "resumed", resumed: true},
		{name: "resumption off", off: true},
		{name: "the caller's certificate expired", refused: true, change: func(t *testing.T, _, client *Proxy, _ *string) {
			past := client.Credentials().Cert.Leaf.NotAfter.Add(time.Minute)
			peerClock = func() time.Time { return past }
		}},
		{name: "the callee's roots rotated to a new CA", refused: true, change: func(t *testing.T, server, _ *Proxy, _ *string) {
			server.SetCredentials(resumeCreds(t, ca2, "api", 0, ca2))
		}},
		{name: "the wanted identity changed", refused: true, change: func(t *testing.T, _, _ *Proxy, want *string) {
			*want = "spiffe://" + resumeTD + "/ns/default/svc/other"
		}},
		{name: "the callee renewed", change: func(t *testing.T, server, _ *Proxy, _ *string) {
			server.SetCredentials(resumeCreds(t, ca, "api", 0, ca))
		}},
		{name: "the caller renewed", change: func(t *testing.T, _, client *Proxy, _ *string) {
			client.SetCredentials(resumeCreds(t, ca, "web", 0, ca, ca2))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() { peerClock = time.Now }()
			if tc.off {
				t.Setenv(envTLSResumption, "off")
			}
			server, addr := resumeServer(t, resumeCreds(t, ca, "api", 20*time.Hour, ca))
			client := New(Options{Log: io.Discard})
			defer client.Close()
			// The caller trusts both roots (a rotation under way), its
			// certificate is from the first.
			client.SetCredentials(resumeCreds(t, ca, "web", time.Hour, ca, ca2))
			want := apiID
			cfg := client.clientTLS(func() string { return want }, []string{"http/1.1"})
			if resumed, caller, err := call(addr, cfg); err != nil || resumed || caller != webID {
				t.Fatalf("first call: resumed %v, the app was told caller %q, err %v; want a full handshake and %s", resumed, caller, err, webID)
			}
			if tc.change != nil {
				tc.change(t, server, client, &want)
			}
			resumed, caller, err := call(addr, cfg)
			t.Logf("second call: resumed %v, the app was told caller %q, err %v", resumed, caller, err)
			if tc.refused {
				if err == nil {
					t.Fatalf("second call went through (resumed %v, caller %q); want it refused", resumed, caller)
				}
				return
			}
			if err != nil || caller != webID {
				t.Fatalf("second call: the app was told caller %q, err %v; want %s", caller, err, webID)
			}
			if resumed != tc.resumed {
				t.Fatalf("second call resumed: %v, want %v", resumed, tc.resumed)
			}
			if tc.change != nil && !tc.off {
				// After the full handshake the new session resumes.
				if resumed, caller, err := call(addr, cfg); err != nil || !resumed || caller != webID {
					t.Fatalf("third call: resumed %v, caller %q, err %v; want resumed, %s", resumed, caller, err, webID)
				}
			}
		})
	}
}

// BenchmarkMeshHandshake opens mTLS connections between two proxies'
// mesh configs (clientTLS, serverTLS) on loopback, each to its first
// byte from the server (the server has checked the client by then):
// with every handshake full, and with sessions resumed. Both sides' CPU
// is in ns/op.
//
//	go test -run - -bench MeshHandshake -benchmem ./core/proxy
func BenchmarkMeshHandshake(b *testing.B) {
	for _, bc := range []struct {
		name string
		off  bool
	}{{"full", true}, {"resumed", false}} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.off {
				b.Setenv(envTLSResumption, "off")
			}
			ca, err := proxytest.NewCA(resumeTD)
			if err != nil {
				b.Fatal(err)
			}
			server := New(Options{Log: io.Discard})
			defer server.Close()
			server.SetCredentials(resumeCreds(b, ca, "api", 0, ca))
			client := New(Options{Log: io.Discard})
			defer client.Close()
			client.SetCredentials(resumeCreds(b, ca, "web", 0, ca))
			scfg := server.serverTLS([]string{"http/1.1"})
			ccfg := client.clientTLS(func() string { return "spiffe://" + resumeTD + "/ns/default/svc/api" }, []string{"http/1.1"})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						tc := tls.Server(c, scfg)
						if tc.Handshake() == nil {
							tc.Write([]byte{1})
							tc.Read(make([]byte, 1)) // until the client closes
						}
					}()
				}
			}()
			resumed := 0
			b.ReportAllocs()
			for b.Loop() {
				c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					b.Fatal(err)
				}
				if c.ConnectionState().DidResume {
					resumed++
				}
				c.Close()
			}
			b.ReportMetric(float64(resumed)/float64(b.N), "resumed/op")
		})
	}
}
