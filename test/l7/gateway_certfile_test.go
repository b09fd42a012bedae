package l7

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// TestGatewayReloadsCertFiles: an HTTPS gateway listener serves a
// certificate renewed on disk (files swapped by rename, as cert-manager,
// Vault agent and certbot do) from a handshake soon after, with no
// restart and no policy change; a renewal that does not load (a
// truncated certificate, a key of another pair) is counted and the
// previous certificate is still served.
func TestGatewayReloadsCertFiles(t *testing.T) {
	var hits atomic.Int64
	g := startGateway(t, &hits)
	leaf := func() ([]byte, error) {
		d := &net.Dialer{Timeout: wait}
		c, err := tls.DialWithDialer(d, "tcp", g.https, &tls.Config{ServerName: "shop.example.com", InsecureSkipVerify: true}) // the leaf is compared below
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw, nil
	}
	reloads := func(result string) int {
		n, _ := strconv.Atoi(g.metric("public-1", `weft_gateway_certificate_reloads_total{listener="web",result="`+result+`"} `))
		return n
	}
	// swap writes data to a new file beside path and renames it over path.
	swap := func(path string, data []byte) {
		t.Helper()
		tmp := filepath.Join(filepath.Dir(path), ".new-"+filepath.Base(path))
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	read := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	first, err := leaf()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, g.cert.Cert.Certificate[0]) {
		t.Fatal("the listener does not serve the certificate of its cert_file")
	}
	if exp := g.metric("public-1", `weft_gateway_certificate_expiry_timestamp_seconds{listener="web"} `); exp == "" {
		t.Error("no weft_gateway_certificate_expiry_timestamp_seconds for listener web")
	}

	// Renewal: a new pair (another CA) swapped in, key first.
	renewed := harness.NewServerCert(t, t.TempDir(), "shop.example.com", "grpc.example.com", "secret.example.com", "vault.example.com", "other.example.com")
	start := time.Now()
	swap(g.cert.KeyFile, read(renewed.KeyFile))
	swap(g.cert.CertFile, read(renewed.CertFile))
	took := harness.Eventually(t, "the listener to serve the renewed certificate", 10*time.Second, func() error {
		got, err := leaf()
		if err != nil {
			return err
		}
		if !bytes.Equal(got, renewed.Cert.Certificate[0]) {
			return errors.New("still the previous certificate")
		}
		return nil
	})
	t.Logf("renewed certificate served %s after the files were swapped (bound 10s; checked at most every 1s; waited %s); reloads loaded=%d error=%d",
		time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond), reloads("loaded"), reloads("error"))
	if reloads("loaded") < 1 {
		t.Errorf("weft_gateway_certificate_reloads_total{result=\"loaded\"} is %d after a reload", reloads("loaded"))
	}
	// A client that trusts only the new CA gets through.
	g.cert.Pool = renewed.Pool
	if code, body, _, _ := get(t, g.httpsClient(t, false), "https://shop.example.com/"); code != 200 {
		t.Errorf("GET through the renewed certificate: %d %q", code, body)
	}

	// Broken renewals: each is refused and the renewed pair still served.
	other := harness.NewServerCert(t, t.TempDir(), "shop.example.com")
	good := read(g.cert.CertFile) // the renewed pair, at the listener's paths
	for _, tc := range []struct {
		name     string
		cert     []byte
		key      []byte // nil: unchanged
		restored bool
	}{
		{name: "truncated certificate", cert: good[:len(good)/2]},
		{name: "key of another pair", cert: good, key: read(other.KeyFile)},
	} {
		before := reloads("error")
		if tc.key != nil {
			swap(g.cert.KeyFile, tc.key)
		}
		swap(g.cert.CertFile, tc.cert)
		harness.Eventually(t, tc.name+": the failed reload counted", 10*time.Second, func() error {
			if _, err := leaf(); err != nil {
				return err
			}
			if n := reloads("error"); n <= before {
				return fmt.Errorf("reload errors %d", n)
			}
			return nil
		})
		got, err := leaf()
		if err != nil {
			t.Fatalf("%s: handshake: %v", tc.name, err)
		}
		if !bytes.Equal(got, renewed.Cert.Certificate[0]) {
			t.Errorf("%s: the listener serves another certificate than the last good one", tc.name)
		}
	}
}
