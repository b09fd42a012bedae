package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/control"
	"github.com/weftmesh/weft/core/proxy/creds"
	"github.com/weftmesh/weft/test/harness"
)

// acceptAll is a Watcher that takes every configuration: the test's
// stand-in for a sidecar's data plane.
type acceptAll struct{}

func (acceptAll) Apply(uint64, *meshapi.ProxyConfig) error { return nil }
func (acceptAll) SetCredentials(*creds.Credentials)        {}

// TestSidecarHealthReport: the health report path on the local adapter
// with real weft-proxy sidecars and a real `weft controller`. A controller
// client (core/proxy/control, the sidecar's own) joins as one web instance
// with a join token from the admin API and reports that instance's app
// failing, as the instance's sidecar does when its active checks fail:
// the controller marks it critical (source "sidecar_check" in status), the
// client's real sidecar drops it from its web endpoints and every call
// lands on the other web instance; a passing report brings it back; and
// after the controller is killed and restarted, the report is sent again
// with the stream's subscription and applied by the new controller.
func TestSidecarHealthReport(t *testing.T) {
	app := "weft-demo-app"
	workloads := harness.Workload("client", filepath.Join(binDir, app)) + harness.Workload("web", filepath.Join(binDir, app), "instances = 2")
	ctl, _ := startLocalMesh(t, clientWebPolicy, workloads, "127.0.93.2") // addresses no other test uses
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))
	var webs []string
	var clientAddr string
	for _, in := range s.Instances {
		switch in.Service {
		case "web":
			webs = append(webs, in.ID)
		case "client":
			clientAddr = in.Address
		}
	}
	slices.Sort(webs)
	if len(webs) != 2 || clientAddr == "" {
		t.Fatalf("instances %+v, want a client and two webs", s.Instances)
	}
	sick, well := webs[0], webs[1]
	clientAdmin := net.JoinHostPort(clientAddr, "15000")

	var tok api.JoinTokenResponse
	if err := ctl.Call("POST", "/v1/join-tokens", api.JoinTokenRequest{Adapter: "local", Instance: sick, Service: "web", TTLSeconds: 60}, &tok); err != nil {
		t.Fatalf("minting a join token for %s: %v", sick, err)
	}
	c, err := control.New(acceptAll{}, control.Options{
		InstanceID: sick, Controllers: []string{ctl.Listen}, TrustBundle: ctl.RootPool(t), JoinToken: tok.Token,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the controller client: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the controller client did not stop within 30s")
		}
	}()

	// instance returns status's report of id.
	instance := func(s *harness.Status, id string) harness.InstanceStatus {
		for _, in := range s.Instances {
			if in.ID == id {
				return in
			}
		}
		return harness.InstanceStatus{}
	}
	// endpoints waits until the client's sidecar holds want as its web
	// endpoints.
	endpoints := func(step string, want ...string) {
		t.Helper()
		var got []string
		err := harness.Poll(context.Background(), 30*time.Second, 20*time.Millisecond, func() error {
			var err error
			got, err = harness.SidecarEndpoints(clientAdmin, "web")
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("web endpoints %v", got)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: the client's sidecar: %v, want %v", step, err, want)
		}
	}
	// calls sends n calls through the client's sidecar and returns the web
	// instances that answered.
	calls := func(n int) map[string]int {
		t.Helper()
		seen := map[string]int{}
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		for i := range n {
			code, body, err := harness.Get(cctx, "http://"+net.JoinHostPort(clientAddr, "9001")+"/")
			if err != nil || code != 200 {
				t.Fatalf("call %d through the client's sidecar: %d %q %v", i, code, body, err)
			}
			var got struct{ Service, Instance string }
			if err := json.Unmarshal([]byte(body), &got); err != nil || got.Service != "web" {
				t.Fatalf("call %d: answer %q (%v)", i, body, err)
			}
			seen[got.Instance]++
		}
		return seen
	}

	endpoints("at the start", webs...)
	c.ReportHealth(false, "GET /health: 500")
	s = ctl.WaitFor(t, sick+" critical by its sidecar's check", 30*time.Second, func(s *harness.Status) bool {
		return instance(s, sick).HealthSource == api.HealthFromSidecarCheck
	})
	if in := instance(s, sick); in.Health != "critical" || in.HealthReason != "GET /health: 500" || in.SidecarCheck != "failing" {
		t.Errorf("status of %s: %+v, want critical from its failing sidecar check", sick, in)
	}
	if in := instance(s, well); in.HealthSource != api.HealthFromScheduler || in.SidecarCheck != "" {
		t.Errorf("status of %s: %+v, want its scheduler's health and no sidecar check", well, in)
	}
	endpoints("after a failing report", well)
	if seen := calls(20); seen[well] != 20 {
		t.Errorf("with %s failing, 20 calls reached %v, want all on %s", sick, seen, well)
	}
	out, errOut, code := ctl.RunWeft(t, filepath.Join(binDir, "weft"), "status")
	if code != 0 || !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		return strings.HasPrefix(l, sick+" ") && strings.Contains(l, "critical (sidecar check: GET /health: 500)")
	}) {
		t.Errorf("weft status (exit %d, %s) does not show %s critical from its sidecar check:\n%s", code, errOut, sick, out)
	}

	c.ReportHealth(true, "")
	endpoints("after a passing report", webs...)
	s, _ = ctl.Status()
	if in := instance(s, sick); in.HealthSource != api.HealthFromScheduler || in.SidecarCheck != "passing" {
		t.Errorf("status of %s after a passing report: %+v", sick, in)
	}

	// The controller dies while sick fails; the new one learns it from
	// the client's subscription when it reconnects.
	c.ReportHealth(false, "connect: connection refused")
	endpoints("failing again", well)
	ctl.Kill(t)
	ctl = ctl.Restart()
	ctl.WaitFor(t, sick+" critical again after the controller restarted", 90*time.Second, func(s *harness.Status) bool {
		in := instance(s, sick)
		return in.HealthSource == api.HealthFromSidecarCheck && in.HealthReason == "connect: connection refused"
	})
	endpoints("after the controller restarted", well)
}

