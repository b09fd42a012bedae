package local

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/plugins/sdk"
)

func TestResolveCommand(t *testing.T) {
	dir := t.TempDir()
	mustWrite := func(name string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("bin/app", 0o755)
	mustWrite("bin/data", 0o644)
	t.Setenv("PATH", filepath.Join(dir, "bin"))

	tests := []struct {
		cmd     string
		want    string
		wantErr string
	}{
		{cmd: "./bin/app", want: filepath.Join(dir, "bin", "app")},
		{cmd: "bin/../bin/app", want: filepath.Join(dir, "bin", "app")},
		{cmd: filepath.Join(dir, "bin", "app"), want: filepath.Join(dir, "bin", "app")},
		{cmd: "app", want: filepath.Join(dir, "bin", "app")}, // from PATH
		{cmd: "./bin/nope", wantErr: "does not exist"},
		{cmd: "./bin/data", wantErr: "is not executable"},
		{cmd: "./bin", wantErr: "is a directory"},
		{cmd: "nope", wantErr: `"nope" is not in PATH`},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			got, err := resolveCommand(tt.cmd, dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestBuildPlan(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "app"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := `
service "web" {
  command = "./bin/app"
  args    = ["--listen", "${HOST}:${PORT}"]
  env     = { UPSTREAM_API = "http://${HOST}:9001", NAME = "${WEFT_INSTANCE}" }
  port    = 8080
}
service "api" {
  command   = "./bin/app"
  instances = 2
  port      = 9000
  namespace = "shop"
}
`
	file := filepath.Join(dir, "workloads.hcl")
	w, diags := parseWorkloads([]byte(src), file)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	mesh := sdk.MeshContext{ControllerAddrs: []string{"127.0.0.1:7000"}, DataDir: "/data"}
	specs, diags := buildPlan(planInput{
		W: w, Mesh: mesh, ProxyPath: "/bin/weft-proxy", First: netip.MustParseAddr("127.0.0.2"),
		Prev: map[string]string{"web-0": "127.0.0.9"},
	})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	app := filepath.Join(dir, "bin", "app")
	want := []instanceSpec{
		{
			ID: "api-0", Service: "api", Workload: "api", Namespace: "shop", Address: "127.0.0.2", Port: 9000, ProxyAddr: "127.0.0.2",
			App: procSpec{
				Argv: []string{app},
				Env:  []string{"HOST=127.0.0.2", "PORT=9000", "WEFT_SERVICE=api", "WEFT_INSTANCE=api-0", "WEFT_NAMESPACE=shop"},
				Dir:  dir, Log: "/data/logs/api-0.app.log",
			},
			Proxy: procSpec{
				Argv: []string{"/bin/weft-proxy", "--instance", "api-0", "--controller", "127.0.0.1:7000",
					"--trust-bundle", "/data/trust-bundle.pem", "--admin", "127.0.0.2:15000", "--data-dir", "/data/proxy/api-0"},
				Env: []string{"WEFT_SERVICE=api", "WEFT_INSTANCE=api-0", "WEFT_NAMESPACE=shop"},
				Log: "/data/logs/api-0.proxy.log",
			},
		},
		{
			ID: "api-1", Service: "api", Workload: "api", Namespace: "shop", Address: "127.0.0.3", Port: 9000, ProxyAddr: "127.0.0.3",
			App: procSpec{
				Argv: []string{app},
				Env:  []string{"HOST=127.0.0.3", "PORT=9000", "WEFT_SERVICE=api", "WEFT_INSTANCE=api-1", "WEFT_NAMESPACE=shop"},
				Dir:  dir, Log: "/data/logs/api-1.app.log",
			},
			Proxy: procSpec{
				Argv: []string{"/bin/weft-proxy", "--instance", "api-1", "--controller", "127.0.0.1:7000",
					"--trust-bundle", "/data/trust-bundle.pem", "--admin", "127.0.0.3:15000", "--data-dir", "/data/proxy/api-1"},
				Env: []string{"WEFT_SERVICE=api", "WEFT_INSTANCE=api-1", "WEFT_NAMESPACE=shop"},
				Log: "/data/logs/api-1.proxy.log",
			},
		},
		{
			ID: "web-0", Service: "web", Workload: "web", Namespace: "default", Address: "127.0.0.9", Port: 8080, ProxyAddr: "127.0.0.9", // kept from before
			App: procSpec{
				Argv: []string{app, "--listen", "127.0.0.9:8080"},
				Env: []string{"HOST=127.0.0.9", "PORT=8080", "WEFT_SERVICE=web", "WEFT_INSTANCE=web-0", "WEFT_NAMESPACE=default",
					"UPSTREAM_API=http://127.0.0.9:9001", "NAME=web-0"},
				Dir: dir, Log: "/data/logs/web-0.app.log",
			},
			Proxy: procSpec{
				Argv: []string{"/bin/weft-proxy", "--instance", "web-0", "--controller", "127.0.0.1:7000",
					"--trust-bundle", "/data/trust-bundle.pem", "--admin", "127.0.0.9:15000", "--data-dir", "/data/proxy/web-0"},
				Env: []string{"WEFT_SERVICE=web", "WEFT_INSTANCE=web-0", "WEFT_NAMESPACE=default"},
				Log: "/data/logs/web-0.proxy.log",
			},
		},
	}
	for i := range specs {
		specs[i].PortRange = want[i].PortRange // ranges are checked by the decoding tests
	}
	if !reflect.DeepEqual(specs, want) {
		t.Errorf("plan\n got %+v\nwant %+v", specs, want)
	}
	for _, s := range specs {
		for _, kv := range s.Proxy.Env {
			if strings.HasPrefix(kv, "WEFT_JOIN_TOKEN=") {
				t.Error("a join token in a planned environment: it must be minted at each start")
			}
		}
	}
}

func TestProcSpecHash(t *testing.T) {
	base := procSpec{Argv: []string{"/a", "b"}, Env: []string{"X=1"}, Dir: "/d", Log: "/l"}
	tests := []struct {
		name   string
		change func(p *procSpec)
		same   bool
	}{
		{"unchanged", func(*procSpec) {}, true},
		{"log path does not count", func(p *procSpec) { p.Log = "/other" }, true},
		{"argument", func(p *procSpec) { p.Argv = []string{"/a", "c"} }, false},
		{"argument split differently", func(p *procSpec) { p.Argv = []string{"/ab"} }, false},
		{"environment", func(p *procSpec) { p.Env = []string{"X=2"} }, false},
		{"argument moved into the environment", func(p *procSpec) { p.Argv = []string{"/a"}; p.Env = []string{"b", "X=1"} }, false},
		{"directory", func(p *procSpec) { p.Dir = "/e" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			tt.change(&p)
			if got := p.hash() == base.hash(); got != tt.same {
				t.Errorf("same hash = %v, want %v", got, tt.same)
			}
		})
	}
}

// TestBuildPlanServiceAttribute: a block whose `service` names another
// service serves that service, as the workload named by its label.
func TestBuildPlanServiceAttribute(t *testing.T) {
	src := `
service "store" {
  command = "/bin/sh"
  port    = 8080
}
service "impostor" {
  command = "/bin/sh"
  port    = 8080
  service = "store"
}
`
	w, diags := parseWorkloads([]byte(src), filepath.Join(t.TempDir(), "workloads.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	specs, diags := buildPlan(planInput{W: w, Mesh: sdk.MeshContext{DataDir: "/data"}, ProxyPath: "/bin/weft-proxy", First: netip.MustParseAddr("127.0.0.2")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := map[string]instanceSpec{}
	for _, s := range specs {
		got[s.ID] = s
	}
	for id, want := range map[string][2]string{"store-0": {"store", "store"}, "impostor-0": {"store", "impostor"}} {
		s, ok := got[id]
		if !ok || s.Service != want[0] || s.Workload != want[1] {
			t.Errorf("%s: service %q, workload %q; want %q, %q", id, s.Service, s.Workload, want[0], want[1])
		}
		if !slices.Contains(s.App.Env, "WEFT_SERVICE="+want[0]) || !slices.Contains(s.Proxy.Env, "WEFT_SERVICE="+want[0]) {
			t.Errorf("%s: WEFT_SERVICE is not %s: app %v, proxy %v", id, want[0], s.App.Env, s.Proxy.Env)
		}
	}
	if in := instancesOf(translate(localState{file: "w.hcl", statuses: []instanceStatus{{Spec: got["impostor-0"]}}})); in[0].Service != "store" || in[0].Workload["name"] != "impostor" {
		t.Errorf("translated %+v: want service store, workload impostor", in[0])
	}
}
