package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
)

// joinTokensFromAdmin: a launcher that is not an adapter asks the admin API
// for a join token, and the controller admits a sidecar with it, once.
func joinTokensFromAdmin(t *testing.T, ctl *harness.Controller, instance, service string) {
	post := func(auth string) (*http.Response, error) {
		body, _ := json.Marshal(map[string]any{"adapter": "local", "instance": instance, "service": service, "ttl_seconds": 60})
		req, _ := http.NewRequest("POST", "http://"+ctl.Admin+"/v1/join-tokens", bytes.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		return (&http.Client{Timeout: 10 * time.Second}).Do(req)
	}
	resp, err := post("wrong")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("join token with a wrong admin token: %s, want 401", resp.Status)
	}
	tok, _ := os.ReadFile(filepath.Join(ctl.DataDir, "admin.token"))
	resp, err = post(strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !strings.HasPrefix(out.Token, "wj1.") {
		t.Fatalf("join token answer: %v %+v", err, out)
	}

	roots, err := os.ReadFile(filepath.Join(ctl.DataDir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(roots)
	conn, err := grpc.NewClient(ctl.Listen, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	join := func() (*meshapi.Credentials, error) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return meshapi.NewMeshClient(conn).Join(ctx, &meshapi.JoinRequest{InstanceId: instance, JoinToken: out.Token, CsrDer: csr})
	}
	creds, err := join()
	if err != nil {
		t.Fatalf("joining with the admin API's token: %v", err)
	}
	if creds.SpiffeId != id(service) {
		t.Errorf("issued identity %s, want %s", creds.SpiffeId, id(service))
	}
	if _, err := join(); err == nil {
		t.Error("the admin API's token admitted a second sidecar")
	}
}
