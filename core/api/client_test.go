package api_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/weftmesh/weft/core/api"
	meshca "github.com/weftmesh/weft/core/ca"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  []string
	}{
		{in: "127.0.0.1:7401", want: "https://127.0.0.1:7401"},
		{in: "https://127.0.0.1:7401", want: "https://127.0.0.1:7401"},
		{in: "https://127.0.0.1:7401/", want: "https://127.0.0.1:7401"},
		{in: "HTTPS://[::1]:7401", want: "https://[::1]:7401"},
		{in: "  https://weft-controller:7401  ", want: "https://weft-controller:7401"},
		{in: "http://127.0.0.1:7401", wantErr: []string{"plain http://", "use https://127.0.0.1:7401"}},
		{in: "HTTP://127.0.0.1:7401", wantErr: []string{"plain http://", "https://"}},
		{in: "Http://127.0.0.1:7401/v1/status", wantErr: []string{"plain http://"}},
		{in: "ftp://127.0.0.1:7401", wantErr: []string{`scheme "ftp"`, "https://HOST:PORT"}},
		{in: "https://127.0.0.1", wantErr: []string{"needs a host and a port"}},
		{in: "https://:7401", wantErr: []string{"needs a host and a port"}},
		{in: "https://127.0.0.1:7401/v1/status", wantErr: []string{"path or query"}},
		{in: "https://127.0.0.1:7401?x=1", wantErr: []string{"path or query"}},
		{in: "https://user:secret@127.0.0.1:7401", wantErr: []string{"user or password", "WEFT_TOKEN"}},
		{in: "", wantErr: []string{"empty", api.DefaultAddr}},
		{in: "http:/127.0.0.1:7401", wantErr: []string{"https://HOST:PORT"}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := api.ParseAddr(tc.in)
			if tc.wantErr == nil {
				if err != nil || got != tc.want {
					t.Fatalf("ParseAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseAddr(%q) = %q, want an error", tc.in, got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q repeats the password of the address", err)
			}
		})
	}
}

// certFile writes the certificate of a TLS test server as PEM.
func certFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	good := certFile(t, srv)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.crt"), must(os.ReadFile(good)), 0o644)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o644)
	huge := filepath.Join(t.TempDir(), "huge.pem")
	os.WriteFile(huge, append(must(os.ReadFile(good)), make([]byte, 2<<20)...), 0o644)
	tests := []struct {
		name, path string
		wantErr    []string
	}{
		{name: "file", path: good},
		{name: "directory holding ca.crt", path: dir},
		{name: "none", path: "", wantErr: []string{"WEFT_CACERT", "--ca-cert", "weft ca roots --pem"}},
		{name: "missing", path: filepath.Join(dir, "nope.pem"), wantErr: []string{"no such file", "WEFT_CACERT"}},
		{name: "not PEM", path: garbage, wantErr: []string{"holds no PEM certificate", "WEFT_CACERT"}},
		{name: "too large", path: huge, wantErr: []string{"larger than", "WEFT_CACERT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := api.LoadCA(tc.path)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestCall: the client against real TLS servers on loopback, and what it
// says when something is wrong.
func TestCall(t *testing.T) {
	var seen atomic.Value
	admin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization"))
		switch {
		case r.Header.Get("Authorization") != "Bearer tok":
			http.Error(w, "wrong token", http.StatusUnauthorized)
		case r.URL.Path == "/redirect":
			http.Redirect(w, r, "https://127.0.0.2:1/elsewhere", http.StatusFound)
		default:
			w.Write([]byte(`{"ok": true}`))
		}
	}))
	defer admin.Close()
	ca := certFile(t, admin)
	// Every httptest server has the same certificate: another CA is another
	// mesh's.
	otherMesh, err := meshca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(otherCA, otherMesh.RootsPEM(), 0o644)
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	addr := strings.TrimPrefix(admin.URL, "https://")
	// httptest's certificate names 127.0.0.1 and example.com; localhost is
	// not one of its names.
	_, port, _ := net.SplitHostPort(addr)

	tests := []struct {
		name     string
		cfg      api.Config
		path     string
		wantCode int
		wantErr  []string
	}{
		{name: "ok", cfg: api.Config{Addr: admin.URL, Token: "tok", CACert: ca}, path: "/v1/status"},
		{name: "ok without a scheme", cfg: api.Config{Addr: addr, Token: "tok", CACert: ca}, path: "/v1/status"},
		{name: "wrong token", cfg: api.Config{Addr: admin.URL, Token: "nope", CACert: ca}, path: "/v1/status", wantCode: 401, wantErr: []string{"401 Unauthorized", "wrong token"}},
		{name: "wrong CA", cfg: api.Config{Addr: admin.URL, Token: "tok", CACert: otherCA}, path: "/v1/status",
			wantErr: []string{"does not verify", otherCA, "set WEFT_CACERT or --ca-cert", "weft ca roots --pem"}},
		{name: "a name the certificate lacks", cfg: api.Config{Addr: "https://localhost:" + port, Token: "tok", CACert: ca}, path: "/v1/status",
			wantErr: []string{"certificate for other names", "--server-name localhost"}},
		{name: "a plain HTTP server", cfg: api.Config{Addr: strings.TrimPrefix(plain.URL, "http://"), Token: "tok", CACert: ca}, path: "/v1/status",
			wantErr: []string{"does not speak TLS", "upgrade"}},
		{name: "redirects are not followed", cfg: api.Config{Addr: admin.URL, Token: "tok", CACert: ca}, path: "/redirect", wantCode: 302},
		{name: "no token", cfg: api.Config{Addr: admin.URL, CACert: ca}, path: "/v1/status", wantErr: []string{"no admin token", "WEFT_TOKEN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out struct{ OK bool }
			c, err := api.New(tc.cfg)
			if err == nil {
				err = c.Call(context.Background(), "GET", tc.path, nil, &out)
			}
			if tc.wantErr == nil && tc.wantCode == 0 {
				if err != nil || !out.OK {
					t.Fatalf("Call = %v, %+v", err, out)
				}
				if got := seen.Load(); got != "Bearer tok" {
					t.Errorf("the server saw Authorization %q", got)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			var se *api.StatusError
			if tc.wantCode != 0 && (!errors.As(err, &se) || se.Code != tc.wantCode) {
				t.Errorf("error %v, want a StatusError with code %d", err, tc.wantCode)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestHTTPAddressSendsNothing: a plain http:// address is refused before
// a connection is made, so the token never leaves.
func TestHTTPAddressSendsNothing(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	for _, addr := range []string{"http://" + lis.Addr().String(), "HTTP://" + lis.Addr().String() + "/"} {
		_, err := api.New(api.Config{Addr: addr, Token: "secret-token", CACert: certFile(t, srv)})
		if err == nil || !strings.Contains(err.Error(), "use https://") || strings.Contains(err.Error(), "secret-token") {
			t.Errorf("New(%s) = %v, want a refusal that says to use https:// and does not repeat the token", addr, err)
		}
	}
	// Had the client connected, its connection would wait in the backlog
	// before this one: the first accepted must be ours.
	mine, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	first, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if first.RemoteAddr().String() != mine.LocalAddr().String() {
		t.Errorf("the listener got a connection from %s before the test's own: the client dialed an http:// address", first.RemoteAddr())
	}
}
