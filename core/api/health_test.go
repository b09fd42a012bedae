package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

// TestHealthEndpoints serves the admin API over HTTPS as the controller
// does, in front of a real controller that waits for its adapter's first
// snapshot: the health endpoints answer without a token (a probe has
// none), readiness is 503 with the reason until the controller compiles
// and 200 after, and every other endpoint still needs the token.
func TestHealthEndpoints(t *testing.T) {
	dir := t.TempDir()
	authority, err := ca.LoadOrCreate(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	built := make(chan struct{}, 4)
	ctl := controller.New(controller.Options{Registry: registry.New(), Logger: quiet, Adapters: []string{"kubernetes"},
		FirstSnapshotWait: time.Hour, OnBuild: func(int, int) { built <- struct{}{} }})
	srv := meshserver.New(meshserver.Options{CA: authority, Workloads: ctl, Logger: quiet})
	snaps, pols := make(chan model.Snapshot, 1), make(chan *policy.Policy, 1)
	pols <- &policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx, snaps, pols, controller.ConfigServer(srv)); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	serving, err := srv.ServingTLSConfig(spiffe.Identity{TrustDomain: "example.org", Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewServer(api.NewHandler(api.Options{Token: testToken, Mesh: ctl, Sidecars: srv, Authority: authority}), serving)
	served := make(chan struct{})
	go func() { defer close(served); _ = hs.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { hs.Close(); <-served })
	pool, _, err := api.LoadCA(filepath.Join(dir, "ca", api.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: serving.Clone()}
	tr.TLSClientConfig.GetConfigForClient, tr.TLSClientConfig.GetCertificate, tr.TLSClientConfig.RootCAs = nil, nil, pool
	a := &admin{addr: lis.Addr().String(), hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	t.Cleanup(tr.CloseIdleConnections)

	health := func(method, path string) (int, api.Health) {
		t.Helper()
		code, body := a.raw(t, method, path, nil, "")
		var h api.Health
		if method == "GET" && code != http.StatusMethodNotAllowed {
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Fatalf("%s %s: %d %q is not a health answer: %v", method, path, code, body, err)
			}
		}
		return code, h
	}

	if code, h := health("GET", api.HealthLivePath); code != http.StatusOK || h.Status != "alive" {
		t.Errorf("live before the first compilation: %d %+v, want 200 alive", code, h)
	}
	code, h := health("GET", api.HealthReadyPath)
	if code != http.StatusServiceUnavailable || h.Status != "starting" || !strings.Contains(h.Reason, "kubernetes") {
		t.Errorf("ready before the first compilation: %d %+v, want 503 starting, naming the awaited adapter kubernetes", code, h)
	}
	if code, _ := health("POST", api.HealthReadyPath); code != http.StatusMethodNotAllowed {
		t.Errorf("POST ready: %d, want 405", code)
	}
	// The health endpoints open nothing else.
	for _, p := range []string{"/v1/status", "/v1/health", "/v1/health/", "/v1/health/live/x", "/v1/health/ready/../../status"} {
		if code, body := a.raw(t, "GET", p, nil, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d %q, want 401", p, code, body)
		}
	}

	snaps <- model.Snapshot{Adapter: "kubernetes", Instances: []model.Instance{
		{ID: "default/api-0", Service: "api", Address: "127.0.0.3", Ports: map[string]int{"app": 8080, "mesh": 15001}},
	}}
	select {
	case <-built:
	case <-time.After(10 * time.Second):
		t.Fatal("the controller compiled nothing within 10s of its adapter's first snapshot")
	}
	if code, h := health("GET", api.HealthReadyPath); code != http.StatusOK || h.Status != "ready" || h.Reason != "" {
		t.Errorf("ready after the first compilation: %d %+v, want 200 ready", code, h)
	}
	if code, _ := a.raw(t, "HEAD", api.HealthReadyPath, nil, ""); code != http.StatusOK {
		t.Errorf("HEAD ready: %d, want 200", code)
	}
}
