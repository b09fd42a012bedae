package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// fetchEnv makes this test binary a one-shot HTTP client: the isolation
// test runs it with an instance's app gid, to call as that app would.
const fetchEnv = "WEFT_E2E_FETCH"

func init() {
	if u := os.Getenv(fetchEnv); u != "" {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("X-Weft-Caller", "spiffe://weft.test/ns/default/svc/forged")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s", resp.StatusCode, b)
		os.Exit(0)
	}
}

// appGID is the local adapter's gid for the app of the instance at addr
// (adapters/local/doc.go: 2000000000 + 2n for 127.A.B.C, n = A.B.C).
func appGID(t *testing.T, addr string) uint32 {
	t.Helper()
	b := netip.MustParseAddr(addr).As4()
	return 2_000_000_000 + 2*(uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))
}

// fetchAs GETs url (with a forged X-Weft-Caller) from a child process
// running with gid, and returns "status body" or the error it met.
func fetchAs(t *testing.T, gid uint32, url string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fetchEnv+"="+url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(os.Getuid()), Gid: gid, Groups: []uint32{}}}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func nftBinary(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the local adapter's guard needs root (CI runs as root): skipping the isolation test")
	}
	if p, err := exec.LookPath("nft"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("nft is not installed (apt-get install nftables): skipping the isolation test")
	return ""
}

// startIsolationMesh starts a controller whose local adapter runs client
// and web from first on, and returns it with the two addresses once every
// sidecar has acknowledged its config. The adapter's nftables table is
// removed when the test ends, whatever happens.
func startIsolationMesh(t *testing.T, nft, first string, args ...string) (ctl *harness.Controller, client, web string) {
	t.Helper()
	ctl = harness.StartLocalMesh(t, binDir, t.TempDir(), clientWebPolicy, clientWebWorkloads(), first, args...).Controller
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(2))
	for _, a := range s.Adapters {
		table := fmt.Sprintf("weft_local_%d", a.Pid)
		t.Cleanup(func() { _ = exec.Command(nft, "delete", "table", "inet", table).Run() })
	}
	for _, in := range s.Instances {
		switch in.Service {
		case "client":
			client = in.Address
		case "web":
			web = in.Address
		}
	}
	return ctl, client, web
}

// waitCheck runs weft check against ctl until done holds for its report
// and exit code, for at most 20s (harness.Controller.WaitCheck).
func waitCheck(t *testing.T, ctl *harness.Controller, what string, done func(harness.CheckReport, int) bool) (harness.CheckReport, string, int) {
	t.Helper()
	return ctl.WaitCheck(t, filepath.Join(binDir, "weft"), what, 20*time.Second, done)
}

func dialRefused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s took the connection", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %v, want connection refused", addr, err)
	}
	return nil
}

