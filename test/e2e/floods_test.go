package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// floodPolicy: the gateway edge (HTTPS, a certificate of the test's CA)
// in front of frontend, with the mesh's protection tightened so that the
// test is short: a 2s header (and handshake) timeout and 32 connections
// per source address on every sidecar and gateway listener; at the
// gateway, 5 requests to /limited per client address, then 1 a second.
const floodPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
  protection {
    read_header_timeout        = "2s"
    max_connections_per_source = 32
  }
}

service "edge" {
  binding "local" { name = "edge" }
  rate_limit "per-ip" {
    requests_per_second = 1
    burst               = 5
    per_source_ip       = true
    match { path_prefix = "/limited" }
  }
}

service "frontend" {
  binding "local" { name = "frontend" }
  protocol = "http"
}

gateway "edge" {
  listener "https" {
    port     = 8443
    protocol = "https"
    tls {
      cert_file = %q
      key_file  = %q
    }
    route "shop" {
      hosts   = ["shop.example.com"]
      service = "frontend"
    }
  }
}

intention "edge" "frontend" { action = "allow" }
`

// The source addresses of the attacking connections: loopback addresses
// of their own, so that the per-source caps they run into are not the
// well-behaved client's (which calls from 127.0.0.1). The header bombs
// come from another address than the slow and the many connections, or
// the cap would close them before they are read.
const (
	attacker        = "127.0.114.250"
	bombingAttacker = "127.0.114.251"
)

// floodTarget is one listener under attack.
type floodTarget struct {
	name      string
	addr      string      // host:port
	tls       *tls.Config // nil: plain HTTP
	host      string      // the Host of attacking requests
	perSource int         // the listener's connections per source
	header    time.Duration
	good      func(context.Context) error // one call of the well-behaved client
	pid       int                         // the process serving it
}

// TestEdgeFloods: slowloris (a TLS handshake or a header block never
// finished), header bombs (too many fields, too many bytes) and many
// connections from one source, against the gateway's HTTPS listener, a
// sidecar's admin port and the controller's admin API, each on the local
// mesh, from loopback addresses of the attackers' own. The slow
// connections stay open until the listener closes them (at most its
// header timeout plus 10s); meanwhile the bombs (at most 3000) and the
// rounds of 120 connections (at most 30) run without pause. A
// well-behaved client keeps calling the listener throughout and must
// never fail; the test prints its p99 unloaded and under the floods, and
// the serving process's memory.
//
// The p99 ratio is printed, and held to a generous bound (8x, or 250ms
// over the unloaded p99, whichever is larger): on a shared 2-core machine
// where the attacker, the client and the servers share the cores, 2x is
// not deterministic. Memory is held to 64 MiB of growth at the peak.
func TestEdgeFloods(t *testing.T) {
	dir := t.TempDir()
	cert := harness.NewServerCert(t, dir, "shop.example.com")
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := harness.Workload("frontend", app) + harness.Workload("edge", "/bin/sleep", `args = ["infinity"]`)
	ctl, _ := startLocalMesh(t, fmt.Sprintf(floodPolicy, cert.CertFile, cert.KeyFile), workloads, "127.0.114.10")
	st := ctl.WaitFor(t, "2 instances, the sidecar and the gateway acknowledging", 60*time.Second, harness.Converged(2))
	proxies := proxyPids(t, ctl.DataDir)

	// The gateway: a keep-alive HTTPS client of shop.example.com.
	gw := net.JoinHostPort(st.Address("edge"), "8443")
	gwClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: cert.Pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, gw)
		},
	}}
	t.Cleanup(gwClient.CloseIdleConnections)
	// The sidecar's admin port: /ready, keep-alive.
	sidecarAdmin := net.JoinHostPort(st.Address("frontend"), "15000")
	adminClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(adminClient.CloseIdleConnections)
	// The controller's admin API: GET /v1/status with its token.
	api, err := ctl.Client()
	if err != nil {
		t.Fatal(err)
	}
	get := func(c *http.Client, url string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
			if err != nil {
				return err
			}
			code, body, _, err := harness.Do(c, req)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("GET %s: %d %s", url, code, body)
			}
			return nil
		}
	}
	harness.Eventually(t, "the gateway to serve frontend", 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return get(gwClient, "https://shop.example.com/")(ctx)
	})

	targets := []floodTarget{
		{name: "gateway https", addr: gw, host: "shop.example.com", perSource: 32, header: 2 * time.Second,
			tls:  &tls.Config{ServerName: "shop.example.com", RootCAs: cert.Pool},
			good: get(gwClient, "https://shop.example.com/"), pid: proxies["edge"]},
		{name: "sidecar admin", addr: sidecarAdmin, host: "admin", perSource: 64, header: 10 * time.Second,
			good: get(adminClient, "http://"+sidecarAdmin+"/ready"), pid: proxies["frontend"]},
		{name: "controller admin API", addr: ctl.Admin, host: "admin", perSource: 64, header: 10 * time.Second,
			tls: &tls.Config{InsecureSkipVerify: true}, // the attacker checks nothing
			good: func(ctx context.Context) error {
				var s struct{}
				return api.Call(ctx, "GET", "/v1/status", nil, &s)
			}, pid: ctl.Cmd.Process.Pid},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) { floodListener(t, tg) })
	}

	// A burst above the gateway's per-IP limit: 5 pass (frontend's app
	// answers 404 for /limited), the rest get 429 at the gateway; the
	// well-behaved client, from another address, has its own bucket.
	t.Run("burst above the per-IP limit", func(t *testing.T) {
		burst := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: cert.Pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}}
				return d.DialContext(ctx, network, gw)
			},
		}}
		defer burst.CloseIdleConnections()
		codes := map[int]int{}
		for range 20 {
			req, _ := http.NewRequest("GET", "https://shop.example.com/limited", nil)
			code, _, _, err := harness.Do(burst, req)
			if err != nil {
				t.Fatal(err)
			}
			codes[code]++
		}
		if codes[http.StatusNotFound] < 5 || codes[http.StatusNotFound] > 7 || codes[http.StatusTooManyRequests] < 13 {
			t.Errorf("a burst of 20 from one address: %v, want 5 (or a refill or two more) passed (404) and the rest 429", codes)
		}
		req, _ := http.NewRequest("GET", "https://shop.example.com/limited", nil)
		if code, body, _, err := harness.Do(gwClient, req); err != nil || code != http.StatusNotFound {
			t.Errorf("the well-behaved client's /limited: %d %s %v, want 404 (its own bucket)", code, body, err)
		}
		t.Logf("a burst of 20 from %s above the gateway's per-IP limit (burst 5, 1/s): %v", attacker, codes)
	})

	// The gateway noted the attacker's refused handshakes and connections
	// as intrusion signals from its address.
	var m string
	harness.Eventually(t, "the gateway's intrusion signals", 10*time.Second, func() error {
		_, body, err := harness.Get(context.Background(), "http://"+net.JoinHostPort(st.Address("edge"), "15000")+"/metrics")
		if err != nil {
			return err
		}
		m = body
		for _, s := range []string{`weft_intrusion_signals_total{kind="handshake"}`, `weft_intrusion_signals_total{kind="conn_limited"}`, `weft_intrusion_signals_total{kind="bad_request"}`, `weft_intrusion_signals_total{kind="rate_limited"}`} {
			if v := metricValue(m, s); v <= 0 {
				return fmt.Errorf("%s is %v, want > 0", s, v)
			}
		}
		return nil
	})
	for _, s := range []string{`weft_intrusion_signals_total{kind="handshake"}`, `weft_intrusion_signals_total{kind="conn_limited"}`, `weft_intrusion_signals_total{kind="bad_request"}`, `weft_intrusion_signals_total{kind="rate_limited"}`} {
		t.Logf("gateway %s %v", s, metricValue(m, s))
	}
}

// floodListener runs the attacks against tg while the well-behaved client
// calls it, and checks and prints what it got.
func floodListener(t *testing.T, tg floodTarget) {
	call := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		err := tg.good(ctx)
		return time.Since(start), err
	}
	var unloaded []time.Duration
	for i := range 520 {
		d, err := call()
		if err != nil {
			t.Fatalf("unloaded call: %v", err)
		}
		if i >= 20 { // the first ones warm up
			unloaded = append(unloaded, d)
		}
	}
	rssBefore, _ := procMemory(t, tg.pid)

	stop := make(chan struct{})
	var loaded []time.Duration
	var goodErrs []error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			d, err := call()
			if err != nil {
				goodErrs = append(goodErrs, err)
				continue
			}
			loaded = append(loaded, d)
		}
	})
	stopGood := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopGood()

	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}, Timeout: 5 * time.Second}
	bomber := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(bombingAttacker)}, Timeout: 5 * time.Second}
	dialTLS := func(dialer *net.Dialer) (net.Conn, error) {
		c, err := dialer.Dial("tcp", tg.addr)
		if err != nil || tg.tls == nil {
			return c, err
		}
		tc := tls.Client(c, tg.tls)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		tc.SetDeadline(time.Time{})
		return tc, nil
	}

	// Slowloris: 20 connections that never finish, started at once: over
	// TLS half stop inside the handshake, half inside the header block.
	slowStart := time.Now()
	var slow []net.Conn
	for i := range 20 {
		if tg.tls != nil && i%2 == 0 {
			c, err := dialer.Dial("tcp", tg.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{0x16, 0x03, 0x01}) // the start of a ClientHello record
			slow = append(slow, c)
			continue
		}
		c, err := dialTLS(dialer)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+tg.host+"\r\nX-Slow: ")
		slow = append(slow, c)
	}

	// While the slow connections wait for the header timeout, two
	// attackers run without pause, each bounded in count: rounds of many
	// connections from one source (past the cap, closed at once), and
	// header bombs (300 fields, or a 200 KiB header: each gets 431 or,
	// once the server stopped reading, a closed connection; none is
	// served).
	var fields strings.Builder
	for i := range 300 {
		fmt.Fprintf(&fields, "X-H%d: v\r\n", i)
	}
	bombHdrs := []string{fields.String(), "X-Big: " + strings.Repeat("a", 200<<10) + "\r\n"}
	bombKinds := []string{"300 fields", "200 KiB"}
	bomb := func(hdr string) string {
		c, err := dialTLS(bomber)
		if err != nil {
			return "closed: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+tg.host+"\r\n"+hdr+"\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if line == "" && err != nil {
			return "closed: " + err.Error()
		}
		return strings.TrimSpace(line)
	}
	const many, maxRounds, maxBombs = 120, 30, 3000
	attackDone := make(chan struct{})
	var attackers sync.WaitGroup
	var mu sync.Mutex
	var rounds, refused, firstRefused int
	bombs := map[string]int{}
	var oddBombs []string
	attackers.Go(func() {
		for r := 0; r < maxRounds; r++ {
			select {
			case <-attackDone:
				return
			default:
			}
			var conns []net.Conn
			for range many {
				c, err := dialer.Dial("tcp", tg.addr)
				if err != nil {
					break
				}
				conns = append(conns, c)
			}
			// Each connection gets a second to be closed; those the listener
			// took in wait that long, in parallel.
			var n atomic.Int32
			var readers sync.WaitGroup
			for _, c := range conns {
				readers.Go(func() {
					c.SetReadDeadline(time.Now().Add(time.Second))
					if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeoutErr(err) {
						n.Add(1)
					}
				})
			}
			readers.Wait()
			for _, c := range conns {
				c.Close()
			}
			mu.Lock()
			if rounds == 0 {
				firstRefused = int(n.Load())
			}
			rounds++
			refused += int(n.Load())
			mu.Unlock()
		}
	})
	attackers.Go(func() {
		for i := 0; i < maxBombs; i++ {
			select {
			case <-attackDone:
				return
			default:
			}
			got := bomb(bombHdrs[i%2])
			mu.Lock()
			switch {
			case strings.Contains(got, " 431 "):
				bombs[bombKinds[i%2]+" 431"]++
			case strings.HasPrefix(got, "closed"):
				bombs[bombKinds[i%2]+" closed"]++
			default:
				bombs["other"]++
				if len(oddBombs) < 5 {
					oddBombs = append(oddBombs, got)
				}
			}
			mu.Unlock()
		}
	})

	// Every slow connection is closed by the header timeout.
	var worst time.Duration
	for _, c := range slow {
		c.SetReadDeadline(slowStart.Add(tg.header + 10*time.Second))
		_, err := io.Copy(io.Discard, c)
		if isTimeoutErr(err) {
			t.Errorf("a slowloris connection to %s was still open %v after it started (header timeout %v)", tg.name, time.Since(slowStart).Round(time.Millisecond), tg.header)
		}
		worst = max(worst, time.Since(slowStart))
		c.Close()
	}
	close(attackDone)
	attackers.Wait()
	stopGood()
	floodFor := time.Since(slowStart)

	// The first round ran while the 20 slow connections were open.
	if want := (many - tg.perSource) * 9 / 10; firstRefused < want {
		t.Errorf("%d of %d connections from one source closed at once in the first round, want at least %d (the cap is %d per source, %d slow ones open)", firstRefused, many, want, tg.perSource, len(slow))
	}
	if len(oddBombs) > 0 {
		t.Errorf("header bombs got %q, want 431 or a closed connection", oddBombs)
	}
	// A bomb's connection may be closed unanswered: the bomber's address
	// runs into its own per-source cap, since the server holds each
	// refused connection a moment (net/http's lingering close).
	if bombs["300 fields 431"] == 0 {
		t.Errorf("header bombs: %v, want 431 answers to 300 header fields", bombs)
	}
	rssAfter, peak := procMemory(t, tg.pid)
	if len(goodErrs) > 0 {
		t.Errorf("the well-behaved client failed %d times during the floods, first: %v", len(goodErrs), goodErrs[0])
	}
	if len(loaded) < 20 {
		t.Fatalf("the well-behaved client made only %d calls during the floods", len(loaded))
	}
	pu, pl := p99Of(unloaded), p99Of(loaded)
	t.Logf("%s: %v of floods: slowloris 20 connections all closed within %v of their start (header timeout %v); %d rounds of %d connections from one source, %d of them refused at once (%d in the first round; cap %d); header bombs %v",
		tg.name, floodFor.Round(time.Millisecond), worst.Round(time.Millisecond), tg.header, rounds, many, refused, firstRefused, tg.perSource, bombs)
	t.Logf("%s: well-behaved client p99 %v unloaded (%d calls), %v under the floods (%d calls): ratio %.2f (goal 2x; asserted: at most 8x or +250ms)",
		tg.name, pu.Round(time.Microsecond), len(unloaded), pl.Round(time.Microsecond), len(loaded), float64(pl)/float64(pu))
	t.Logf("%s: process %d memory: RSS %d KiB before the floods, %d KiB after, peak (VmHWM) %d KiB", tg.name, tg.pid, rssBefore, rssAfter, peak)
	if bound := max(8*pu, pu+250*time.Millisecond); pl > bound {
		t.Errorf("p99 under the floods %v is past %v (unloaded %v)", pl, bound, pu)
	}
	if peak-rssBefore > 64<<10 {
		t.Errorf("the peak RSS %d KiB is more than 64 MiB over the %d KiB before the floods", peak, rssBefore)
	}
}

func p99Of(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*99/100]
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// procMemory reads a process's resident set and its peak (VmRSS, VmHWM)
// in KiB from /proc.
func procMemory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the memory of process %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			rss = n
		case "VmHWM":
			peak = n
		}
	}
	return rss, peak
}

// proxyPids reads the pid of each service's proxy (sidecar or gateway)
// from the local adapter's state file.
func proxyPids(t *testing.T, dataDir string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "adapters", "local", "local-state.json"))
	if err != nil {
		t.Fatalf("reading the local adapter's state: %v", err)
	}
	var st struct {
		Instances []struct {
			Service string `json:"service"`
			Proxy   struct{ PID int }
		} `json:"instances"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("decoding the local adapter's state: %v", err)
	}
	pids := map[string]int{}
	for _, in := range st.Instances {
		pids[in.Service] = in.Proxy.PID
	}
	return pids
}

// metricValue is the value of the Prometheus series named exactly s in
// text, or -1.
func metricValue(text, s string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, s+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
