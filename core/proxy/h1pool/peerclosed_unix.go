//go:build unix

package h1pool

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peerClosed reports whether the peer of an idle connection has closed it
// or sent something unasked (which a keep-alive peer does only to close):
// one non-blocking read on the socket, which finds nothing on a live one.
func peerClosed(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, rerr := syscall.Read(int(fd), buf[:])
		closed = n > 0 || (n == 0 && rerr == nil) || (rerr != nil && rerr != syscall.EAGAIN && rerr != syscall.EINTR)
		return true // never wait
	})
	return closed || err != nil
}
