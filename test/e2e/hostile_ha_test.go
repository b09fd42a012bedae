package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
)

// Hostile tests of a controller replica as a user meets it: the real
// `weft controller` with --raft-dir on loopback, a real weft-proxy's
// certificate, the real CLI (docs/ha-threats.md). The unit-level attacks
// are in core/state (TestRaftPort*, TestClusterAttack*), core/api
// (TestPolicy*Attack), core/meshserver (TestJoinAttack*) and core/relay
// (TestRelayAttack*).

const hostileNet = "127.0.141"

// TestHostileRaftReplica: a replica's raft port refuses a sidecar's own
// certificate from the mesh CA and plain clients and stays a leader under
// a flood; no workload gets the controllers' identity; the CLI and the
// admin API refuse a wrong token and an oversized policy.
func TestHostileRaftReplica(t *testing.T) {
	dir := t.TempDir()
	weft := filepath.Join(binDir, "weft")
	instances := filepath.Join(dir, "instances.json")
	harness.WriteFile(t, instances, `{"instances": [
  {"id": "api-0", "service": "api", "address": "`+hostileNet+`.40", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"},
  {"id": "ctl-0", "namespace": "weft-system", "service": "weft-controller", "address": "`+hostileNet+`.41", "ports": {"app": 8080, "mesh": 21001}, "health": "passing"}
]}`)
	policyDir := filepath.Join(dir, "policy")
	harness.WriteFile(t, filepath.Join(policyDir, "mesh.hcl"), applyBootstrap)
	plugins := filepath.Join(dir, "plugins")
	bin, err := os.ReadFile(filepath.Join(binDir, "weft-adapter-file"))
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(plugins, "weft-adapter-file"), string(bin))
	if err := os.Chmod(filepath.Join(plugins, "weft-adapter-file"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	key := filepath.Join(dir, "state.key")
	harness.WriteFile(t, key, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n")
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	raftAddr := hostileNet + ".1:7402"
	args := []string{"--policy-dir", policyDir, "--plugin-dir", plugins, "--adapter", "file=" + instances,
		"--plugin-checksum", "file=sha256:" + hex.EncodeToString(sum[:]),
		"--raft-dir", filepath.Join(dir, "raft"), "--raft-addr", raftAddr, "--state-key-file", key, "--bootstrap-expect", "1"}
	o := harness.WeftController(binDir, filepath.Join(dir, "data"), hostileNet+".1:7400", hostileNet+".1:7401", args...)
	o.Process = harness.CtrlC
	ctl := harness.StartController(t, o)
	ctl.WaitFor(t, "a leader and two instances", 60*time.Second, func(s *harness.Status) bool {
		return s.Raft != nil && s.Raft.CanIssue && len(s.Instances) == 2
	})

	// A real sidecar, its certificate kept in its data directory.
	sidecarDir := filepath.Join(dir, "sidecar-api-0")
	startSidecar := func(instance string) *harness.Process {
		var tok api.JoinTokenResponse
		if err := ctl.Call("POST", "/v1/join-tokens", api.JoinTokenRequest{Adapter: "file", Instance: instance, Service: map[string]string{"api-0": "api", "ctl-0": "weft-controller"}[instance],
			Namespace: map[string]string{"ctl-0": "weft-system"}[instance]}, &tok); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(binDir, "weft-proxy"), "--instance", instance, "--controller", ctl.Listen,
			"--trust-bundle", ctl.WaitCACert(t), "--admin", harness.FreeAddr(t), "--data-dir", filepath.Join(dir, "sidecar-"+instance))
		cmd.Env = append(os.Environ(), "WEFT_JOIN_TOKEN="+tok.Token)
		return harness.Start(t, "sidecar-"+instance, cmd, harness.Options{})
	}
	startSidecar("api-0")
	var sidecarCert tls.Certificate
	took := harness.Eventually(t, "the sidecar's certificate on disk", 20*time.Second, func() error {
		c, err := tls.LoadX509KeyPair(filepath.Join(sidecarDir, "cert.pem"), filepath.Join(sidecarDir, "key.pem"))
		sidecarCert = c
		return err
	})
	t.Logf("the sidecar of api-0 held its certificate after %s", took)

	// A workload the scheduler calls weft-system/weft-controller joins
	// with a genuine token: refused, never the controllers' identity.
	impostor := startSidecar("ctl-0")
	harness.Eventually(t, "the impostor's join refused for the controllers' identity", 20*time.Second, func() error {
		if !strings.Contains(impostor.Out.String(), "controllers' own identity") {
			return errors.New("not refused yet")
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(dir, "sidecar-ctl-0", "cert.pem")); err == nil {
		t.Fatal("the impostor holds a certificate")
	}

	refused := func(t *testing.T, c net.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		b, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the replica kept the connection open 15s")
		}
		if len(b) > 0 {
			t.Fatalf("the replica answered %q", b[:min(len(b), 64)])
		}
	}
	for _, tc := range []struct {
		name string
		try  func(t *testing.T)
	}{
		{"the sidecar's certificate from the mesh CA", func(t *testing.T) {
			c, err := tls.Dial("tcp", raftAddr, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{sidecarCert}})
			if err != nil {
				t.Logf("handshake refused: %v", err)
				return
			}
			defer c.Close()
			c.Write(append(bytes.Repeat([]byte{0}, 32), 'F'))
			refused(t, c)
		}},
		{"no client certificate", func(t *testing.T) {
			c, err := tls.Dial("tcp", raftAddr, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true})
			if err != nil {
				t.Logf("handshake refused: %v", err)
				return
			}
			defer c.Close()
			refused(t, c)
		}},
		{"plain HTTP", func(t *testing.T) {
			c, err := net.Dial("tcp", raftAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
			refused(t, c)
		}},
	} {
		t.Run(tc.name, tc.try)
	}
	// A flood of idle connections from many sources: the replica still
	// answers its operator and leads.
	var flood []net.Conn
	for i := range 2000 {
		// 50 from each of 40 addresses (one address may hold 64 proving).
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 150, byte(1+i/50))}}
		c, err := d.Dial("tcp", raftAddr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		flood = append(flood, c)
	}
	start := time.Now()
	out, errOut, code := ctl.RunWeft(t, weft, "operator", "raft", "list-peers")
	if code != 0 || !strings.Contains(out, raftAddr) {
		t.Fatalf("list-peers during a flood of 2000 connections: %d\n%s%s", code, out, errOut)
	}
	t.Logf("list-peers answered in %s with 2000 idle connections open on the raft port", time.Since(start).Round(time.Millisecond))
	for _, c := range flood {
		c.Close()
	}
	if s, err := ctl.Status(); err != nil || s.Raft == nil || !s.Raft.CanIssue {
		t.Fatalf("after the attacks: %+v, %v; want the replica leading", s, err)
	}
	if !strings.Contains(ctl.Out.String(), "raft: refused a peer connection") {
		t.Error("the controller's log does not say it refused a peer connection")
	}

	// The CLI with a wrong token: refused, and it says where the token is.
	next := filepath.Join(dir, "next")
	harness.WriteFile(t, filepath.Join(next, "mesh.hcl"), applyV2)
	harness.WriteFile(t, filepath.Join(next, "web.hcl"), applyV2Web)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, weft, "policy", "apply", next, "--admin", ctl.URL(), "--ca-cert", ctl.CACert())
	cmd.Env = append(harness.WithoutWeftEnv(), "WEFT_TOKEN=not-the-token")
	outb, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outb), "admin.token") {
		t.Fatalf("weft policy apply with a wrong token: %v\n%s\nwant refused, saying where the token is", err, outb)
	}
	t.Logf("a wrong token: %s", harness.FirstLine(string(outb), "token"))

	// A policy as large as a replicated one may be (just under 1 MiB of
	// files, 4 of 240 KiB): applied. The admin API's shield used to cap
	// every body at 1 MiB, under the 1.33 MiB such a policy takes in JSON.
	large := filepath.Join(dir, "large")
	harness.WriteFile(t, filepath.Join(large, "mesh.hcl"), applyBootstrap)
	for i := range 4 {
		harness.WriteFile(t, filepath.Join(large, fmt.Sprintf("pad%d.hcl", i)), strings.Repeat("# padding to the replicated policy's limit\n", 240<<10/43))
	}
	out, errOut, code = ctl.RunWeft(t, weft, "policy", "apply", large, "--applied-by", "large@test")
	if code != 0 {
		t.Fatalf("weft policy apply of a policy just under the 1 MiB limit: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("a policy of about 1 MiB applied: %s", harness.FirstLine(out, "Applied"))

	// 100 MB at the admin API with the token: 413, before the compiler.
	tok, err := os.ReadFile(filepath.Join(ctl.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	pool := ctl.RootPool(t)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: hostileNet + ".1"}}}
	req, err := http.NewRequest("POST", ctl.URL()+"/v1/policy/apply", io.LimitReader(zeros{}, 100<<20))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	start = time.Now()
	resp, err := hc.Do(req)
	if err == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("100 MB policy: %d %q, want 413", resp.StatusCode, b)
		}
	} else {
		t.Logf("the server closed while the client sent (%v)", err)
	}
	t.Logf("100 MB policy refused after %s", time.Since(start).Round(time.Millisecond))
	var hist api.PolicyHistory
	if err := ctl.Call("GET", "/v1/policy/history", nil, &hist); err != nil || len(hist.Versions) != 1 || hist.Versions[0].AppliedBy != "large@test" {
		t.Fatalf("history after the attacks: %+v, %v; want the large policy alone", hist.Versions, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestHostileControllerFlags: `weft controller` given a state key file
// that is a FIFO, a directory or readable by others, or a --raft-addr no
// peer could dial, exits at once with what to do; it never hangs.
func TestHostileControllerFlags(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "state.key.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "state.key.open")
	harness.WriteFile(t, open, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n")
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "state.key")
	harness.WriteFile(t, good, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n")
	if err := os.Chmod(good, 0o600); err != nil {
		t.Fatal(err)
	}
	policyDir := filepath.Join(dir, "policy")
	harness.WriteFile(t, filepath.Join(policyDir, "mesh.hcl"), applyBootstrap)
	for _, tc := range []struct {
		name, key, addr, want string
	}{
		{"a FIFO as the key", fifo, hostileNet + ".10:7402", "not a regular file"},
		{"a directory as the key", dir, hostileNet + ".10:7402", "not a regular file"},
		{"a key readable by others", open, hostileNet + ".10:7402", "readable by others"},
		{"raft-addr 0.0.0.0", good, "0.0.0.0:7402", "not 0.0.0.0"},
		{"raft-addr without a port", good, hostileNet + ".10", "want HOST:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			data := t.TempDir()
			cmd := exec.CommandContext(ctx, filepath.Join(binDir, "weft"), "controller", "--data-dir", data, "--policy-dir", policyDir,
				"--listen", hostileNet+".10:7400", "--admin", hostileNet+".10:7401",
				"--raft-dir", filepath.Join(data, "raft"), "--raft-addr", tc.addr, "--state-key-file", tc.key, "--bootstrap-expect", "1")
			cmd.Env = harness.WithoutWeftEnv()
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("the controller still ran after 30s:\n%s", harness.Tail(string(out), 20))
			}
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %v, output:\n%s\nwant a refusal with %q", err, harness.Tail(string(out), 20), tc.want)
			}
			t.Logf("refused after %s: %s", time.Since(start).Round(time.Millisecond), harness.FirstLine(string(out), tc.want))
		})
	}
}
