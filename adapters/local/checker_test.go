package local

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// healthOf returns a snapshot's instance health and check label by ID.
func healthOf(ev sdk.WatchEvent) map[string]string {
	m := map[string]string{}
	for _, in := range ev.Snapshot.Instances {
		m[in.ID] = string(in.Health) + "/" + in.Labels["check"]
	}
	return m
}

// A real app whose /healthz fails while its process runs is critical
// within about one interval, and passing again once it passes; a TCP
// check follows the app's port; an instance without a check is not
// probed.
func TestChecksAgainstRealProcesses(t *testing.T) {
	s := newSetup(t)
	a := newTestAdapter(t)
	check := "  check {\n    http     = \"/healthz\"\n    interval = \"100ms\"\n    timeout  = \"100ms\"\n  }"
	s.writeWorkloads(t, map[string]int{"api": 2}, check)
	sdktest.ConfigureOK(t, a, s.request(t))
	events := watch(t, a)
	sdktest.WaitFor(t, events, "both api instances passing their check", waitTimeout, func(ev sdk.WatchEvent) bool {
		h := healthOf(ev)
		return allPassing("api-0", "api-1")(ev) && h["api-0"] == "passing/passing" && h["api-1"] == "passing/passing"
	})

	bad := unhealthyFile(s.readySocket(), "api-0")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	failed := time.Now()
	sdktest.WaitFor(t, events, "api-0 critical, its check failing", 2*time.Second, func(ev sdk.WatchEvent) bool {
		h := healthOf(ev)
		return h["api-0"] == "critical/failing" && h["api-1"] == "passing/passing"
	})
	t.Logf("api-0 critical %v after its /healthz began to fail (interval 100ms)", time.Since(failed).Round(time.Millisecond))

	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	sdktest.WaitFor(t, events, "api-0 passing again", 2*time.Second, func(ev sdk.WatchEvent) bool {
		return healthOf(ev)["api-0"] == "passing/passing"
	})

	// The check changes to TCP: the check is replaced (the app keeps
	// running) and passes while the app's port is open.
	s.writeWorkloads(t, map[string]int{"api": 2}, strings.ReplaceAll(check, `http     = "/healthz"`, "tcp = true"))
	sdktest.WaitFor(t, events, "a TCP check passing", waitTimeout, func(ev sdk.WatchEvent) bool {
		h := healthOf(ev)
		return h["api-0"] == "passing/passing" && h["api-1"] == "passing/passing"
	})
	// No check: no check label, passing.
	s.writeWorkloads(t, map[string]int{"api": 2}, "")
	sdktest.WaitFor(t, events, "no check", waitTimeout, func(ev sdk.WatchEvent) bool {
		h := healthOf(ev)
		return h["api-0"] == "passing/" && h["api-1"] == "passing/"
	})
}

// A probe passes on 2xx only, fails on anything else, on a refused
// connection and on a timeout, and says why.
func TestProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serveStatuses(l)
	port := l.Addr().(*net.TCPAddr).Port
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	r := newRunner(runnerConfig{}, nil)
	for _, tc := range []struct {
		name   string
		check  checkSpec
		port   int
		want   string
		output string
	}{
		{"200", checkSpec{HTTP: "/200"}, port, checkPassing, ""},
		{"204", checkSpec{HTTP: "/204"}, port, checkPassing, ""},
		{"302 is not followed", checkSpec{HTTP: "/302"}, port, checkFailing, "302"},
		{"429", checkSpec{HTTP: "/429"}, port, checkFailing, "429"},
		{"500 with its body", checkSpec{HTTP: "/500"}, port, checkFailing, "500 Internal Server Error: broken"},
		{"no answer within the timeout", checkSpec{HTTP: "/slow"}, port, checkFailing, "deadline"},
		{"refused", checkSpec{HTTP: "/200"}, closedPort, checkFailing, "refused"},
		{"tcp open", checkSpec{TCP: true}, port, checkPassing, ""},
		{"tcp refused", checkSpec{TCP: true}, closedPort, checkFailing, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Interval, tc.check.Timeout = time.Second, 300*time.Millisecond
			res := r.probe(context.Background(), instanceSpec{ID: "x-0", Address: "127.0.0.1", Port: tc.port, Check: &tc.check})
			if res.Status != tc.want || !strings.Contains(res.Output, tc.output) || len(res.Output) > maxCheckOutput {
				t.Errorf("probe = %+v, want %s with %q", res, tc.want, tc.output)
			}
		})
	}
}

