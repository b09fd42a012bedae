package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/spiffe"
)

// TestCACommands runs `weft ca rotate` and `weft ca roots` against the
// admin API's handler.
func TestCACommands(t *testing.T) {
	h := newTestAdmin(t)
	dir, authority, admin := h.dataDir, h.authority, h.api.URL
	run := func(args ...string) (string, error) {
		cmd := newCACmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append(args, "--admin", admin, "--data-dir", dir))
		err := cmd.Execute()
		return out.String(), err
	}
	first := authority.ActiveRootID()

	for _, tc := range []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{"roots before", []string{"roots"}, []string{first, "active"}, ""},
		{"rotate", []string{"rotate"}, []string{"Rotated the CA root", first, "trusted until"}, ""},
		{"roots after", []string{"roots"}, []string{first, "retiring at", "active"}, ""},
		{"rotate again while the first root is trusted", []string{"rotate", "--wait", "5s"}, []string{"All 0 connected sidecars"}, ""},
		{"negative wait", []string{"rotate", "--wait", "-1s"}, nil, "want a duration of 0 or more"},
		{"the bundle as PEM", []string{"roots", "--pem"}, []string{"-----BEGIN CERTIFICATE-----"}, ""},
		{"PEM or JSON", []string{"roots", "--pem", "--json"}, nil, "none of the others can be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if n := len(authority.Roots()); n != 3 {
		t.Errorf("after two rotations the CA has %d roots, want 3", n)
	}
	if out, _ := run("roots", "--pem"); out != string(authority.RootsPEM()) {
		t.Errorf("weft ca roots --pem printed\n%s\nwant the CA's bundle\n%s", out, authority.RootsPEM())
	}

	os.WriteFile(filepath.Join(dir, "admin.token"), []byte("wrong\n"), 0o600)
	if _, err := run("rotate"); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "admin.token") || !strings.Contains(err.Error(), "WEFT_TOKEN") {
		t.Errorf("rotate with a wrong token: %v, want a 401 that names admin.token", err)
	}
}

// startAdmin serves the admin API's handler as the controller does: HTTPS
// with the controller's own certificate, issued by srv for 127.0.0.1.
func startAdmin(t *testing.T, token string, ctl *controller.Controller, srv *meshserver.Server, authority *ca.CA) *adminTestServer {
	t.Helper()
	serving, err := srv.ServingTLSConfig(spiffe.Identity{TrustDomain: "weft.local", Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService},
		certHosts("127.0.0.1", "127.0.0.1", nil))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewServer(api.NewHandler(api.Options{Token: token, Mesh: ctl, Sidecars: srv, Authority: authority}), serving)
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { hs.Close(); <-done })
	return &adminTestServer{URL: "https://" + lis.Addr().String(), Addr: lis.Addr().String()}
}

type adminTestServer struct{ URL, Addr string }
