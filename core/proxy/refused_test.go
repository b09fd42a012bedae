package proxy_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
)

// A flood of refused handshakes at the inbound listener writes a handful
// of log lines, not one per connection, and every refusal is counted by
// reason on /metrics.
func TestInboundRefusalFloodIsRateLimited(t *testing.T) {
	m := newMesh(t, listen(t).Addr(), meshapi.Protocol_PROTOCOL_TCP, &meshapi.Authz{DefaultAction: meshapi.Action_ACTION_ALLOW})
	target := m.server.Addr(proxy.KeyInbound).String()
	const plaintext, noCert = 400, 100

	var wg sync.WaitGroup
	jobs := make(chan bool, plaintext+noCert) // true: TLS without a certificate
	for i := 0; i < plaintext+noCert; i++ {
		jobs <- i%5 == 0
	}
	close(jobs)
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for tlsNoCert := range jobs {
				raw, err := net.DialTimeout("tcp", target, wait)
				if err != nil {
					t.Error(err)
					return
				}
				raw.SetDeadline(time.Now().Add(wait))
				if tlsNoCert {
					c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) // the server's side is under test
					if err := c.Handshake(); err == nil {
						_, err = c.Read(make([]byte, 1)) // TLS 1.3: the refusal comes with the first read
					}
				} else {
					io.WriteString(raw, "GET / HTTP/1.1\r\nHost: api\r\n\r\n")
					io.Copy(io.Discard, raw) // until the sidecar closes it
				}
				raw.Close()
			}
		})
	}
	wg.Wait()

	metric := func(reason string) int {
		rec := httptest.NewRecorder()
		m.server.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		re := regexp.MustCompile(`weft_inbound_handshakes_refused_total\{reason="` + reason + `"\} (\d+)`)
		sm := re.FindStringSubmatch(rec.Body.String())
		if sm == nil {
			t.Fatalf("/metrics has no weft_inbound_handshakes_refused_total{reason=%q}:\n%s", reason, rec.Body)
		}
		n, _ := strconv.Atoi(sm[1])
		return n
	}
	// The sidecar counts a refusal when its handshake returns, which may
	// be just after the client saw the connection close.
	deadline := time.Now().Add(wait)
	for metric("not_tls") != plaintext || metric("no_client_certificate") != noCert {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: not_tls %d, want %d; no_client_certificate %d, want %d", wait, metric("not_tls"), plaintext, metric("no_client_certificate"), noCert)
		}
		time.Sleep(10 * time.Millisecond) // polling a counter: bounded by deadline
	}
	if n := metric("bad_certificate"); n != 0 {
		t.Errorf("bad_certificate %d, want 0", n)
	}

	// Every refusal is in the log, as a line or in a summary's count, in
	// at most a handful of lines.
	summary := regexp.MustCompile(`inbound: (\d+) more refused handshakes in the last 1s, last from 127\.0\.0\.1:\d+: `)
	var lines []string
	deadline = time.Now().Add(wait)
	for {
		lines = lines[:0]
		accounted := 0
		for _, l := range strings.Split(m.serverLog.String(), "\n") {
			if strings.Contains(l, "refused connection from") {
				lines = append(lines, l)
				accounted++
			} else if sm := summary.FindStringSubmatch(l); sm != nil {
				lines = append(lines, l)
				n, _ := strconv.Atoi(sm[1])
				accounted += n
			}
		}
		if accounted == plaintext+noCert {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the log accounts for %d refusals, want %d:\n%s", wait, accounted, plaintext+noCert, strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond) // the summary comes at the end of its second
	}
	if len(lines) > 6 {
		t.Errorf("%d refusals wrote %d log lines, want at most 6:\n%s", plaintext+noCert, len(lines), strings.Join(lines, "\n"))
	}
	t.Logf("%d refused handshakes, %d log lines:\n%s", plaintext+noCert, len(lines), strings.Join(lines, "\n"))
}
