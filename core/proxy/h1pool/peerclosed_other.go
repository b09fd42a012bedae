//go:build !unix

package h1pool

import "net"

// peerClosed cannot look without blocking here; a stale connection is
// found when a request fails on it, and a bodiless request is sent again.
func peerClosed(net.Conn) bool { return false }
