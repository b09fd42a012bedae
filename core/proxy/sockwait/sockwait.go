package sockwait

import (
	"crypto/tls"
	"net"
	"syscall"
)

// Under looks through c's wrappers (any with a NetConn method, as
// crypto/tls's Conn has): whether a TLS connection is among them, and the
// socket beneath, nil when there is none (a net.Pipe).
func Under(c net.Conn) (isTLS bool, rc syscall.RawConn) {
	for {
		if _, ok := c.(*tls.Conn); ok {
			isTLS = true
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return isTLS, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return isTLS, nil
	}
	return isTLS, rc
}
