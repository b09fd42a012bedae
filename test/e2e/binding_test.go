package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// The store is bound to the local workload "store"; the workload
// "impostor" claims the service name store too.
const bindingPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "store" { local_port = 9001 }
}

service "store" {
  protocol = "http"
  binding "local" { name = "store" }
}

intention "client" "store" { action = "allow" }
`

func bindingWorkloads() string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("client", app) + harness.Workload("store", app) +
		// A second workload that claims the service name "store".
		harness.Workload("impostor", app, `service = "store"`)
}

// TestUnboundWorkloadGetsNothing runs the real controller, local adapter
// and sidecars: an instance of a second local workload that claims the
// service "store" gets no certificate (its sidecar's Join is refused with
// the binding to add), is named in status as an unbound workload, and
// receives none of the client's calls, while the store's own instance
// keeps answering.
func TestUnboundWorkloadGetsNothing(t *testing.T) {
	ctl, _ := startLocalMesh(t, bindingPolicy, bindingWorkloads(), "127.0.79.2")
	s := ctl.WaitFor(t, "client and store joined, the impostor skipped", 90*time.Second, func(s *harness.Status) bool {
		return len(s.Instances) == 3 && len(s.Sidecars) == 2 && s.Acked() && len(s.Skipped) == 1
	})
	sk := s.Skipped[0]
	if sk.Instance != "impostor-0" || sk.Service != "store" || sk.Reason != "unbound workload" ||
		!strings.Contains(sk.Detail, `binding "local" { name = "impostor" }`) {
		t.Errorf("skipped %+v: want impostor-0 of store, reason unbound workload, with the binding to add", sk)
	}
	if s.IdentityBinding != "strict" {
		t.Errorf("identity_binding %q in status, want strict", s.IdentityBinding)
	}
	for _, sc := range s.Sidecars {
		if sc.Instance == "impostor-0" {
			t.Errorf("the impostor's sidecar streams a configuration: %+v", sc)
		}
	}

	// The impostor's sidecar was told why, and keeps being refused.
	logPath := filepath.Join(ctl.DataDir, "adapters", "local", "logs", "impostor-0.proxy.log")
	var proxyLog []byte
	// Polling a log file: no other signal. The assertions below say what
	// it lacks when it never comes.
	_ = harness.Poll(context.Background(), 30*time.Second, harness.PollInterval, func() error {
		proxyLog, _ = os.ReadFile(logPath)
		if !strings.Contains(string(proxyLog), "may not serve service") {
			return errors.New("no refusal yet")
		}
		return nil
	})
	if strings.Contains(string(proxyLog), "fresh WEFT_JOIN_TOKEN") {
		t.Errorf("the impostor's sidecar is told to get a fresh join token, which would not help:\n%s", proxyLog)
	}
	for _, want := range []string{"refused to admit", `workload local name="impostor" may not serve service "store"`, `binding "local" { name = "impostor" }`} {
		if !strings.Contains(string(proxyLog), want) {
			t.Errorf("the impostor's sidecar log lacks %q:\n%s", want, proxyLog)
		}
	}
	t.Logf("the impostor's sidecar was refused: %s", harness.FirstLine(string(proxyLog), "may not serve service"))

	// Every call from the client reaches the store's own instance.
	client := s.Address("client")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 20; i++ {
		code, body, err := harness.Get(ctx, "http://"+net.JoinHostPort(client, "9001")+"/")
		if err != nil || code != 200 {
			t.Fatalf("client -> store call %d: %d %q %v", i, code, body, err)
		}
		var got struct{ Service, Instance, Caller string }
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if got.Service != "store" || got.Instance != "store-0" || got.Caller != id("client") {
			t.Fatalf("call %d answered by %+v, want the store's own instance store-0 seeing the client", i, got)
		}
	}
}
