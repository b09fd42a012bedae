package inject

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for 127.0.0.1 named cn into
// dir the way the kubelet updates a Secret volume: the files are
// symlinks into a data directory that is replaced in one rename.
func writePair(t *testing.T, dir, cn string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	data := filepath.Join(dir, ".."+cn)
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(data, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, filepath.Join(data, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	link := filepath.Join(dir, "..data.tmp")
	if err := os.Symlink(filepath.Base(data), link); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeReadsRenewedCertificate runs the webhook server and renews its
// certificate on disk as the kubelet renews a Secret volume: the next
// handshake presents the new certificate; a broken pair keeps the last
// good one in service and says why.
func TestServeReadsRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	first := writePair(t, dir, "first")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, lis, ServeOptions{Options: opts, CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	// presented does one handshake (and GET /healthz) and returns the
	// certificate the server presented.
	presented := func() *x509.Certificate {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true} // the test reads the certificate itself
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + lis.Addr().String() + HealthPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", HealthPath, resp.Status)
		}
		return resp.TLS.PeerCertificates[0]
	}
	if got := presented(); !got.Equal(first) {
		t.Fatalf("first handshake presented %q, want %q", got.Subject.CommonName, first.Subject.CommonName)
	}
	second := writePair(t, dir, "second")
	if got := presented(); !got.Equal(second) {
		t.Fatalf("after renewal the server presented %q, want the renewed %q", got.Subject.CommonName, second.Subject.CommonName)
	}
	// A key that does not match: the renewed pair stays in service.
	write(t, filepath.Join(dir, "..second", "tls.key"), []byte("not a key"))
	if got := presented(); !got.Equal(second) {
		t.Fatalf("with a broken key on disk the server presented %q, want the last good %q", got.Subject.CommonName, second.Subject.CommonName)
	}
}

// Serve refuses to start without what it needs, saying what is missing.
func TestServeRefusesMissingCertificate(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	for _, tc := range []struct {
		name string
		o    ServeOptions
		want string
	}{
		{"no certificate", ServeOptions{Options: opts}, "--tls-cert"},
		{"missing files", ServeOptions{Options: opts, CertFile: "/nonexistent/tls.crt", KeyFile: "/nonexistent/tls.key"}, "/nonexistent/tls.crt"},
		{"no image", ServeOptions{CertFile: "x", KeyFile: "y"}, "proxy image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Serve(context.Background(), lis, tc.o)
			if err == nil || !contains(err.Error(), tc.want) {
				t.Errorf("Serve: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
