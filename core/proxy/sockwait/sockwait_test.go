package sockwait_test

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/proxy/sockwait"
)

// wait bounds every wait in these tests.
const wait = 10 * time.Second

// pair is a loopback TCP connection's two ends.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(wait))
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func raw(t *testing.T, c net.Conn) syscall.RawConn {
	t.Helper()
	isTLS, rc := sockwait.Under(c)
	if isTLS || rc == nil {
		t.Fatalf("Under(%T) = %v, %v; want the socket and no TLS", c, isTLS, rc)
	}
	return rc
}

// wrapped is a wrapper that names what it wraps, as the listeners' are.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

func TestUnder(t *testing.T) {
	client, _ := pair(t)
	tests := []struct {
		name        string
		c           net.Conn
		tls, socket bool
	}{
		{"socket", client, false, true},
		{"wrapped socket", wrapped{wrapped{client}}, false, true},
		{"TLS over a wrapped socket", tls.Client(wrapped{client}, &tls.Config{}), true, true},
		{"wrapped TLS", wrapped{tls.Client(client, &tls.Config{})}, true, true},
		{"pipe", func() net.Conn { a, b := net.Pipe(); b.Close(); return a }(), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isTLS, rc := sockwait.Under(tt.c)
			if isTLS != tt.tls || (rc != nil) != tt.socket {
				t.Errorf("Under = TLS %v, socket %v; want %v, %v", isTLS, rc != nil, tt.tls, tt.socket)
			}
		})
	}
}

// TestReadable: the wait ends with the read deadline when nothing comes,
// when bytes come (which it leaves for the read), when the peer closes,
// and with an error when the connection is closed under it.
func TestReadable(t *testing.T) {
	if !sockwait.Supported {
		t.Skip("Readable does not wait on this system")
	}
	client, server := pair(t)
	rc := raw(t, server)

	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := sockwait.Readable(rc); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("waiting with nothing sent: %v, want the deadline", err)
	}
	server.SetReadDeadline(time.Now().Add(wait))

	done := make(chan error, 1)
	go func() { done <- sockwait.Readable(rc) }()
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting for a byte sent: %v", err)
	}
	var b [2]byte
	if n, err := server.Read(b[:]); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("read after the wait: %d %q %v, want the byte the wait saw", n, b[:n], err)
	}

	client.Close()
	if err := sockwait.Readable(rc); err != nil {
		t.Fatalf("waiting after the peer closed: %v, want nil (the read says EOF)", err)
	}

	other, _ := pair(t)
	orc := raw(t, other)
	go func() { done <- sockwait.Readable(orc) }()
	other.Close()
	if err := <-done; err == nil {
		t.Fatal("waiting on a connection closed under the wait: nil, want an error")
	}
}
