package e2e

import (
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// TestControllerSlowloris: slowloris and many connections from one source
// against the controller's sidecar API and admin API. The slow
// connections are closed by the 10s setup/header timeout, connections
// past the admin API's 64 per source are closed at once, and the admin
// API answers GET /v1/status throughout.
func TestControllerSlowloris(t *testing.T) {
	dir := t.TempDir()
	harness.WriteFile(t, filepath.Join(dir, "mesh.hcl"), "mesh {}\n")
	ctl := startController(t, filepath.Join(dir, "data"), harness.FreeAddr(t), harness.FreeAddr(t), "--policy-dir", dir)
	ctl.WaitFor(t, "the controller to serve", 30*time.Second, func(*harness.Status) bool { return true })

	start := time.Now()
	var slow []net.Conn
	for _, addr := range []string{ctl.Listen, ctl.Admin} {
		for range 20 {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{0x16, 0x03, 0x01}) // the start of a TLS record, then nothing
			slow = append(slow, c)
		}
	}
	// Past 64 connections from one source the admin API closes at once
	// (20 slow ones are open already).
	refused := 0
	var many []net.Conn
	for range 80 {
		c, err := net.DialTimeout("tcp", ctl.Admin, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		many = append(many, c)
	}
	for _, c := range many {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			refused++
		}
	}
	if refused < 30 {
		t.Errorf("%d of 80 admin API connections from one source closed at once, want at least 30 (cap 64, 20 open)", refused)
	}
	for _, c := range many {
		c.Close()
	}
	// The API still answers a well-behaved client.
	if _, err := ctl.Status(); err != nil {
		t.Errorf("GET /v1/status during the flood: %v", err)
	}
	worst := time.Duration(0)
	for _, c := range slow {
		c.SetReadDeadline(start.Add(20 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("a slowloris connection to %s still open after 20s", c.RemoteAddr())
		}
		worst = max(worst, time.Since(start))
		c.Close()
	}
	t.Logf("slowloris: 40 connections (20 sidecar API, 20 admin API) closed within %v; %d of 80 extra admin connections refused at once", worst.Round(time.Millisecond), refused)
	s, err := ctl.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.ProtectionRefused["admin_api"]["source_connections"] == 0 {
		t.Errorf("status protection_refused = %v, want admin_api source_connections", s.ProtectionRefused)
	}
}