// The promise of the local adapter's guard, end to end with a real
// controller, sidecars and apps: an app is reachable only through its
// sidecar, an outbound port only from its own app; `weft check` proves it,
// and with the guard off it and `weft status` name every open port.
func TestIsolationGuard(t *testing.T) {
	nft := nftBinary(t)
	ctl, client, web := startIsolationMesh(t, nft, "127.0.81.2")
	clientApp, webApp := net.JoinHostPort(client, "8080"), net.JoinHostPort(web, "8080")
	outbound := net.JoinHostPort(client, "9001")

	// The outbound rule follows the sidecar's config: wait (bounded) for
	// weft check to see it.
	rep, _, _ := waitCheck(t, ctl, "pass", func(_ harness.CheckReport, code int) bool { return code == 0 })

	t.Run("weft check passes, every row OK", func(t *testing.T) {
		kinds := map[string]int{}
		for _, r := range rep.Results {
			kinds[r.Kind]++
			if !r.OK {
				t.Errorf("%s %s %s: %s", r.Instance, r.Address, r.Kind, r.Reason)
			}
		}
		want := map[string]int{"app": 2, "outbound": 1, "mesh-plaintext": 2, "mesh-tls-no-cert": 2}
		for k, n := range want {
			if kinds[k] != n {
				t.Errorf("%d %s probes, want %d (all: %v)", kinds[k], k, n, kinds)
			}
		}
		if !rep.OK {
			t.Error("report not ok")
		}
	})

	t.Run("a direct connection to an app port is refused", func(t *testing.T) {
		for _, addr := range []string{webApp, clientApp} {
			if err := dialRefused(addr); err != nil {
				t.Error(err)
			}
		}
		// The same address, spelled as IPv4-mapped IPv6, is the same packet.
		if c, err := net.DialTimeout("tcp6", "[::ffff:"+web+"]:8080", 5*time.Second); err == nil {
			c.Close()
			t.Error("web's app port took a connection to its IPv4-mapped IPv6 address")
		}
	})

	t.Run("a forged X-Weft-Caller sent to the app port never reaches the app", func(t *testing.T) {
		if got, err := fetchAs(t, 0, "http://"+webApp+"/"); err == nil {
			t.Errorf("web's app answered a direct request: %s", got)
		} else if !strings.Contains(err.Error(), "refused") {
			t.Errorf("direct request: %v, want connection refused", err)
		}
	})

	t.Run("another instance's outbound port is refused", func(t *testing.T) {
		if err := dialRefused(outbound); err != nil {
			t.Error(err)
		}
		if got, err := fetchAs(t, appGID(t, web), "http://"+outbound+"/"); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("web's app used client's outbound port: %q, %v", got, err)
		}
	})

	t.Run("a call through the mesh works and carries the caller's identity", func(t *testing.T) {
		got, err := fetchAs(t, appGID(t, client), "http://"+outbound+"/")
		if err != nil {
			t.Fatalf("client's app calling web through its sidecar: %v", err)
		}
		code, body, _ := strings.Cut(got, " ")
		var hello struct{ Service, Caller string }
		_ = json.Unmarshal([]byte(body), &hello)
		if code != "200" || hello.Service != "web" || hello.Caller != id("client") {
			t.Errorf("through the mesh: %s, want 200 from web with caller %s (the forged header replaced)", got, id("client"))
		}
	})

	t.Run("weft status shows the isolation", func(t *testing.T) {
		out, err := runWeft(t, "status", "--admin", ctl.Admin, "--data-dir", ctl.DataDir)
		if err != nil {
			t.Fatalf("weft status: %v\n%s", err, out)
		}
		if !strings.Contains(out, "ISOLATION") || strings.Count(out, " guard ") != 2 || strings.Contains(out, "NONE") || strings.Contains(out, "WARNING") {
			t.Errorf("weft status, want an ISOLATION column with guard twice and no warning:\n%s", out)
		}
	})

	// Stopping the controller stops the adapter, which removes its table.
	pid := 0
	if s, err := ctl.Status(); err == nil && len(s.Adapters) == 1 {
		pid = s.Adapters[0].Pid
	}
	ctl.Stop()
	if out, err := exec.Command(nft, "list", "table", "inet", fmt.Sprintf("weft_local_%d", pid)).CombinedOutput(); err == nil {
		t.Errorf("the adapter's table outlived it:\n%s", out)
	}
}

// With the guard off (local.isolation = none), weft check fails naming
// every open port and weft status says NONE for every instance.
func TestIsolationOffIsReported(t *testing.T) {
	nft := nftBinary(t)
	ctl, client, web := startIsolationMesh(t, nft, "127.0.82.2", "--adapter-option", "local.isolation=none")
	// The check must see the outbound listener: wait until the sidecar
	// has it (bounded), which the status's outbound list shows.
	rep, stderr, code := waitCheck(t, ctl, "find the 3 open ports", func(rep harness.CheckReport, _ int) bool {
		open := 0
		for _, r := range rep.Results {
			if !r.OK {
				open++
			}
		}
		return open == 3
	})
	if code == 0 {
		t.Errorf("weft check exited %d, want non-zero", code)
	}
	for _, port := range []string{net.JoinHostPort(client, "8080"), net.JoinHostPort(web, "8080"), net.JoinHostPort(client, "9001")} {
		if !strings.Contains(stderr, port) {
			t.Errorf("weft check's error does not name %s:\n%s", port, stderr)
		}
	}
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Kind, "mesh") && !r.OK {
			t.Errorf("%s %s: %s; the mesh port refuses strangers with or without the guard", r.Instance, r.Kind, r.Reason)
		}
	}
	out, err := runWeft(t, "status", "--admin", ctl.Admin, "--data-dir", ctl.DataDir)
	if err != nil {
		t.Fatalf("weft status: %v\n%s", err, out)
	}
	if strings.Count(out, "NONE (app port open)") != 2 || !strings.Contains(out, "WARNING: 2 of 2 instances are not isolated") {
		t.Errorf("weft status, want NONE for both instances and a warning:\n%s", out)
	}
	// And the app port is open indeed: the test could fail.
	if got, err := fetchAs(t, 0, "http://"+net.JoinHostPort(web, "8080")+"/"); err != nil || !strings.Contains(got, "forged") {
		t.Errorf("with the guard off, a forged caller reaches web's app: want it to (the hole the guard closes), got %q, %v", got, err)
	}
}
