package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// upgradePolicy: web (a sidecar) calls api (node mode); api's route
// retries what can be retried (by default: connect failures, resets,
// gateway errors).
const upgradePolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "web" {
  protocol = "http"
  binding "local" { name = "web" }
  upstream "api" { local_port = 9001 }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  route "all" {
    match { path_prefix = "/" }
    retry { attempts = 3 }
  }
}

intention "web" "api" { action = "allow" }
`

// upgradeDrainTimeout is the node proxy's drain timeout (core/proxy's
// default), and upgradeExitMargin what its exit may take beyond it.
const (
	upgradeDrainTimeout = 5 * time.Second
	upgradeExitMargin   = 3 * time.Second
)

// TestNodeProxyUpgradeDropsNothing is the upgrade of a node proxy in place
// (issue 15 part 5; docs/deployment-models.md): api-0 is served by node
// proxy A, run by this test (the local adapter's own node proxy is
// replaced with a sleeping stand-in, so nothing restarts A behind the
// test's back), and web-0, a sidecar, calls it every 5 ms. A slow POST is
// sent through A, its body half written. Node proxy B starts beside A
// with the same --serve (the default --reuse-port of a node proxy lets it
// bind api-0's mesh and admin ports too) and its ready file appears
// (weft-proxy ready --file, the operator's probe); A gets
// SIGTERM, and once it says it is stopping the slow POST's body is
// finished. No call fails, the slow POST is answered (by A), A exits
// within its drain timeout plus a margin, and calls go on through B.
// Then a process without --reuse-port beside B fails to start, naming the
// port and the flag.
func TestNodeProxyUpgradeDropsNothing(t *testing.T) {
	dir := t.TempDir()
	// The local adapter launches its node proxy through this stand-in,
	// which sleeps instead; its sidecars are real weft-proxy processes.
	wrapper := filepath.Join(dir, "weft-proxy-wrapper")
	harness.WriteFile(t, wrapper, "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --node ] && exec sleep 3600; done\nexec "+filepath.Join(binDir, "weft-proxy")+" \"$@\"\n")
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("web", app, `env = { UPSTREAM_API = "http://${HOST}:9001" }`) +
		harness.Workload("api", app, `proxy_mode = "node"`)
	ctl := harness.StartLocalMesh(t, binDir, dir, upgradePolicy, workloads, "127.0.143.2",
		"--adapter-option", "local.isolation=none", "--adapter-option", "local.node=node-a",
		"--proxy-binary", wrapper).Controller
	s := ctl.WaitFor(t, "web-0 and api-0 placed", 60*time.Second, func(s *harness.Status) bool {
		return s.Address("web") != "" && s.Address("api") != ""
	})
	apiAdmin := net.JoinHostPort(s.Address("api"), "15000")
	callURL := "http://" + net.JoinHostPort(s.Address("web"), "9001") + "/"

	readyFile := func(name string) string { return filepath.Join(dir, name+".ready") }
	// probe is the readiness probe an operator runs: weft-proxy ready.
	probe := func(name string) error {
		out, err := exec.Command(filepath.Join(binDir, "weft-proxy"), "ready", "--file", readyFile(name)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("weft-proxy ready --file %s: %v: %s", readyFile(name), err, out)
		}
		return nil
	}
	nodeProxy := func(name string, extra ...string) *harness.Process {
		var tok struct{ Token string }
		if err := ctl.Call("POST", "/v1/join-tokens", map[string]any{"adapter": "local", "node": "node-a", "ttl_seconds": 600}, &tok); err != nil {
			t.Fatalf("node token for %s: %v", name, err)
		}
		args := append([]string{"--node", "node-a", "--serve", "api-0=" + apiAdmin, "--controller", ctl.Listen,
			"--trust-bundle", ctl.WaitCACert(t), "--data-dir", filepath.Join(dir, name), "--ready-file", readyFile(name)}, extra...)
		cmd := exec.Command(filepath.Join(binDir, "weft-proxy"), args...)
		cmd.Env = append(harness.WithoutWeftEnv(), "WEFT_NODE_TOKEN="+tok.Token)
		return harness.Start(t, "node proxy "+name, cmd, harness.Options{})
	}
	waitLine := func(p *harness.Process, what, line string, within time.Duration) time.Duration {
		t.Helper()
		return harness.Eventually(t, p.Name+" "+what, within, func() error {
			if !strings.Contains(p.Out.String(), line) {
				return fmt.Errorf("no %q in its output yet", line)
			}
			return nil
		})
	}

	a := nodeProxy("a")
	waitLine(a, "ready", "node proxy ready", 60*time.Second)

	traffic := &harness.Traffic{URLs: []string{callURL}, Service: "api", Caller: id("web"), Every: 5 * time.Millisecond}
	ctx, stop := context.WithCancel(t.Context())
	var running sync.WaitGroup
	running.Go(func() { traffic.Run(ctx) })
	defer func() { stop(); running.Wait() }()
	traffic.WaitCalls(t, "calls web -> api through node proxy A", 50)

	// The slow request: its headers and half its body go out through A
	// (the only process on api's ports yet).
	slow, err := startSlowPost(s.Address("web"), "upgrade-slow-post")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.conn.Close()

	if err := probe("b"); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("the readiness probe of a node proxy not started yet: %v, want it to fail saying not ready", err)
	}
	b := nodeProxy("b")
	bReady := harness.Eventually(t, "node proxy B ready beside A (weft-proxy ready --file)", 60*time.Second, func() error { return probe("b") })
	waitLine(b, "saying it binds with SO_REUSEPORT", "reuse_port=true", 10*time.Second)
	traffic.WaitCalls(t, "calls with A and B both listening", 50)
	before := countsOf(traffic)

	term := time.Now()
	if err := a.Cmd.Process.Signal(os.Interrupt); err != nil { // SIGINT and SIGTERM stop it alike
		t.Fatal(err)
	}
	waitLine(a, "stopping", "node proxy stopping", 10*time.Second)
	answer, err := slow.finish()
	if err != nil {
		t.Fatalf("the slow POST in flight through A when it was told to stop: %v", err)
	}
	slowTook := time.Since(term)
	select {
	case <-a.Exited():
	case <-time.After(upgradeDrainTimeout + upgradeExitMargin):
		t.Fatalf("node proxy A still runs %v after SIGTERM (drain timeout %v plus %v)", upgradeDrainTimeout+upgradeExitMargin, upgradeDrainTimeout, upgradeExitMargin)
	}
	aExit := time.Since(term)
	if _, err := os.Stat(readyFile("a")); !os.IsNotExist(err) {
		t.Errorf("node proxy A's ready file after it stopped: %v, want it removed", err)
	}
	if !strings.Contains(a.Out.String(), "upgrade-slow-post") {
		t.Errorf("node proxy A's access log has no line for the slow POST (request id upgrade-slow-post): it did not carry it")
	}
	if answer.Service != "api" || answer.Caller != id("web") || answer.Bytes != slowBody {
		t.Errorf("the slow POST's answer: %+v, want api seeing %s and %d bytes", answer, id("web"), slowBody)
	}
	during := countsOf(traffic)

	// Only B listens now.
	traffic.WaitCalls(t, "calls through node proxy B after A exited", 200)
	after := countsOf(traffic)
	stop()
	running.Wait()
	if after.fail > 0 {
		t.Errorf("%d calls failed during the upgrade, want 0; the first: %v", after.fail, traffic.Errors())
	}
	t.Logf("node proxy B ready beside A in %v; A exited %v after SIGTERM (bound %v); the slow POST answered %v after SIGTERM",
		bReady.Round(time.Millisecond), aExit.Round(time.Millisecond), upgradeDrainTimeout+upgradeExitMargin, slowTook.Round(time.Millisecond))
	t.Logf("calls: %d answered before SIGTERM, %d from SIGTERM to A's exit, %d after through B alone; %d failed",
		before.ok, during.ok-before.ok, after.ok-during.ok, after.fail)

	// A node proxy without --reuse-port beside B: refused at once.
	c := nodeProxy("c", "--reuse-port=false")
	select {
	case <-c.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("a node proxy without --reuse-port beside B still runs after 30s")
	}
	if out := c.Out.String(); !strings.Contains(out, apiAdmin) || !strings.Contains(out, "--reuse-port") {
		t.Errorf("a node proxy without --reuse-port beside B: want an error naming %s and --reuse-port, got:\n%s", apiAdmin, out)
	}
	t.Logf("without --reuse-port beside B: %s", harness.FirstLine(c.Out.String(), "binding"))
	if c.Cmd.ProcessState.ExitCode() == 0 {
		t.Errorf("a node proxy without --reuse-port beside B exited 0")
	}
}

// callCounts are the steady calls' counts at one moment.
type callCounts struct{ ok, fail int64 }

func countsOf(h *harness.Traffic) callCounts { return callCounts{h.Answered(), h.Failed()} }

// slowBody is the slow POST's body size.
const slowBody = 2000

// slowPost is a POST whose body is sent in two halves.
type slowPost struct {
	conn net.Conn
	br   *bufio.Reader
}

// startSlowPost sends a POST's headers and the first half of its body to
// web's outbound listener for api.
func startSlowPost(webAddr, requestID string) (*slowPost, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(webAddr, "9001"), 5*time.Second)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: api\r\nX-Request-Id: %s\r\nContent-Length: %d\r\n\r\n%s", requestID, slowBody, strings.Repeat("a", slowBody/2))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("sending the slow POST's first half: %w", err)
	}
	return &slowPost{conn: c, br: bufio.NewReader(c)}, nil
}

// slowAnswer is the demo app's answer to a POST.
type slowAnswer struct {
	Service   string `json:"service"`
	Caller    string `json:"caller"`
	RequestID string `json:"request_id"`
	Bytes     int    `json:"bytes"`
}

// finish sends the second half and reads the answer (10 s at most).
func (p *slowPost) finish() (slowAnswer, error) {
	var a slowAnswer
	p.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(p.conn, strings.Repeat("b", slowBody-slowBody/2)); err != nil {
		return a, fmt.Errorf("sending the second half: %w", err)
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return a, fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != 200 {
		return a, fmt.Errorf("%s: %s", resp.Status, b)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("decoding %s: %w", b, err)
	}
	return a, nil
}
