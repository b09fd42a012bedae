package e2e

import (
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// A flood of bad handshakes at the controller's two APIs writes a handful
// of log lines, not one per connection, and GET /v1/status counts every
// one of them by reason.
func TestRefusedHandshakeFlood(t *testing.T) {
	dir := t.TempDir()
	harness.WriteFile(t, filepath.Join(dir, "mesh.hcl"), "mesh {}\n")
	ctl := startController(t, filepath.Join(dir, "data"), harness.FreeAddr(t), harness.FreeAddr(t), "--policy-dir", dir)
	ctl.WaitFor(t, "the controller to serve", 30*time.Second, func(*harness.Status) bool { return true })

	const toSidecarAPI, toAdminAPI = 500, 100
	flood(t, ctl.Listen, toSidecarAPI)
	flood(t, ctl.Admin, toAdminAPI)

	s := ctl.WaitFor(t, "every refusal counted", 30*time.Second, func(s *harness.Status) bool {
		return s.RefusedHandshakes["sidecar_api"].Total == toSidecarAPI && s.RefusedHandshakes["admin_api"].Total == toAdminAPI
	})
	if n := s.RefusedHandshakes["sidecar_api"].ByReason["not_tls"]; n != toSidecarAPI {
		t.Errorf("sidecar API: %d not_tls, want %d: %+v", n, toSidecarAPI, s.RefusedHandshakes)
	}
	if n := s.RefusedHandshakes["admin_api"].ByReason["not_tls"]; n != toAdminAPI {
		t.Errorf("admin API: %d not_tls, want %d: %+v", n, toAdminAPI, s.RefusedHandshakes)
	}
	if out, err := runWeft(t, "status", "--admin", ctl.Admin, "--data-dir", ctl.DataDir); err != nil ||
		!strings.Contains(out, "refused handshakes: sidecar API 500 (not_tls 500); admin API 100 (not_tls 100)") {
		t.Errorf("weft status does not show the refusals: %v\n%s", err, out)
	}

	// Every refusal is in the log, as a line or in a summary's count.
	for _, api := range []struct {
		prefix string
		want   int
	}{{"sidecar API: ", toSidecarAPI}, {"admin API: ", toAdminAPI}} {
		summary := regexp.MustCompile(regexp.QuoteMeta(api.prefix) + `(\d+) more refused handshakes in the last 1s, last from 127\.0\.0\.1:\d+: `)
		var lines []string
		deadline := time.Now().Add(30 * time.Second)
		for {
			lines = lines[:0]
			accounted := 0
			for _, l := range strings.Split(ctl.Out.String(), "\n") {
				if strings.Contains(l, api.prefix+"refused connection from") {
					lines = append(lines, l)
					accounted++
				} else if sm := summary.FindStringSubmatch(l); sm != nil {
					lines = append(lines, l)
					n, _ := strconv.Atoi(sm[1])
					accounted += n
				}
			}
			if accounted == api.want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%sthe log accounts for %d refusals, want %d:\n%s", api.prefix, accounted, api.want, strings.Join(lines, "\n"))
			}
			select {
			case <-ctl.Exited():
				t.Fatal("the controller exited")
			case <-time.After(100 * time.Millisecond): // a summary comes at the end of its second
			}
		}
		if len(lines) > 6 {
			t.Errorf("%s%d refusals wrote %d lines, want at most 6:\n%s", api.prefix, api.want, len(lines), strings.Join(lines, "\n"))
		}
		t.Logf("%s%d refusals, %d log lines", api.prefix, api.want, len(lines))
	}
}

// flood opens n connections to addr that send plaintext where TLS is
// expected, 8 at a time, each until the server closes it.
func flood(t *testing.T, addr string, n int) {
	t.Helper()
	jobs := make(chan int, n)
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for range jobs {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: weft\r\n\r\n")
				io.Copy(io.Discard, c)
				c.Close()
			}
		})
	}
	wg.Wait()
}
