package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
)

const rotatePolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "web" { local_port = 9001 }
  upstream "raw" { local_port = 9002 }
}

# HTTP between sidecars over pooled connections.
service "web" {
  protocol = "http"
  binding "local" { name = "web" }
}
# TCP: one mTLS handshake between the sidecars per connection.
service "raw" {
  protocol = "tcp"
  binding "local" { name = "raw" }
}

intention "client" "web" { action = "allow" }
intention "client" "raw" { action = "allow" }
`

func rotateWorkloads() string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("client", app) + harness.Workload("web", app, "instances = 2") + harness.Workload("raw", app)
}

// load sends requests through the mesh without pause until stopped, and
// counts what happens.
type load struct {
	name   string
	url    string
	client *http.Client
	check  func(body string) error

	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	tick       chan struct{} // a value after each request (dropped when full)
}

func (l *load) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := l.once(ctx)
		if ctx.Err() != nil {
			return // stopping: the request was cut short by us
		}
		if err != nil {
			l.failed.Add(1)
			l.mu.Lock()
			if len(l.errs) < 20 {
				l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
			l.mu.Unlock()
		} else {
			l.ok.Add(1)
		}
		select {
		case l.tick <- struct{}{}:
		default:
		}
	}
}

func (l *load) once(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", l.url, nil)
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return l.check(string(b))
}

// waitOK waits until n more requests than now succeeded.
func (l *load) waitOK(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	want := l.ok.Load() + n
	deadline := time.After(timeout)
	for l.ok.Load() < want {
		select {
		case <-l.tick:
		case <-deadline:
			t.Fatalf("%s: %d of %d requests succeeded within %v (%d failed: %v)", l.name, l.ok.Load(), want, timeout, l.failed.Load(), l.errors())
		}
	}
}

func (l *load) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

func caRoots(t *testing.T, ctl *harness.Controller) api.RootsReport {
	t.Helper()
	out, err := runWeft(t, "ca", "roots", "--json", "--admin", ctl.Admin, "--data-dir", ctl.DataDir)
	if err != nil {
		t.Fatalf("weft ca roots: %v\n%s", err, out)
	}
	var r api.RootsReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decoding weft ca roots --json: %v\n%s", err, out)
	}
	return r
}

// presentedLeaf is the chain a sidecar's mesh port presents.
func presentedLeaf(addr string) ([]*x509.Certificate, error) { return harness.PresentedChain(addr) }

// readRoot reads a PEM root certificate; a failure fails the test.
func readRoot(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := harness.ReadCertPEM(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRootRotationDropsNothing runs a mesh of real processes, sends
// requests through it without pause, rotates the CA root with `weft ca
// rotate`, and checks that no request failed and that every sidecar then
// presents a leaf of the new root. Then the controller restarts and keeps
// the rotated state.
func TestRootRotationDropsNothing(t *testing.T) {
	// Addresses of its own, apart from the demo's and other tests'.
	ctl, _ := startLocalMesh(t, rotatePolicy, rotateWorkloads(), "127.0.79.2")
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(4))
	var client string
	var meshAddrs []string
	for _, in := range s.Instances {
		if in.Service == "client" {
			client = in.Address
		}
		port := in.Ports["mesh"]
		if port == 0 {
			port = 15001
		}
		meshAddrs = append(meshAddrs, net.JoinHostPort(in.Address, fmt.Sprint(port)))
	}
	before := caRoots(t, ctl)
	if len(before.Roots) != 1 {
		t.Fatalf("roots before the rotation: %+v, want one", before.Roots)
	}
	oldRoot := readRoot(t, ctl.CACert())

	loads := []*load{
		{name: "HTTP client -> web (pooled connections)", url: "http://" + net.JoinHostPort(client, "9001") + "/",
			client: &http.Client{Timeout: 10 * time.Second},
			check: func(body string) error {
				var got struct{ Service, Caller string }
				if err := json.Unmarshal([]byte(body), &got); err != nil || got.Service != "web" || got.Caller != id("client") {
					return fmt.Errorf("not web's answer to the client's identity: %s", body)
				}
				return nil
			}},
		{name: "TCP client -> raw (a new mTLS connection per request)", url: "http://" + net.JoinHostPort(client, "9002") + "/",
			client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
			check: func(body string) error {
				var got struct{ Service string }
				if err := json.Unmarshal([]byte(body), &got); err != nil || got.Service != "raw" {
					return fmt.Errorf("not raw's answer: %s", body)
				}
				return nil
			}},
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, l := range loads {
		l.tick = make(chan struct{}, 1)
		wg.Go(func() { l.run(ctx) })
	}
	defer func() { stop(); wg.Wait() }()
	for _, l := range loads {
		l.waitOK(t, 50, 60*time.Second)
	}
	total := func() int64 {
		var n int64
		for _, l := range loads {
			n += l.ok.Load() + l.failed.Load()
		}
		return n
	}

	// Two rotations: the second while the first one's old root is still
	// trusted (a leaf of the third root then chains to the first too).
	var start time.Time
	roots := []*x509.Certificate{oldRoot}
	for round := 1; round <= 2; round++ {
		start = time.Now()
		sentBefore := total()
		out, err := runWeft(t, "ca", "rotate", "--wait", "60s", "--admin", ctl.Admin, "--data-dir", ctl.DataDir)
		if err != nil {
			t.Fatalf("weft ca rotate: %v\n%s", err, out)
		}
		rotateTook := time.Since(start)
		t.Logf("weft ca rotate --wait (%v):\n%s", rotateTook.Round(time.Millisecond), out)
		newRoot := readRoot(t, ctl.CACert())
		if newRoot.Equal(roots[len(roots)-1]) {
			t.Fatal("ca.crt did not change")
		}
		roots = append(roots, newRoot)

		// Every sidecar presents a leaf of the new root, with the
		// cross-signatures that let a peer trusting only the first root
		// verify it.
		firstPool := x509.NewCertPool()
		firstPool.AddCert(oldRoot)
		deadline := time.Now().Add(60 * time.Second)
		for _, addr := range meshAddrs {
			for {
				chain, err := presentedLeaf(addr)
				if err == nil && chain[0].CheckSignatureFrom(newRoot) == nil {
					inter := x509.NewCertPool()
					for _, c := range chain[1:] {
						inter.AddCert(c)
					}
					if _, err := chain[0].Verify(x509.VerifyOptions{Roots: firstPool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
						t.Errorf("the sidecar at %s presents a new leaf that a peer trusting only the first root refuses: %v", addr, err)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the sidecar at %s does not present a leaf of the new root (last: %v)", addr, err)
				}
				// Polling the sidecar: its renewal has no signal we can see from here.
				time.Sleep(100 * time.Millisecond)
			}
		}
		allNew := time.Since(start)
		during := total() - sentBefore

		// Traffic after the rotation: new handshakes between new leaves.
		for _, l := range loads {
			l.waitOK(t, 50, 60*time.Second)
		}
		var failed int64
		for _, l := range loads {
			failed += l.failed.Load()
		}
		t.Logf("ROTATION %d: %d requests sent while it went on (from `weft ca rotate` to every sidecar presenting a new leaf), %d failed so far in all; every sidecar presented a leaf of the new root %v after the command started (the command with --wait took %v)",
			round, during, failed, allNew.Round(time.Millisecond), rotateTook.Round(time.Millisecond))
	}
	stop()
	wg.Wait()
	var failed int64
	for _, l := range loads {
		failed += l.failed.Load()
		if n := l.failed.Load(); n > 0 {
			t.Errorf("%s: %d of %d requests failed: %v", l.name, n, n+l.ok.Load(), l.errors())
		}
	}
	t.Logf("ROTATIONS: %d requests through the mesh in all, %d failed", total(), failed)

	after := caRoots(t, ctl)
	if len(after.Roots) != 3 || !after.Roots[0].Active || after.Roots[1].Active || after.Roots[2].ID != before.Roots[0].ID || after.Roots[1].RetireAt == nil || after.Roots[2].RetireAt == nil {
		t.Fatalf("roots after two rotations: %+v, want a new active root and the two before it retiring", after.Roots)
	}
	if after.Roots[0].Sidecars != 4 {
		t.Errorf("the controller counts %d sidecars on the new root, want 4", after.Roots[0].Sidecars)
	}
	if wantRetire := start.Add(24 * time.Hour); after.Roots[1].RetireAt.Before(wantRetire) || after.Roots[1].RetireAt.After(wantRetire.Add(5*time.Minute)) {
		t.Errorf("the old root retires at %v, want about 24h after the rotation (%v)", after.Roots[1].RetireAt, wantRetire)
	}
	statusOut, err := runWeft(t, "status", "--admin", ctl.Admin, "--data-dir", ctl.DataDir)
	if err != nil || !strings.Contains(statusOut, "retiring at") || !strings.Contains(statusOut, "LEAF ROOT") {
		t.Errorf("weft status does not show the roots: %v\n%s", err, statusOut)
	}

	// A restarted controller keeps the rotated state.
	ctl = ctl.Restart()
	ctl.WaitFor(t, "the sidecars to resync with the restarted controller", 90*time.Second, harness.Converged(4))
	restarted := caRoots(t, ctl)
	if len(restarted.Roots) != 3 || restarted.Roots[0].ID != after.Roots[0].ID || !restarted.Roots[1].RetireAt.Equal(*after.Roots[1].RetireAt) {
		t.Errorf("roots after a controller restart: %+v, want %+v", restarted.Roots, after.Roots)
	}
	for _, l := range loads {
		if err := l.once(context.Background()); err != nil {
			t.Errorf("%s after the controller restart: %v", l.name, err)
		}
	}
}