// checkPolicy is clientWebPolicy with an active check on web: its
// sidecars probe GET /healthz every 200ms and take the app out after two
// failures in a row.
var checkPolicy = strings.Replace(clientWebPolicy, `  binding "local" { name = "web" }
`, `  binding "local" { name = "web" }
  health_check {
    http                = "/healthz"
    interval            = "200ms"
    timeout             = "150ms"
    unhealthy_threshold = 2
    healthy_threshold   = 1
  }
`, 1)

// TestSidecarCheckTakesAppOut: the whole active-check path with real
// processes, nothing driven by the test but the app itself. One web app
// starts answering 500 on /healthz while its process lives: its own
// weft-proxy's check (policy: every 200ms, two failures) fails, the
// sidecar reports it to the real controller, which marks it critical
// (source sidecar_check) and recompiles, and the client's sidecar drops it
// within a bounded wait (printed); meanwhile every call through the client
// succeeds on the other instance. When /healthz passes again it comes back.
func TestSidecarCheckTakesAppOut(t *testing.T) {
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("client", app) + harness.Workload("web", app, "instances = 2")
	if !strings.Contains(checkPolicy, "health_check") {
		t.Fatal("checkPolicy has no health_check: clientWebPolicy's web service changed shape")
	}
	ctl, _ := startLocalMesh(t, checkPolicy, workloads, "127.0.94.2") // addresses no other test uses
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(3))
	var webs []string
	apps := map[string]string{}
	var clientAddr string
	for _, in := range s.Instances {
		switch in.Service {
		case "web":
			webs = append(webs, in.ID)
			apps[in.ID] = net.JoinHostPort(in.Address, fmt.Sprint(in.Ports["app"]))
		case "client":
			clientAddr = in.Address
		}
	}
	slices.Sort(webs)
	if len(webs) != 2 || clientAddr == "" || apps[webs[0]] == "" {
		t.Fatalf("instances %+v, want a client and two webs with app ports", s.Instances)
	}
	sick, well := webs[0], webs[1]
	clientAdmin := net.JoinHostPort(clientAddr, "15000")
	endpoints := func(step string, bound time.Duration, want ...string) time.Duration {
		t.Helper()
		start := time.Now()
		var got []string
		err := harness.Poll(context.Background(), bound, 10*time.Millisecond, func() error {
			var err error
			got, err = harness.SidecarEndpoints(clientAdmin, "web")
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("web endpoints %v", got)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: the client's sidecar after %v: %v, want %v", step, bound, err, want)
		}
		return time.Since(start)
	}
	setHealth := func(what string) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+apps[sick]+"/healthz/"+what, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, body, _, err := harness.Do(&http.Client{Timeout: 10 * time.Second}, req)
		if err != nil || code != 204 {
			t.Fatalf("POST /healthz/%s to %s's app: %d %q %v", what, sick, code, body, err)
		}
	}

	endpoints("at the start", 30*time.Second, webs...)
	setHealth("fail")
	// Two failed probes 200ms apart (the first can come at once), then the
	// report, the recompile and the client's ACK (a few ms). Bounded at 5s.
	took := endpoints("after "+sick+"'s /healthz began to fail", 5*time.Second, well)
	t.Logf("%s left the client's web endpoints %v after its /healthz began to answer 500 (check: 200ms x 2)", sick, took.Round(time.Millisecond))
	s, _ = ctl.Status()
	for _, in := range s.Instances {
		if in.ID == sick && (in.Health != "critical" || in.HealthSource != api.HealthFromSidecarCheck) {
			t.Errorf("status of %s: health %q from %q (%s), want critical from its sidecar check", sick, in.Health, in.HealthSource, in.HealthReason)
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	for i := range 20 {
		code, body, err := harness.Get(cctx, "http://"+net.JoinHostPort(clientAddr, "9001")+"/")
		if err != nil || code != 200 || !strings.Contains(body, well) {
			t.Errorf("call %d through the client's sidecar with %s failing its check: %d %q %v, want an answer from %s", i, sick, code, body, err, well)
		}
	}
	setHealth("pass")
	took = endpoints("after "+sick+"'s /healthz passed again", 10*time.Second, webs...)
	t.Logf("%s was back %v after its /healthz passed again", sick, took.Round(time.Millisecond))
}
