package nomad

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// A Nomad the controller cannot reach shows in `weft status` as the nomad
// adapter's LAST ERROR within one retry of the adapter (its backoff is
// capped at 5 s; the broken event stream makes it read Nomad at once), and
// a change made in Nomad during the outage reaches the caller's sidecar
// within 5 s of Nomad being reachable again. The outage is a loopback TCP
// forwarder between the adapter and the agent that the test stops (every
// connection cut) and starts again on the same address; the agent and its
// allocations keep running.
func TestNomadOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, a controller and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	u, err := url.Parse(agent.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fwd := startForwarder(t, u.Host)
	e := &meshEnv{agent: agent}
	dir := t.TempDir()
	e.policyDir = harness.WritePolicy(t, dir, policy)
	e.listen = harness.FreeAddr(t)
	e.ctl = startController(t, filepath.Join(dir, "weft"), e.listen, harness.FreeAddr(t),
		"--policy-dir", e.policyDir, "--adapter", "nomad=http://"+fwd.addr,
		"--adapter-option", "nomad.token_file="+agent.TokenFile(t))
	e.roots = e.ctl.WaitCACert(t)

	apis, front := e.runFrontendAPI(t, meshJob("api", 2, e.listen, e.roots), 2)
	frontAdmin := fmt.Sprintf("127.0.0.1:%d", port(front, "admin"))
	if got, err := endpoints(frontAdmin); err != nil || !slices.Equal(got, instanceIDs(apis, "api")) {
		t.Fatalf("frontend sidecar's api endpoints = %v, %v; want %v", got, err, instanceIDs(apis, "api"))
	}

	// The outage.
	fwd.stop()
	down := time.Now()
	failing := func(s *harness.Status) bool {
		for _, a := range s.Adapters {
			if a.Name == "nomad" && a.SourceFailing && a.LastError != "" && a.LastErrorAt != nil {
				return true
			}
		}
		return false
	}
	const poll = 5 * time.Second // the adapter's backoff cap: one retry
	st := e.ctl.WaitFor(t, "the nomad adapter's LAST ERROR", poll+time.Second, failing)
	seen := time.Since(down)
	t.Logf("LAST ERROR in status %v after the outage began: %q", seen.Round(time.Millisecond), st.Adapters[0].LastError)
	if seen > poll {
		t.Errorf("LAST ERROR took %v, want within one poll (%v)", seen, poll)
	}
	out, stderr, code := e.ctl.RunWeft(t, filepath.Join(binDir, "weft"), "status")
	if code != 0 || !strings.Contains(out, " ago, ") || !strings.Contains(out, "now: ") {
		t.Errorf("weft status (exit %d) does not show the outage with its age:\n%s\n%s", code, out, stderr)
	}
	t.Logf("weft status during the outage:\n%s", out)

	// A change in Nomad while Weft cannot see it: api scaled down to 1.
	agent.Run(t, meshJob("api", 1, e.listen, e.roots))
	left := agent.Running(t, "default", "api", 1, 2*time.Minute)
	want := instanceIDs(left, "api")
	if got, err := endpoints(frontAdmin); err != nil || len(got) != 2 {
		t.Fatalf("frontend sidecar's api endpoints during the outage = %v, %v; want the last snapshot's 2 kept", got, err)
	}

	// Let the adapter's backoff grow to its cap before Nomad comes back,
	// as in a real outage: its warning says when it retries next.
	grown := e.ctl.WaitFor(t, "the adapter retrying at its backoff cap", 30*time.Second, func(s *harness.Status) bool {
		for _, a := range s.Adapters {
			if a.Name == "nomad" && a.SourceFailing && retryIn(a.LastError) >= 3*time.Second {
				return true
			}
		}
		return false
	})
	t.Logf("outage of %v; the adapter's last word: %q", time.Since(down).Round(time.Millisecond), grown.Adapters[0].LastError)

	// The end of the outage.
	fwd.start(t)
	up := time.Now()
	const catchUp = 5 * time.Second
	took := harness.Eventually(t, "the frontend sidecar's api endpoints after Nomad came back", catchUp+5*time.Second, func() error {
		got, err := endpoints(frontAdmin)
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("endpoints %v, want %v", got, want)
		}
		return err
	})
	t.Logf("the change reached the frontend's sidecar %v after Nomad came back (measured by the wait: %v)", time.Since(up).Round(time.Millisecond), took.Round(time.Millisecond))
	if d := time.Since(up); d > catchUp+200*time.Millisecond {
		t.Errorf("the change took %v after Nomad came back, want within %v", d, catchUp)
	}
	e.ctl.WaitFor(t, "LAST ERROR cleared after the outage", catchUp, func(s *harness.Status) bool {
		for _, a := range s.Adapters {
			if a.Name == "nomad" && !a.SourceFailing {
				return true
			}
		}
		return false
	})
}

// retryIn reads "retrying in D." from the adapter's warning (0 when it has
// none).
func retryIn(msg string) time.Duration {
	_, after, ok := strings.Cut(msg, "retrying in ")
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSuffix(strings.Fields(after)[0], "."))
	if err != nil {
		return 0
	}
	return d
}

// forwarder is a TCP forwarder on loopback to target that the test stops
// and starts again on the same address.
type forwarder struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	done  chan struct{}
}

func startForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	f := &forwarder{target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(f.stop)
	return f
}

// start listens again on the same address (bounded retries: the port was
// just released).
func (f *forwarder) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	err := harness.Poll(t.Context(), 5*time.Second, 20*time.Millisecond, func() (err error) {
		ln, err = net.Listen("tcp", f.addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening again on %s: %v", f.addr, err)
	}
	f.serve(ln)
}

func (f *forwarder) serve(ln net.Listener) {
	f.mu.Lock()
	f.ln, f.done = ln, make(chan struct{})
	done := f.done
	f.mu.Unlock()
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.pipe(c)
		}
	}()
}

func (f *forwarder) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !f.track(c, up) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
	go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
	wg.Wait()
	f.mu.Lock()
	delete(f.conns, c)
	delete(f.conns, up)
	f.mu.Unlock()
}

// track records both ends of a connection, or closes them when the
// forwarder stopped meanwhile.
func (f *forwarder) track(c, up net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil {
		c.Close()
		up.Close()
		return false
	}
	f.conns[c], f.conns[up] = true, true
	return true
}

// stop closes the listener and cuts every connection.
func (f *forwarder) stop() {
	f.mu.Lock()
	ln, done := f.ln, f.done
	f.ln = nil
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	if ln != nil {
		ln.Close()
		<-done
	}
}
