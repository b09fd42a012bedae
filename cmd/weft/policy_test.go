package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/api"
)

const planOld = `
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 9100
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  subset "v1" {
    meta = { version = "v1" }
  }
  route "all" {
    split "v1" {
      weight = 100
    }
  }
}
service "db" {
  binding "local" { name = "db" }
}
intention "web" "api" {
  action = "allow"
}
intention "api" "db" {
  action = "allow"
}
`

const planNew = `
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" {
    local_port = 9100
    lb         = "least_request"
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  subset "v1" {
    meta = { version = "v1" }
  }
  subset "v2" {
    meta = { version = "v2" }
  }
  route "all" {
    split "v1" {
      weight = 90
    }
    split "v2" {
      weight = 10
    }
    retry {}
  }
}
service "cart" {
  protocol = "http"
  binding "local" { name = "cart" }
}
intention "web" "api" {
  permission {
    action = "allow"
    match {
      methods = ["GET"]
    }
  }
}
intention "web" "cart" {
  action = "allow"
}
`

func writePolicy(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const wantPlan = `~ service "api"
  + subset "v2"
  ~ route "all" (splits, retry)
+ service "cart"
- service "db"
~ service "web"
  ~ upstream "api" (lb)
- intention "api" -> "db"
~ intention "web" -> "api" (action, permissions)
+ intention "web" -> "cart"

Flows:
  web -> api becomes decided per request (allow => per request (1 permission))
  web -> cart becomes allowed (none (new service) => allow)

Plan: 2 to add, 3 to change, 2 to remove; 2 flows change.
`

func runPlan(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newPolicyCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"plan"}, args...))
	err := cmd.Execute()
	return out.String() + errOut.String(), err
}

func TestPolicyPlanAgainstDir(t *testing.T) {
	oldDir, newDir := writePolicy(t, planOld), writePolicy(t, planNew)
	out, err := runPlan(t, newDir, "--against", oldDir)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	if !strings.HasSuffix(out, wantPlan) {
		t.Errorf("plan output:\n%s\nwant it to end with:\n%s", out, wantPlan)
	}
	out, err = runPlan(t, oldDir, "--against", oldDir)
	if err != nil || !strings.Contains(out, "No changes.") {
		t.Errorf("plan of an unchanged policy: %v\n%s", err, out)
	}
	bad := writePolicy(t, `service "x" { protocol = "htp" }`)
	out, err = runPlan(t, bad, "--against", oldDir)
	if err == nil || !strings.Contains(out, "Invalid protocol") {
		t.Errorf("plan of an invalid policy: %v\n%s", err, out)
	}
}

func TestPolicyPlanAgainstController(t *testing.T) {
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "admin.token"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/policy":
			json.NewEncoder(w).Encode(api.PolicySources{Files: map[string]string{"policy.hcl": planOld}})
		case "/v1/status":
			// web-0's job gives it upstreams api (declared) and cart (not).
			json.NewEncoder(w).Encode(api.StatusReport{Instances: []api.InstanceReport{
				{Adapter: "nomad", ID: "web-0", Service: "web", Ports: map[string]int{"mesh": 21000, "upstream:api": 9100, "upstream:cart": 9101}},
				{Adapter: "nomad", ID: "api-0", Service: "api", Ports: map[string]int{"mesh": 21000}},
			}})
		default:
			http.Error(w, "no such path", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	caFile := filepath.Join(dataDir, "test-server.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := srv.URL
	out, err := runPlan(t, writePolicy(t, planNew), "--admin", admin, "--data-dir", dataDir, "--ca-cert", caFile)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	if !strings.Contains(out, "the controller at "+admin) || !strings.Contains(out, wantPlan) {
		t.Errorf("plan output:\n%s", out)
	}
	const warning = `Warning: upstream "cart" of instance web-0 (adapter nomad) is not declared: the scheduler gives service web an upstream port 9101 for cart, but the policy declares no upstream "cart" in service "web"`
	if strings.Count(out, "Warning: upstream") != 1 || !strings.Contains(out, warning) {
		t.Errorf("plan output lacks the one undeclared upstream warning %q:\n%s", warning, out)
	}

	// validate --against-controller warns the same, and still succeeds.
	cmd := newPolicyCmd()
	var vout bytes.Buffer
	cmd.SetOut(&vout)
	cmd.SetErr(&vout)
	cmd.SetArgs([]string{"validate", writePolicy(t, planNew), "--against-controller", "--admin", admin, "--data-dir", dataDir, "--ca-cert", caFile})
	if err := cmd.Execute(); err != nil || !strings.Contains(vout.String(), warning) || !strings.Contains(vout.String(), "policy OK") {
		t.Errorf("validate --against-controller: %v\n%s", err, vout.String())
	}
}
