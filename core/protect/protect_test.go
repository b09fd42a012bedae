package protect_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/protect"
)

type counted struct{ reasons []string }

func (c *counted) refused(reason, _ string, _ *http.Request) { c.reasons = append(c.reasons, reason) }

func TestHandler(t *testing.T) {
	var c counted
	s := protect.Defaults()
	s.MaxInFlight, s.MaxHeaderCount, s.MaxRequestBodyBytes = 1, 3, 10
	sh := protect.NewShield(s, protect.Options{Listener: "test", Refused: c.refused})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := sh.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		_, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		}
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hold", nil))
	<-entered
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("past max_in_flight: %d %v, want 503 with Retry-After", w.Code, w.Header())
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); sh.InFlight() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // the held request ends at once
			t.Fatal("the held request still in flight after 10s")
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	for _, k := range []string{"A", "B", "C", "D"} {
		r.Header.Set(k, "v")
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 431 {
		t.Errorf("4 header fields, max 3: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 11))))
	if w.Code != 413 {
		t.Errorf("an 11-byte body, max 10: %d", w.Code)
	}
	r = httptest.NewRequest("POST", "/", io.NopCloser(strings.NewReader(strings.Repeat("x", 50))))
	r.ContentLength = -1 // streamed
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 413 {
		t.Errorf("a streamed 50-byte body, max 10: %d", w.Code)
	}
	want := []string{protect.ReasonShed, protect.ReasonHeaderCount, protect.ReasonBodyTooLarge, protect.ReasonBodyTooLarge}
	if strings.Join(c.reasons, ",") != strings.Join(want, ",") {
		t.Errorf("refusals %v, want %v", c.reasons, want)
	}
}

func TestListenerPerSource(t *testing.T) {
	s := protect.Defaults()
	s.MaxConnectionsPerSource = 2
	var c counted
	blocked := false
	sh := protect.NewShield(s, protect.Options{Refused: c.refused, Blocked: func(string) bool { return blocked }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := sh.Listener(ln)
	got := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := wl.Accept()
			if err != nil {
				return
			}
			got <- c
		}
	}()
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	a, b := <-got, <-got
	for _, x := range conns[2:] { // the third and fourth are closed by the shield
		x.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := x.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("a connection past the cap: read %v, want EOF", err)
		}
	}
	a.Close() // frees a place
	c3, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	select {
	case x := <-got:
		x.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted after one closed")
	}
	b.Close()
	if sh.Sources() != 0 {
		t.Errorf("%d sources counted after every accepted connection closed", sh.Sources())
	}
	if len(c.reasons) != 2 || c.reasons[0] != protect.ReasonSourceConnections {
		t.Errorf("refusals %v", c.reasons)
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		addr string
		bits int
		want string
	}{
		{"192.0.2.7:443", 64, "192.0.2.7"},
		{"[::ffff:192.0.2.7]:443", 64, "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:443", 64, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9%eth0]:443", 64, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:aaaa::1]:443", 0, "2001:db8:1:2:aaaa::1"},
		{"2001:db8:1:3::5", 64, "2001:db8:1:3::/64"},
		{"[::1]:80", 64, "::/64"},
		{"pipe", 64, "pipe"},
	} {
		if got := protect.SourceKey(tc.addr, tc.bits); got != tc.want {
			t.Errorf("SourceKey(%q, %d) = %q, want %q", tc.addr, tc.bits, got, tc.want)
		}
	}
}

// addrConn is a connection from a given remote address: the shield
// counts by RemoteAddr alone, and loopback has one IPv6 address.
type addrConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }
func (c *addrConn) Close() error         { c.closed = true; return nil }

// With IPv6Prefix 64, new addresses of one /64 share its connection cap
// and its block; another /64 and IPv4 sources have their own.
func TestShieldIPv6Prefix(t *testing.T) {
	s := protect.Defaults()
	s.MaxConnectionsPerSource = 3
	var asked []string
	blocked := map[string]bool{"2001:db8:bad::/64": true}
	var c counted
	sh := protect.NewShield(s, protect.Options{IPv6Prefix: 64, Refused: c.refused, Blocked: func(src string) bool {
		asked = append(asked, src)
		return blocked[src]
	}})
	dial := func(addr string) (*addrConn, bool) {
		ac := &addrConn{remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))}
		_, ok := sh.Admit(ac)
		return ac, ok
	}
	for i := range 3 { // three addresses of one /64 fill its cap
		if _, ok := dial(fmt.Sprintf("[2001:db8:1:2::%x]:4000", i+1)); !ok {
			t.Fatalf("connection %d from 2001:db8:1:2::/64 refused under the cap", i)
		}
	}
	if ac, ok := dial("[2001:db8:1:2:ffff::99]:4000"); ok || !ac.closed {
		t.Errorf("a fourth address of the same /64 was admitted (ok %v): the cap counts per address, not per /64", ok)
	}
	if _, ok := dial("[2001:db8:1:3::1]:4000"); !ok {
		t.Error("another /64 was refused")
	}
	if _, ok := dial("192.0.2.1:4000"); !ok {
		t.Error("an IPv4 source was refused")
	}
	if ac, ok := dial("[2001:db8:bad::42]:4000"); ok || !ac.closed {
		t.Error("an address of a blocked /64 was admitted")
	}
	if got := asked[len(asked)-1]; got != "2001:db8:bad::/64" {
		t.Errorf("Blocked asked about %q, want the /64", got)
	}
	if sh.Sources() != 3 {
		t.Errorf("%d sources counted, want 3 (one /64, another /64, one IPv4 address)", sh.Sources())
	}
	if len(c.reasons) != 2 || c.reasons[0] != protect.ReasonSourceConnections || c.reasons[1] != protect.ReasonBlocked {
		t.Errorf("refusals %v, want source_connections then blocked", c.reasons)
	}
}
