package controller

import (
	"context"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

func TestRunCompilesAfterPolicy(t *testing.T) {
	built := make(chan [2]int, 10)
	reg := registry.New()
	c := New(Options{Registry: reg, OnBuild: func(n, changed int) { built <- [2]int{n, changed} }})
	srv := meshserver.New(meshserver.Options{Registry: reg, TrustDomain: c.TrustDomain})
	c.SetServer(srv)

	snaps := make(chan model.Snapshot)
	pols := make(chan *policy.Policy)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, snaps, pols) }()

	good := model.Instance{ID: "api-0", Service: "api", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}}
	bad := model.Instance{ID: "bad", Service: "NOT VALID", Address: "127.0.0.3", Ports: map[string]int{"mesh": 15001}}
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{good, bad}}
	if c.Builds() != 0 {
		t.Fatal("compiled before any policy arrived")
	}
	pols <- &policy.Policy{Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny}}
	wait := func() [2]int {
		select {
		case b := <-built:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no compilation within 10s")
		}
		return [2]int{}
	}
	if b := wait(); b != [2]int{1, 1} {
		t.Errorf("build = %v, want 1 config, 1 changed (the bad record skipped)", b)
	}
	cfg, _, ok := srv.Config("api-0")
	if !ok || cfg.SpiffeId != "spiffe://example.org/ns/default/svc/api" {
		t.Errorf("config = %v, %v", cfg, ok)
	}
	if c.TrustDomain() != "example.org" {
		t.Errorf("TrustDomain = %q", c.TrustDomain())
	}
	// The same snapshot again changes nothing and compiles nothing.
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{good, bad}}
	good.Ports = map[string]int{"app": 8081, "mesh": 15001}
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{good}}
	if b := wait(); b != [2]int{1, 1} {
		t.Errorf("build after a port change = %v, want 1 config, 1 changed", b)
	}
	if c.Builds() != 2 {
		t.Errorf("Builds = %d, want 2", c.Builds())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
