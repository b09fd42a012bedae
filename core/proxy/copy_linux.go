//go:build linux

package proxy

import (
	"syscall"
	"unsafe"
)

// waitReadable parks until the socket has bytes to read, its peer closed
// it, or it failed (what the next read then says), holding no buffer: a
// non-blocking peek of one byte each time the poller wakes it.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(func(fd uintptr) bool {
		var b byte
		_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return e != syscall.EAGAIN && e != syscall.EINTR
	})
}
