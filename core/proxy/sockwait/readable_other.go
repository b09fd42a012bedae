//go:build !linux

package sockwait

import "syscall"

// Supported: Readable waits.
const Supported = false

// Readable returns at once where a socket is not peeked at: the caller's
// read waits.
func Readable(syscall.RawConn) error { return nil }
