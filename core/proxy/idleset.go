package proxy

import (
	"net"
	"sync"
)

// idleSet holds a byte-level listener's connections that wait for their
// next request (the inbound's, the outbound's and a gateway's), so that
// shutting the listener down closes them at once, as net/http's Shutdown
// closes its idle connections; a connection still in an exchange then is
// told, when it would wait again, to close instead.
type idleSet struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
}

// idle notes conn waiting for a request (idle) or no longer; it reports
// false, and keeps nothing, once the listener is closing: the connection
// must close rather than wait.
func (s *idleSet) idle(conn net.Conn, idle bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !idle {
		delete(s.conns, conn)
		return true
	}
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[conn] = struct{}{}
	return true
}

// closeAll closes the waiting connections and has the others close when
// their exchange ends.
func (s *idleSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for c := range s.conns {
		c.Close()
	}
}
