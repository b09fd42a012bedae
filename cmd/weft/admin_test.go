package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/registry"
)

// TestAdminFlagsResolve: each flag wins over its environment variable, and
// the data directory is the default for the token and the CA.
func TestAdminFlagsResolve(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, d := range []string{".weft", "other"} {
		os.MkdirAll(filepath.Join(d, "ca"), 0o700)
		os.WriteFile(filepath.Join(d, "admin.token"), []byte("token-of-"+d+"\n"), 0o600)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want api.Config
	}{
		{name: "defaults", want: api.Config{Addr: api.DefaultAddr, Token: "token-of-.weft", CACert: ".weft/ca/ca.crt"}},
		{name: "environment",
			env:  map[string]string{"WEFT_ADDR": "https://weft-controller:7401", "WEFT_TOKEN": "env-token", "WEFT_CACERT": "env.pem"},
			want: api.Config{Addr: "https://weft-controller:7401", Token: "env-token", CACert: "env.pem"}},
		{name: "flags win over the environment",
			env:  map[string]string{"WEFT_ADDR": "https://weft-controller:7401", "WEFT_TOKEN": "env-token", "WEFT_CACERT": "env.pem"},
			args: []string{"--admin", "https://127.0.0.1:9", "--data-dir", "other", "--ca-cert", "flag.pem"},
			want: api.Config{Addr: "https://127.0.0.1:9", Token: "token-of-other", CACert: "flag.pem"}},
		{name: "--data-dir wins over WEFT_TOKEN and WEFT_CACERT",
			env:  map[string]string{"WEFT_TOKEN": "env-token", "WEFT_CACERT": "env.pem"},
			args: []string{"--data-dir", "other"},
			want: api.Config{Addr: api.DefaultAddr, Token: "token-of-other", CACert: "other/ca/ca.crt"}},
		{name: "--ca-cert alone", args: []string{"--ca-cert", "flag.pem"},
			want: api.Config{Addr: api.DefaultAddr, Token: "token-of-.weft", CACert: "flag.pem"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"WEFT_ADDR", "WEFT_TOKEN", "WEFT_CACERT"} {
				t.Setenv(k, tc.env[k])
			}
			var a adminFlags
			var got api.Config
			cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error {
				var err error
				got, err = a.resolve()
				return err
			}}
			a.register(cmd)
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("resolved %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestStatusAgainstTLSAdmin runs `weft status` against the admin API served
// as the controller serves it: with the environment, with a wrong CA, with
// a plain http:// address.
func TestStatusAgainstTLSAdmin(t *testing.T) {
	h := newTestAdmin(t)
	other := filepath.Join(t.TempDir(), "other-mesh.pem")
	os.WriteFile(other, anotherMeshRoots(t), 0o644)
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		wantErr []string
	}{
		{name: "environment", env: map[string]string{"WEFT_ADDR": h.api.URL, "WEFT_TOKEN": "tok", "WEFT_CACERT": h.caFile}, want: "policy:"},
		{name: "data directory", args: []string{"--admin", h.api.Addr, "--data-dir", h.dataDir}, want: "policy:"},
		{name: "wrong CA", args: []string{"--admin", h.api.URL, "--data-dir", h.dataDir, "--ca-cert", other},
			wantErr: []string{"does not verify", "set WEFT_CACERT or --ca-cert", "weft ca roots --pem"}},
		{name: "wrong token", env: map[string]string{"WEFT_ADDR": h.api.URL, "WEFT_TOKEN": "nope", "WEFT_CACERT": h.caFile},
			wantErr: []string{"401 Unauthorized", "WEFT_TOKEN"}},
		{name: "plain http", env: map[string]string{"WEFT_ADDR": "http://" + h.api.Addr, "WEFT_TOKEN": "tok", "WEFT_CACERT": h.caFile},
			wantErr: []string{"plain http://", "use https://" + h.api.Addr}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"WEFT_ADDR", "WEFT_TOKEN", "WEFT_CACERT"} {
				t.Setenv(k, tc.env[k])
			}
			cmd := newStatusCmd()
			var out strings.Builder
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(tc.args)
			err := cmd.Execute()
			if tc.wantErr == nil {
				if err != nil || !strings.Contains(out.String(), tc.want) {
					t.Fatalf("status: %v\n%s", err, out.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("status succeeded, want an error:\n%s", out.String())
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// testAdmin is an admin API served as the controller serves it, over a
// fresh CA in dataDir, with the token "tok" in dataDir/admin.token.
type testAdmin struct {
	dataDir, caFile string
	authority       *ca.CA
	api             *adminTestServer
}

func newTestAdmin(t *testing.T) *testAdmin {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.LoadOrCreate(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New()
	ctl := controller.New(controller.Options{Registry: reg})
	srv := meshserver.New(meshserver.Options{CA: authority, Workloads: ctl})
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testAdmin{dataDir: dir, caFile: filepath.Join(dir, "ca", "ca.crt"), authority: authority,
		api: startAdmin(t, "tok", ctl, srv, authority)}
}

// anotherMeshRoots is the CA bundle of another mesh.
func anotherMeshRoots(t *testing.T) []byte {
	t.Helper()
	other, err := ca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return other.RootsPEM()
}
