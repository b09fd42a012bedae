package local_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/weftmesh/weft/core/policy"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// The demo's policy compiles, and says what the demo shows: frontend may
// call api, api may call store, frontend may not call store.
func TestPolicy(t *testing.T) {
	p, diags, _ := policyhcl.Load("policy")
	if diags.HasErrors() || p == nil {
		t.Fatalf("examples/local/policy: %v", diags)
	}
	if p.Mesh.DefaultAction != policy.Deny {
		t.Errorf("default action = %q, want deny", p.Mesh.DefaultAction)
	}
	tests := []struct {
		from, to string
		want     policy.Action
	}{
		{"frontend", "api", policy.Allow},
		{"api", "store", policy.Allow},
		{"frontend", "store", policy.Deny},
		{"store", "api", policy.Deny},
	}
	for _, tt := range tests {
		if got, _ := p.Decide(tt.from, tt.to); got != tt.want {
			t.Errorf("%s -> %s: %s, want %s", tt.from, tt.to, got, tt.want)
		}
	}
}

var upstreamURL = regexp.MustCompile(`^"http://\$\{HOST\}:(\d+)"$`)

// Every UPSTREAM_<NAME> in the workloads file points at the local_port the
// policy gives that upstream of that service, on the instance's own
// address (${HOST}), where the sidecar listens.
// The node-proxy and application-proxy variants (workloads-node.hcl,
// workloads-application.hcl) are held to the same.
func TestWorkloadsMatchPolicy(t *testing.T) {
	for _, file := range []string{"workloads.hcl", "workloads-node.hcl", "workloads-application.hcl"} {
		t.Run(file, func(t *testing.T) { workloadsMatchPolicy(t, file) })
	}
}

func workloadsMatchPolicy(t *testing.T, file string) {
	p, diags, _ := policyhcl.Load("policy")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	checked := 0
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		svc := b.Labels[0]
		env, ok := b.Body.Attributes["env"]
		if !ok {
			continue
		}
		pairs, diags := hcl.ExprMap(env.Expr)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		for _, kv := range pairs {
			key := hcl.ExprAsKeyword(kv.Key)
			name, ok := map[string]string{"UPSTREAM_API": "api", "UPSTREAM_STORE": "store"}[key]
			if !ok {
				continue
			}
			text := string(kv.Value.Range().SliceBytes(src))
			m := upstreamURL.FindStringSubmatch(text)
			if m == nil {
				t.Errorf("%s: %s = %s, want \"http://${HOST}:<local_port>\"", svc, key, text)
				continue
			}
			port, _ := strconv.Atoi(m[1])
			want := 0
			for _, u := range p.Services[svc].Upstreams {
				if u.Service == name {
					want = u.LocalPort
				}
			}
			if port != want {
				t.Errorf("%s: %s uses port %d, the policy's local_port for upstream %q is %d", svc, key, port, name, want)
			}
			checked++
		}
	}
	if checked != 3 {
		t.Errorf("checked %d UPSTREAM_* variables, want 3", checked)
	}
}
