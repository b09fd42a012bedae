package jobspec

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The node proxy's system job, against its golden file.
func TestNodeProxyJobGolden(t *testing.T) {
	out, err := NodeProxyJob(NodeProxy{
		Datacenters: []string{"dc1"}, Command: "/usr/local/bin/weft-proxy",
		Controllers: []string{"10.0.0.5:7410", "10.0.0.6:7410"}, TrustBundle: "/etc/weft/ca.crt", DiscoverInterval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, d := hclsyntax.ParseConfig(out, "out", hcl.InitialPos); d.HasErrors() {
		t.Fatalf("the job does not parse: %v\n%s", d, out)
	}
	golden := filepath.Join("testdata", "node-proxy.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("NodeProxyJob differs from %s (go test -update rewrites it):\n%s", golden, out)
	}
}

func TestNodeProxyJobRefuses(t *testing.T) {
	ok := NodeProxy{Controllers: []string{"10.0.0.5:7410"}, TrustBundle: "/etc/weft/ca.crt"}
	for _, tt := range []struct {
		name string
		mod  func(*NodeProxy)
		want string
	}{
		{"no controller", func(np *NodeProxy) { np.Controllers = nil }, "pass --controller"},
		{"no trust bundle", func(np *NodeProxy) { np.TrustBundle = "" }, "pass --trust-bundle"},
		{"docker", func(np *NodeProxy) { np.Driver = "docker" }, `not "docker"`},
		{"job name with a quote", func(np *NodeProxy) { np.Job = `x" { }` }, "job name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			np := ok
			tt.mod(&np)
			if _, err := NodeProxyJob(np); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NodeProxyJob: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// The policy's proxy_mode (weft nomad render --policy) chooses the mode of
// a stanza that names none, and must agree with one that does.
func TestRenderFollowsPolicyProxyMode(t *testing.T) {
	job := func(mode string) []byte {
		attr := ""
		if mode != "" {
			attr = "proxy_mode = \"" + mode + "\"\n"
		}
		return []byte("job \"x\" {\n  group \"api\" {\n    network {\n      port \"app\" {}\n    }\n    weft {\n      " + attr + "    }\n    task \"app\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n")
	}
	for _, tt := range []struct {
		name, stanza string
		policy       map[string]string
		sidecar      bool   // a weft-proxy task rendered
		err          string // an error summary
	}{
		{"policy silent, stanza silent: a sidecar", "", nil, true, ""},
		{"policy node, stanza silent: node mode", "", map[string]string{"api": "node"}, false, ""},
		{"policy node, stanza node", "node", map[string]string{"api": "node"}, false, ""},
		{"policy instance, stanza silent: a sidecar", "", map[string]string{"api": "instance"}, true, ""},
		{"policy instance, stanza node: refused", "node", map[string]string{"api": "instance"}, false, "proxy_mode conflicts with the policy"},
		{"policy node, stanza instance: refused", "instance", map[string]string{"api": "node"}, false, "proxy_mode conflicts with the policy"},
		{"policy application: not on Nomad", "", map[string]string{"api": "application"}, false, "Unsupported proxy_mode in the policy"},
		{"another service's mode does not matter", "", map[string]string{"web": "node"}, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			def := defaults
			if tt.policy != nil {
				def.ProxyMode = func(svc string) string { return tt.policy[svc] }
			}
			out, _, diags := Render("x.nomad", job(tt.stanza), def)
			if tt.err != "" {
				if !diags.HasErrors() || diags[0].Summary != tt.err || diags[0].Subject == nil {
					t.Fatalf("diagnostics %v, want %q with a range", diags, tt.err)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			s := string(out)
			if got := strings.Contains(s, `task "weft-proxy"`); got != tt.sidecar {
				t.Fatalf("sidecar task rendered: %v, want %v:\n%s", got, tt.sidecar, s)
			}
			if got := strings.Contains(s, TagProxyModeNode); got == tt.sidecar {
				t.Fatalf("tag %s rendered: %v, want %v:\n%s", TagProxyModeNode, got, !tt.sidecar, s)
			}
		})
	}
}