// Stopping a check ends a probe under way: closing the adapter does not
// wait out a long timeout.
func TestStopCheckEndsProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c // never answered
		}
	}()
	r := newRunner(runnerConfig{}, nil)
	spec := instanceSpec{ID: "x-0", Address: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port,
		Check: &checkSpec{HTTP: "/healthz", Interval: time.Hour, Timeout: time.Hour}}
	in := &instance{spec: spec, app: &slot{kind: "app", running: true}}
	r.mu.Lock()
	r.startCheckLocked(in, spec)
	c := in.check
	r.mu.Unlock()
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the probe did not connect within 5s")
	}
	stopped := time.Now()
	stopCheck(c)
	select {
	case <-c.done:
		t.Logf("the check ended %v after it was stopped", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the check did not end within 5s of being stopped, its probe under way")
	}
}

// serveStatuses answers /<code> with that status; /slow never answers.
func serveStatuses(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			var path string
			fmt.Sscanf(line, "GET %s", &path)
			switch path {
			case "/slow":
				time.Sleep(2 * time.Second)
			case "/500":
				fmt.Fprintf(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 6\r\nConnection: close\r\n\r\nbroken")
			default:
				code := strings.TrimPrefix(path, "/")
				fmt.Fprintf(c, "HTTP/1.1 %s X\r\nContent-Length: 0\r\nLocation: /200\r\nConnection: close\r\n\r\n", code)
			}
		}()
	}
}

// With the guard, the probe connects as the instance's sidecar group,
// which the guard's rules let through to the app's port; the adapter's
// own group is refused.
func TestCheckDialAsSidecarGroup(t *testing.T) {
	nft := needGuard(t)
	l, err := net.Listen("tcp", "127.0.91.8:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serveGreeting(l, "hello")
	port := l.Addr().(*net.TCPAddr).Port
	table := fmt.Sprintf("weft_test_chk_%d", os.Getpid())
	deleteTableAtEnd(t, nft, table)
	const gid = 2000999002
	cmd := exec.Command(nft, "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("table inet %s {\n chain output {\n  type filter hook output priority filter; policy accept;\n  ip daddr 127.0.91.8 tcp dport %d tcp flags & (syn | ack) == syn meta skgid != %d reject with tcp reset\n }\n}\n", table, port, gid))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	addr := l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := checkDial(ctx, gid, addr)
	if err != nil {
		t.Fatalf("dialing as the allowed group: %v", err)
	}
	if _, err := conn.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Errorf("read %q, %v", buf, err)
	}
	conn.Close()
	if c, err := checkDial(ctx, -1, addr); err == nil {
		c.Close()
		t.Error("the adapter's own group reached the guarded port")
	}
	if c, err := checkDial(ctx, gid+1, addr); err == nil {
		c.Close()
		t.Error("another group reached the guarded port")
	}
	// The thread's group is the adapter's again: a plain socket is refused.
	var d net.Dialer
	if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
		c.Close()
		t.Error("after checkDial, a plain dial reached the guarded port: the group leaked")
	}
}

// With the guard on, the adapter's checks still reach the apps (as their
// sidecars' group), while the adapter's own group is refused there.
func TestChecksThroughTheGuard(t *testing.T) {
	nft := needGuard(t)
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 1}, "  check {\n    http     = \"/healthz\"\n    interval = \"100ms\"\n  }")
	a := newTestAdapter(t)
	deleteTableAtEnd(t, nft, tablePrefix+strconv.Itoa(os.Getpid()))
	req := s.request(t)
	req.Options[OptionIsolation] = isolationGuard
	sdktest.ConfigureOK(t, a, req)
	events := watch(t, a)
	sdktest.WaitFor(t, events, "api-0 guarded and passing its check", waitTimeout, func(ev sdk.WatchEvent) bool {
		return len(ev.Snapshot.Instances) == 1 && ev.Snapshot.Instances[0].Isolation == "guard" && healthOf(ev)["api-0"] == "passing/passing"
	})
	app := net.JoinHostPort(s.prefix+"2", strconv.Itoa(s.port))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := checkDial(ctx, -1, app); err == nil {
		c.Close()
		t.Fatal("the adapter's own group reached the guarded app: the test proves nothing")
	}
	if err := os.WriteFile(unhealthyFile(s.readySocket(), "api-0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sdktest.WaitFor(t, events, "api-0 critical", 2*time.Second, func(ev sdk.WatchEvent) bool {
		return healthOf(ev)["api-0"] == "critical/failing"
	})
}
