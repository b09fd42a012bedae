package refusals_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/refusals"
)

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{io.EOF, refusals.Closed},
		{fmt.Errorf("reading: %w", io.EOF), refusals.Closed},
		{errors.New("tls: first record does not look like a TLS handshake"), refusals.NotTLS},
		{errors.New("client sent an HTTP request to an HTTPS server"), refusals.NotTLS},
		{errors.New("tls: client didn't provide a certificate"), refusals.NoClientCertificate},
		{errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), refusals.BadCertificate},
		{errors.New("verifying peer certificate: x509: certificate has expired or is not yet valid"), refusals.BadCertificate},
		{errors.New("peer identity spiffe://other/ns/default/svc/web is not in trust domain \"weft.local\""), refusals.BadCertificate},
		{errors.New("remote error: tls: bad certificate"), refusals.PeerRejected},
		{os.ErrDeadlineExceeded, refusals.Timeout},
		{context.DeadlineExceeded, refusals.Timeout},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, refusals.Reset},
		{errors.New("tls: client offered only unsupported versions: [302 301]"), refusals.Protocol},
		{errors.New("something else"), refusals.Other},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := refusals.Reason(tc.err); got != tc.want {
				t.Errorf("Reason(%v) = %s, want %s", tc.err, got, tc.want)
			}
			if !strings.Contains(strings.Join(refusals.Reasons, " "), tc.want) {
				t.Errorf("%s is not in Reasons", tc.want)
			}
		})
	}
}

// lines collects what a Log writes.
type lines struct {
	mu  sync.Mutex
	all []string
	got chan struct{}
}

func newLines() *lines { return &lines{got: make(chan struct{}, 1<<16)} }

func (l *lines) logf(format string, args ...any) {
	l.mu.Lock()
	l.all = append(l.all, fmt.Sprintf(format, args...))
	l.mu.Unlock()
	l.got <- struct{}{}
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

var summary = regexp.MustCompile(`^inbound: (\d+) more refused handshakes in the last 100ms, last from (\S+): (.+)$`)

// logged is how many refusals the lines account for: one per plain line,
// N per summary.
func logged(ls []string) int {
	n := 0
	for _, l := range ls {
		if m := summary.FindStringSubmatch(l); m != nil {
			k, _ := strconv.Atoi(m[1])
			n += k
		} else {
			n++
		}
	}
	return n
}

// waitLogged waits until the lines account for want refusals.
func waitLogged(t *testing.T, ls *lines, want int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := ls.snapshot(); logged(got) >= want {
			return got
		}
		select {
		case <-ls.got:
		case <-deadline:
			t.Fatalf("the log accounts for %d refusals after 10s, want %d:\n%s", logged(ls.snapshot()), want, strings.Join(ls.snapshot(), "\n"))
		}
	}
}

func TestLogRateLimits(t *testing.T) {
	ls := newLines()
	var counted sync.Map
	l := refusals.New(refusals.Options{Prefix: "inbound: ", Logf: ls.logf, Every: 100 * time.Millisecond,
		Counted: func(r string) { v, _ := counted.LoadOrStore(r, new(int)); *(v.(*int))++ }})
	defer l.Close()
	bad := errors.New("tls: first record does not look like a TLS handshake")
	for i := 0; i < 500; i++ {
		l.Refused("127.0.0.1:"+strconv.Itoa(20000+i), bad)
	}
	got := waitLogged(t, ls, 500)
	if len(got) > 5 {
		t.Errorf("500 refusals wrote %d lines, want at most 5:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got[0] != "inbound: refused connection from 127.0.0.1:20000: TLS handshake: "+bad.Error() {
		t.Errorf("first line %q", got[0])
	}
	if m := summary.FindStringSubmatch(got[len(got)-1]); m == nil || m[2] != "127.0.0.1:20499" {
		t.Errorf("last line %q, want a summary naming the last address", got[len(got)-1])
	}
	c := l.Counts()
	if c.Total != 500 || c.ByReason[refusals.NotTLS] != 500 || len(c.ByReason) != 1 {
		t.Errorf("counts %+v, want 500 not_tls", c)
	}
	if v, _ := counted.Load(refusals.NotTLS); v == nil || *(v.(*int)) != 500 {
		t.Errorf("Counted saw %v not_tls, want 500", v)
	}

	// The first refusal is written at once (Logf runs inside Refused), the
	// next one of the same period is held back.
	ls2 := newLines()
	l2 := refusals.New(refusals.Options{Prefix: "inbound: ", Logf: ls2.logf, Every: time.Hour})
	defer l2.Close()
	l2.Refused("127.0.0.1:1", bad)
	l2.Refused("127.0.0.1:2", bad)
	if got := ls2.snapshot(); len(got) != 1 || !strings.HasPrefix(got[0], "inbound: refused connection from 127.0.0.1:1:") {
		t.Errorf("two refusals in one period wrote %q, want the first at once", got)
	}
	l2.Close()
	if got := ls2.snapshot(); len(got) != 2 || !strings.HasPrefix(got[1], "inbound: 1 more refused handshakes in the last 1h0m0s, last from 127.0.0.1:2") {
		t.Errorf("Close wrote %q, want the summary of what was held back", got)
	}
	after := ls.snapshot()

	// A connection closed before a byte is counted, not written.
	l.Refused("127.0.0.1:2", io.EOF)
	if c := l.Counts(); c.ByReason[refusals.Closed] != 1 {
		t.Errorf("counts %+v, want one closed", c)
	}
	l.Close()
	if got := ls.snapshot(); len(got) != len(after) {
		t.Errorf("a closed connection was written: %q", got[len(after):])
	}
}

// TestHTTPErrorLog: an HTTPS server's handshake errors go through the Log,
// its other lines elsewhere.
func TestHTTPErrorLog(t *testing.T) {
	ls := newLines()
	l := refusals.New(refusals.Options{Prefix: "admin API: ", Logf: ls.logf, Every: 100 * time.Millisecond})
	defer l.Close()
	var other strings.Builder
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = refusals.HTTPErrorLog(l, &other)
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	for i := 0; i < 50; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		io.ReadAll(c) // the server answers 400 and closes
		c.Close()
	}
	// and one that does TLS but trusts another CA: the server sees our alert
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "example.com"})
	if err == nil {
		c.Close()
		t.Fatal("a client without the test CA completed a handshake")
	}
	deadline := time.After(10 * time.Second)
	for l.Counts().Total < 51 {
		select {
		case <-ls.got:
		case <-deadline:
			t.Fatalf("counts %+v after 10s, want 51 refusals", l.Counts())
		case <-time.After(10 * time.Millisecond): // the server logs after it answers
		}
	}
	c2 := l.Counts()
	if c2.ByReason[refusals.NotTLS] != 50 || c2.ByReason[refusals.PeerRejected] != 1 {
		t.Errorf("counts %+v, want 50 not_tls and 1 peer_rejected", c2)
	}
	if strings.Contains(other.String(), "TLS handshake error") {
		t.Errorf("handshake errors reached the other log:\n%s", other.String())
	}
}
