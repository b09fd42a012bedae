package jobspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// renderBody renders src and returns the group's body, parsed back.
func renderGroup(t *testing.T, src string) (*hclsyntax.Body, string, hcl.Diagnostics) {
	t.Helper()
	out, _, diags := Render("x.nomad", []byte(src), defaults)
	if diags.HasErrors() {
		t.Fatalf("Render: %v", diags)
	}
	f, d := hclsyntax.ParseConfig(out, "out", hcl.InitialPos)
	if d.HasErrors() {
		t.Fatalf("rendered job does not parse: %v\n%s", d, out)
	}
	job := blocksOf(f.Body.(*hclsyntax.Body), "job")[0]
	return blocksOf(job.Body, "group")[0].Body, string(out), diags
}

func literalOf(t *testing.T, b *hclsyntax.Body, name string) string {
	t.Helper()
	a, ok := b.Attributes[name]
	if !ok {
		return ""
	}
	v, d := a.Expr.Value(nil)
	if d.HasErrors() {
		// a Nomad runtime interpolation: give back its source
		return "(template)"
	}
	return v.AsString()
}

// TestRenderBridge: with the default network mode, the group network
// publishes the sidecar's mesh port and nothing else; the app and the
// upstreams are on the allocation's loopback.
func TestRenderBridge(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "bridge.nomad"))
	if err != nil {
		t.Fatal(err)
	}
	g, out, diags := renderGroup(t, string(src))
	if len(diags) != 0 {
		t.Errorf("diagnostics for a bridge job: %v", diags)
	}
	nets := blocksOf(g, "network")
	if len(nets) != 1 {
		t.Fatalf("network blocks: %d", len(nets))
	}
	if m := literalOf(t, nets[0].Body, "mode"); m != "bridge" {
		t.Errorf("network mode = %q, want bridge", m)
	}
	ports := blocksOf(nets[0].Body, "port")
	if len(ports) != 1 || label(ports[0]) != "mesh" {
		var ls []string
		for _, p := range ports {
			ls = append(ls, label(p))
		}
		t.Fatalf("published ports %v, want only mesh", ls)
	}
	if _, ok := ports[0].Body.Attributes["static"]; ok {
		t.Errorf("the mesh port has a static host port")
	}
	if to, ok := ports[0].Body.Attributes["to"]; !ok {
		t.Errorf("the mesh port has no to")
	} else if v, _ := to.Expr.Value(nil); v.AsBigFloat().String() != "15001" {
		t.Errorf("mesh to = %v, want 15001", v)
	}
	svc := blocksOf(g, "service")[0]
	if p := literalOf(t, svc.Body, "port"); p != "9090" {
		t.Errorf("service port = %q, want the app's port inside the allocation, 9090", p)
	}
	for _, task := range blocksOf(g, "task") {
		if label(task) == ProxyTask {
			continue
		}
		env := blocksOf(task.Body, "env")
		if len(env) != 1 {
			t.Fatalf("task %s: %d env blocks", label(task), len(env))
		}
		for k, want := range map[string]string{
			"NOMAD_ADDR_http": "127.0.0.1:9090", "NOMAD_IP_http": "127.0.0.1", "NOMAD_PORT_http": "9090",
			"NOMAD_ADDR_upstream_store": "127.0.0.1:9002", "NOMAD_ADDR_upstream_user_db": "127.0.0.1:9003",
		} {
			if got := literalOf(t, env[0].Body, k); got != want {
				t.Errorf("task %s: %s = %q, want %q", label(task), k, got, want)
			}
		}
	}
	for _, bad := range []string{"weft_admin", "NOMAD_ADDR_weft_admin", "upstream_store\" {", "static"} {
		if strings.Contains(out, bad) {
			t.Errorf("bridge job mentions %q:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, `"--admin", "127.0.0.1:15000"`) {
		t.Errorf("the sidecar's admin API is not on the allocation's loopback:\n%s", out)
	}
}

// TestRenderBridgeDefaults: no to, no app_port: the app gets 8080; an
// app_port without a port block is enough; a user's own service block is
// pointed at the app's port inside the allocation.
func TestRenderBridgeDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, network, weft, service string
		wantPort                     string
	}{
		{name: "default app port", network: `port "app" {}`, wantPort: "8080"},
		{name: "app_port without a port block", network: `port "public" {
        static = 8443
        to     = 7000
      }`, weft: "app_port = 7000", wantPort: "7000"},
		{name: "user service block rewritten", network: `port "app" {
        to = 7001
      }`, service: `service {
      name     = "web"
      provider = "nomad"
      port     = "app"
    }`, wantPort: "7001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "job \"x\" {\n  group \"web\" {\n    network {\n      " + tc.network + "\n    }\n    " + tc.service +
				"\n    weft {\n      " + tc.weft + "\n    }\n    task \"app\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n"
			g, out, _ := renderGroup(t, src)
			svcs := blocksOf(g, "service")
			if len(svcs) != 1 {
				t.Fatalf("%d service blocks:\n%s", len(svcs), out)
			}
			if p := literalOf(t, svcs[0].Body, "port"); p != tc.wantPort {
				t.Errorf("service port = %q, want %q:\n%s", p, tc.wantPort, out)
			}
			for _, p := range blocksOf(blocksOf(g, "network")[0].Body, "port") {
				if label(p) == "app" {
					t.Errorf("the app's port block is still published:\n%s", out)
				}
			}
		})
	}
}

// TestRenderHostModeIsLoud: the opt-out renders host networking with a
// warning diagnostic and a warning comment in the job, and tells the app
// to listen on 127.0.0.1.
func TestRenderHostModeIsLoud(t *testing.T) {
	src := "job \"x\" {\n  group \"web\" {\n    network {\n      port \"app\" {}\n    }\n    weft {\n      network_mode = \"host\"\n    }\n    task \"app\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n"
	g, out, diags := renderGroup(t, src)
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Summary != "Isolation is off" || diags[0].Subject == nil {
		t.Errorf("diagnostics %v: want one warning, Isolation is off, with a range", diags)
	}
	if !strings.Contains(out, "# "+IsolationOffWarning) {
		t.Errorf("the rendered job does not say isolation is off:\n%s", out)
	}
	if _, ok := blocksOf(g, "network")[0].Body.Attributes["mode"]; ok {
		t.Errorf("host mode job sets a network mode:\n%s", out)
	}
	var app *hclsyntax.Block
	for _, task := range blocksOf(g, "task") {
		if label(task) == "app" {
			app = task
		}
	}
	env := blocksOf(app.Body, "env")
	if len(env) != 1 || literalOf(t, env[0].Body, "NOMAD_IP_app") != "127.0.0.1" {
		t.Errorf("the app is not told to listen on 127.0.0.1:\n%s", out)
	}
	if !strings.Contains(out, `NOMAD_ADDR_app = "127.0.0.1:${NOMAD_PORT_app}"`) {
		t.Errorf("NOMAD_ADDR_app is not the loopback address with Nomad's port:\n%s", out)
	}
}
