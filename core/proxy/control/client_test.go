package control_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/control"
	"github.com/weftmesh/weft/core/proxy/creds"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// tenant is a Watcher that is not a core/proxy.Proxy: one instance's slot
// in a proxy that serves several. It takes configurations for its own
// instance only.
type tenant struct {
	instance string
	mu       sync.Mutex
	version  uint64
	cr       *creds.Credentials
}

func (w *tenant) Apply(version uint64, cfg *meshapi.ProxyConfig) error {
	if cfg.GetInstanceId() != w.instance {
		return fmt.Errorf("the config is for instance %q, not %q", cfg.GetInstanceId(), w.instance)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.version = version
	return nil
}

func (w *tenant) SetCredentials(c *creds.Credentials) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cr = c
}

func (w *tenant) state() (uint64, *creds.Credentials) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.version, w.cr
}

// TestClientsDriveTheirOwnWatchers: two clients, one per instance, each
// with its own watcher and controller, in one process: each watcher gets
// its own identity and configurations, and a configuration its watcher
// refuses is rejected (NACK) with the watcher's reason while the last good
// version stays acknowledged.
func TestClientsDriveTheirOwnWatchers(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	type run struct {
		w    *tenant
		f    *proxytest.Controller
		done chan error
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runs []run
	for _, svc := range []string{"web", "api"} {
		f := proxytest.StartController(t, ca, proxytest.ControllerOptions{Service: svc})
		w := &tenant{instance: svc + "-1"}
		c, err := control.New(w, control.Options{
			InstanceID: w.instance, Controllers: []string{f.Addr}, TrustBundle: ca.Pool, JoinToken: f.Token,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		r := run{w: w, f: f, done: make(chan error, 1)}
		go func() { r.done <- c.Run(ctx) }()
		runs = append(runs, r)
	}
	defer func() {
		cancel()
		for _, r := range runs {
			select {
			case err := <-r.done:
				if err != nil {
					t.Errorf("Run returned %v after its context ended, want nil", err)
				}
			case <-time.After(proxytest.Wait):
				t.Error("Run did not return after its context ended")
			}
		}
	}()

	for i, r := range runs {
		if req := r.f.NextRequest(t); req.InstanceId != r.w.instance {
			t.Fatalf("subscription %v, want instance %s", req, r.w.instance)
		}
		svc := []string{"web", "api"}[i]
		if _, cr := r.w.state(); cr == nil || cr.ID.Service != svc {
			t.Fatalf("watcher of %s holds credentials %+v, want %s's", r.w.instance, cr, svc)
		}
		r.f.Send(t, &meshapi.ConfigUpdate{Version: 3, Config: &meshapi.ProxyConfig{InstanceId: r.w.instance}})
		if req := r.f.NextRequest(t); req.AppliedVersion != 3 || req.RejectedVersion != 0 {
			t.Fatalf("%s: %v, want an ACK of 3", r.w.instance, req)
		}
		if v, _ := r.w.state(); v != 3 {
			t.Errorf("%s applied version %d, want 3", r.w.instance, v)
		}
	}
	// A configuration for the other instance: the watcher refuses it.
	web := runs[0]
	web.f.Send(t, &meshapi.ConfigUpdate{Version: 4, Config: &meshapi.ProxyConfig{InstanceId: "api-1"}})
	req := web.f.NextRequest(t)
	if req.RejectedVersion != 4 || req.AppliedVersion != 3 || req.ErrorDetail == "" {
		t.Fatalf("after a config for another instance: %v, want a NACK of 4 keeping 3 with the reason", req)
	}
	if v, _ := web.w.state(); v != 3 {
		t.Errorf("web applied version %d after the NACK, want 3", v)
	}
}
