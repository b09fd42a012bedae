//go:build !linux

package proxy

import "syscall"

// waitReadable does not wait where a socket cannot be peeked at: the read
// that follows waits, holding its buffer.
func waitReadable(syscall.RawConn) error { return nil }
