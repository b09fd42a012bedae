package main

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// A node proxy's flags: each mistake is refused before anything starts,
// with what to do.
func TestNodeFlags(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	bundle := writeBundle(t, ca.RootPEM)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --serve", []string{"--node", "n1", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, "at least one --serve"},
		{"--serve without --node", []string{"--instance", "a", "--admin", "127.0.0.1:0", "--serve", "a=127.0.0.1:0", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, "--serve needs --node"},
		{"--instance with --node", []string{"--node", "n1", "--instance", "a", "--serve", "a=127.0.0.1:0", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, "drop --instance and --admin"},
		{"no admin address", []string{"--node", "n1", "--serve", "a", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, "want ID=ADMIN_HOST:PORT"},
		{"bad admin address", []string{"--node", "n1", "--serve", "a=nowhere", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, "the admin address"},
		{"an instance twice", []string{"--node", "n1", "--serve", "a=127.0.0.1:0", "--serve", "a=127.0.0.1:0", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, `instance "a" is given twice`},
		{"no trust bundle", []string{"--node", "n1", "--serve", "a=127.0.0.1:0", "--controller", "127.0.0.1:1"}, `"trust-bundle" not set`},
		{"with a gateway", []string{"--node", "n1", "--gateway", "g", "--serve", "a=127.0.0.1:0", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, "--node and --gateway"},
		{"admin port in use", []string{"--node", "n1", "--serve", "a=" + busyAddr(t), "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, "binding the admin listener of instance a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, stop := start(t, tc.args...)
			defer stop()
			if err := result(t, done); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("weft-proxy %v: %v, want an error saying %q", tc.args, err, tc.want)
			}
		})
	}
}

// busyAddr returns a loopback address held by a listener until the test
// ends.
func busyAddr(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return addr
}

// barrierCloser's Close returns only once every closer of its group has
// begun closing: closed one after another, the first would wait forever.
type barrierCloser struct {
	started *sync.WaitGroup
	closed  *atomic.Int32
}

func (b barrierCloser) Close() error {
	b.started.Done()
	b.started.Wait()
	b.closed.Add(1)
	return nil
}

// TestCloseAllDrainsAtOnce: a node proxy's instances drain together, not
// one drain timeout after another.
func TestCloseAllDrainsAtOnce(t *testing.T) {
	const n = 8
	var started sync.WaitGroup
	var closed atomic.Int32
	started.Add(n)
	cs := make([]io.Closer, n)
	for i := range cs {
		cs[i] = barrierCloser{&started, &closed}
	}
	done := make(chan struct{})
	go func() { closeAll(cs); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("closeAll did not return in 10 s: %d of %d closed (closed one at a time?)", closed.Load(), n)
	}
	if got := closed.Load(); got != n {
		t.Fatalf("%d of %d closed", got, n)
	}
}
