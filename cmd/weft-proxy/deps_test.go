package main

import (
	"os/exec"
	"strings"
	"testing"
)

// weft-proxy runs beside every instance, so it must not link what only
// the controller needs: scheduler clients, the policy language, plugins,
// the CA, the compiler, and the test helpers.
func TestDependenciesStayLean(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("finding the go command to list dependencies: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	forbidden := []string{
		"github.com/hashicorp/go-plugin",
		"github.com/hashicorp/hcl",
		"github.com/hashicorp/nomad",
		"github.com/mesos",
		"k8s.io",
		"github.com/weftmesh/weft/hcl",
		"github.com/weftmesh/weft/adapters",
		"github.com/weftmesh/weft/plugins",
		// The sidecar evaluates compiled rules and names roots itself: it
		// links no control-plane package, and no test helper.
		"github.com/weftmesh/weft/core/ca",
		"github.com/weftmesh/weft/core/policy",
		"github.com/weftmesh/weft/core/compile",
		"github.com/weftmesh/weft/core/registry",
		"github.com/weftmesh/weft/core/meshserver",
		"github.com/weftmesh/weft/core/proxy/proxytest",
	}
	found := false
	for _, d := range deps {
		if d == "github.com/weftmesh/weft/core/proxy" {
			found = true
		}
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("weft-proxy depends on %s (forbidden: %s); find which import pulls it in with: go list -deps ./cmd/weft-proxy", d, f)
			}
		}
	}
	if !found {
		t.Errorf("go list -deps does not list core/proxy; the check looked at the wrong package:\n%s", out)
	}
}
