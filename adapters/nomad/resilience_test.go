package nomad

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// switchProxy forwards TCP from a loopback port to target while up; down
// closes every connection and refuses new ones, as a Nomad that went away.
type switchProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  []net.Conn
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target, up: true}
	t.Cleanup(func() { ln.Close(); p.set(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if !p.up {
				p.mu.Unlock()
				c.Close()
				continue
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, d)
			p.mu.Unlock()
			go func() { io.Copy(d, c); d.Close() }()
			go func() { io.Copy(c, d); c.Close() }()
		}
	}()
	return p
}

func (p *switchProxy) addr() string { return "http://" + p.ln.Addr().String() }

func (p *switchProxy) set(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// Nomad going away: the last snapshot is sent again with a warning that
// names the problem, and when Nomad is back the adapter resumes by itself.
func TestNomadUnreachableKeepsLastSnapshot(t *testing.T) {
	agent := sharedAgent(t)
	ns := "flaky"
	agent.CreateNamespace(t, ns)
	agent.Run(t, sleepJob(ns, "web", 1))
	want := ids(agent.Running(t, ns, "web", 1, time.Minute), "web")
	proxy := newSwitchProxy(t, strings.TrimPrefix(agent.Addr, "http://"))

	a := fastAdapter()
	sdktest.ConfigureOK(t, a, &sdk.ConfigureRequest{
		Source: proxy.addr(), Options: map[string]string{OptionTokenFile: agent.TokenFile(t), OptionNamespace: ns},
	})
	w := sdktest.Watch(t, a)
	next := func(what string) sdk.WatchEvent {
		t.Helper()
		ev, ok := w.NextBefore(t, time.Now().Add(20*time.Second))
		if !ok {
			t.Fatalf("no snapshot %s within 20s", what)
		}
		return ev
	}
	first := next("at first")
	if len(first.Snapshot.Instances) != 1 || first.Snapshot.Instances[0].ID != want[0] {
		t.Fatalf("first snapshot %+v, want %v", first.Snapshot.Instances, want)
	}

	proxy.set(false)
	ev := next("after Nomad went away")
	if len(ev.Snapshot.Instances) != 1 || ev.Snapshot.Instances[0].ID != want[0] {
		t.Errorf("snapshot while Nomad is away %+v: want the last one, %v", ev.Snapshot.Instances, want)
	}
	if len(ev.Diagnostics) == 0 || ev.Diagnostics[0].Summary != "Nomad does not answer" || !strings.Contains(ev.Diagnostics[0].Detail, "retrying in") {
		t.Errorf("diagnostics while Nomad is away %+v: want a warning that it does not answer and when the adapter retries", ev.Diagnostics)
	}

	proxy.set(true)
	for deadline := time.Now().Add(20 * time.Second); ; {
		ev = next("after Nomad came back")
		if len(ev.Diagnostics) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still reporting %+v 20s after Nomad came back", ev.Diagnostics)
		}
	}
	if len(ev.Snapshot.Instances) != 1 {
		t.Errorf("snapshot after Nomad came back %+v, want %v", ev.Snapshot.Instances, want)
	}
}

func TestConfigureTokens(t *testing.T) {
	agent := sharedAgent(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := "http://" + closed.Addr().String()
	closed.Close()
	bogus := writeFile(t, "0b1c9f5e-5d7e-4f4e-9c43-7f0d2b8f1e11")
	tests := []struct {
		name     string
		req      sdk.ConfigureRequest
		severity sdk.Severity
		summary  string
	}{
		{"no token where ACLs are on", sdk.ConfigureRequest{Source: agent.Addr}, sdk.SeverityError, "Nomad needs an ACL token"},
		{"a token Nomad does not know", sdk.ConfigureRequest{Source: agent.Addr, Options: map[string]string{OptionTokenFile: bogus}}, sdk.SeverityError, "Nomad refused the ACL token"},
		{"a token file that is missing", sdk.ConfigureRequest{Source: agent.Addr, Options: map[string]string{OptionTokenFile: "/nonexistent/token"}}, sdk.SeverityError, "Cannot read the Nomad token file"},
		{"Nomad not answering is a warning", sdk.ConfigureRequest{Source: deadAddr}, sdk.SeverityWarning, "Nomad does not answer"},
		{"not an address", sdk.ConfigureRequest{Source: "127.0.0.1:4646"}, sdk.SeverityError, "Invalid Nomad address"},
		{"a bad option value", sdk.ConfigureRequest{Source: agent.Addr, Options: map[string]string{OptionResync: "soon"}}, sdk.SeverityError, "Invalid resync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOMAD_TOKEN", "")
			resp, err := fastAdapter().Configure(context.Background(), &tt.req)
			if err != nil {
				t.Fatalf("Configure returned an error, want diagnostics: %v", err)
			}
			if len(resp.Diagnostics) == 0 {
				t.Fatalf("no diagnostic, want %q", tt.summary)
			}
			d := resp.Diagnostics[0]
			if d.Severity != tt.severity || d.Summary != tt.summary || d.Detail == "" {
				t.Errorf("diagnostic %+v, want severity %v, summary %q and a detail saying what to do", d, tt.severity, tt.summary)
			}
		})
	}
}

// A Nomad whose event stream is refused (a proxy in front of it that does
// not pass streams, say): the adapter falls back to blocking queries by
// itself and still sees every change.
func TestEventStreamRefusedFallsBack(t *testing.T) {
	sdktest.Run(t, sdktest.InMemory(func() sdk.Adapter {
		return fastAdapter()
	}), func(t *testing.T) sdktest.Fixture {
		f := conformanceFixture(t)
		target, err := url.Parse(f.Good.Source)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		var refused atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/event/stream" {
				refused.Add(1)
				http.Error(w, "streaming not allowed here", http.StatusBadGateway)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		f.Good.Source = srv.URL
		change := f.Change
		f.Change = func(t *testing.T) []string {
			// Watch has run since the first snapshot: it tried the stream.
			if refused.Load() == 0 {
				t.Error("the adapter never tried the event stream")
			}
			return change(t)
		}
		return f
	})
}
