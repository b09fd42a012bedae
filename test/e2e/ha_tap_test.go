package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
)

// TestRaftTapThroughAnyReplica: with web's two sidecars on two different
// replicas, `weft tap web` through the third replica, which holds neither
// sidecar's stream, shows the requests each of them answered (each peer
// runs a leg of the tap with its own sidecars and sends their events to
// the third, core/relay); and when the CLI goes away (SIGKILL), no tap
// session stays open on any replica.
func TestRaftTapThroughAnyReplica(t *testing.T) {
	c := startHACluster(t, 123, haPolicy, haWorkloads(2), 4)
	on := c.spread([]string{"client-0", "client-1", "web-0", "web-1"}, "web-0 and web-1 on different replicas", func(on map[string]int) bool {
		return on["web-0"] != on["web-1"]
	})
	third := 3 - on["web-0"] - on["web-1"]
	ctl := c.Ctls[third]

	// weft tap through the third replica, as an operator runs it.
	cmd := exec.Command(filepath.Join(binDir, "weft"), "tap", "web", "--direction", "inbound", "--json", "--duration", "5m",
		"--admin", ctl.URL(), "--data-dir", ctl.DataDir)
	cmd.Env = harness.WithoutWeftEnv()
	tap := harness.Start(t, "weft tap web (replica "+fmt.Sprint(third)+")", cmd, harness.Options{})
	started := time.Now()
	for _, id := range []string{"web-0", "web-1"} {
		waitLine(t, tap, fmt.Sprintf("the tap to reach %s's sidecar (on replica %d)", id, on[id]), "tap started on sidecar "+id)
	}
	t.Logf("weft tap web through replica %d reached web-0 (replica %d) and web-1 (replica %d) %s after it started",
		third, on["web-0"], on["web-1"], time.Since(started).Round(time.Millisecond))

	// Every replica runs a session of the tap: the third its own, each
	// peer a leg for it.
	sessions := func(i int) (api.TapSessions, error) {
		var s api.TapSessions
		err := c.Ctls[i].Call("GET", "/v1/tap/sessions", nil, &s)
		return s, err
	}
	for i := range c.Ctls {
		s, err := sessions(i)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i == third && (s.Started != 1 || s.Open != 1):
			t.Errorf("replica %d (the tap's): %+v; want the one tap it started", i, s)
		case i != third && (s.Open != 1 || len(s.ForPeers) != 1 || s.ForPeers[0].Origin != c.raftAddr(third) || s.ForPeers[0].Service != "web"):
			t.Errorf("replica %d: %+v; want one leg of replica %d's tap of web", i, s, third)
		}
	}

	// Calls through both clients until the tap shows requests answered by
	// both web sidecars, once every replica sees them passing.
	waited := c.passing([]string{"client-0", "client-1", "web-0", "web-1"}, 30*time.Second)
	t.Logf("every replica sees the four instances passing, their configs ACKed (bound 30s; waited %s)", waited.Round(time.Millisecond))
	st, err := ctl.Status()
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, in := range st.Instances {
		if in.Service == "client" {
			urls = append(urls, "http://"+net.JoinHostPort(in.Address, "9001")+"/")
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	var (
		calls, failed int
		lastErr       string
	)
	seen := map[string]int{}
	took := harness.Eventually(t, "requests answered by web-0 and web-1 in the tap", 30*time.Second, func() error {
		for _, u := range urls {
			calls++
			resp, err := hc.Get(u)
			if err != nil {
				failed++
				lastErr = err.Error()
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed++
				lastErr = resp.Status + ": " + string(b)
			}
		}
		clear(seen)
		for _, ev := range tapEvents(t, tap.Out.String()) {
			if ev.Type == "request" && ev.Path == "/" && ev.Status == 200 && ev.Direction == "inbound" &&
				ev.Callee == "web" && ev.Caller == "spiffe://weft.test/ns/default/svc/client" {
				seen[ev.Instance]++
			}
		}
		if seen["web-0"] == 0 || seen["web-1"] == 0 {
			return fmt.Errorf("after %d calls (%d failed, the last: %s), the tap shows requests answered by %v", calls, failed, lastErr, seen)
		}
		return nil
	})
	t.Logf("weft tap web through replica %d: requests answered by web-0 (replica %d) %d, by web-1 (replica %d) %d, after %d calls (%d failed) in %s (bound 30s)",
		third, on["web-0"], seen["web-0"], on["web-1"], seen["web-1"], calls, failed, took.Round(time.Millisecond))
	if failed != 0 {
		t.Errorf("%d of %d calls failed", failed, calls)
	}

	// The CLI dies: every replica closes its session of the tap.
	tap.Kill(t)
	killed := time.Now()
	took = harness.Eventually(t, "no tap session open on any replica after the CLI's SIGKILL", 10*time.Second, func() error {
		var open []string
		for i := range c.Ctls {
			s, err := sessions(i)
			if err != nil {
				return err
			}
			if s.Open != 0 || s.Started != 0 || len(s.ForPeers) != 0 {
				open = append(open, fmt.Sprintf("replica %d: %+v", i, s))
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("still open: %s", strings.Join(open, "; "))
		}
		return nil
	})
	t.Logf("no tap session open on any replica %s after the CLI's SIGKILL (bound 10s; waited %s)", time.Since(killed).Round(time.Millisecond), took.Round(time.Millisecond))
}
