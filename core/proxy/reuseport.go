package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Binding a listener beside another process's (Options.ReusePort).
//
// With SO_REUSEPORT on every socket of a port, several processes listen
// on it at once and the kernel spreads new connections between them (on
// Linux, by a hash of each connection's addresses). That is what lets a
// new weft-proxy start beside the old one and take new connections before
// the old one stops: the upgrade of a node proxy, which serves every
// instance of its node (docs/deployment-models.md).
//
// Who may join: Linux admits a socket to a port's group only if every
// socket already there set the option too and was bound by the same
// effective UID. A process of another user gets "address already in
// use", as without the option; the risk it adds is a process of the
// proxy's own user taking a share of the proxy's connections, and that
// process can already read the proxy's data directory and key. Run the
// proxy under a user of its own.
//
// What a closing listener costs: a connection the kernel has completed
// but the process has not accepted yet sits in that listener's queue.
// When the listener closes, Linux resets those connections unless
// net.ipv4.tcp_migrate_req is 1 (Linux 5.14 and later), which moves them
// to another listener of the group. The caller sees a reset; a caller
// sidecar retries it where its route's retry policy allows (reset and
// connect-failure are retried by default).

// ErrReusePortUnsupported is returned where the system has no
// SO_REUSEPORT with load balancing (anything but Linux).
var ErrReusePortUnsupported = errors.New("SO_REUSEPORT with load balancing between processes needs Linux")

// Listen binds a TCP listener on addr; with reusePort, with SO_REUSEPORT
// set before the bind, so that another process of the same user that sets
// it too may listen on the same port at the same time.
func Listen(ctx context.Context, addr string, reusePort bool) (net.Listener, error) {
	if !reusePort {
		return net.Listen("tcp", addr)
	}
	if !reusePortSupported {
		return nil, ErrReusePortUnsupported
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setReusePort(fd) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("setting SO_REUSEPORT: %w", serr)
		}
		return nil
	}}
	return lc.Listen(ctx, "tcp", addr)
}

// bindHint is what a failed bind's error adds: how to start a second
// proxy beside one that holds the port.
func bindHint(reusePort bool) string {
	if reusePort {
		return "another process holds the port without SO_REUSEPORT, or as another user: stop it, start it with --reuse-port under the same user, or change the port in the policy"
	}
	return "another process holds the port: stop it or change the port in the policy; to start a new proxy beside a running one (an upgrade), run both with --reuse-port"
}
