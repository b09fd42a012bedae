package sockwait

import (
	"syscall"
	"unsafe"
)

// Supported: Readable waits.
const Supported = true

// Readable parks until the socket has bytes to read, its peer closed it,
// or it failed (what the next read then says): a non-blocking peek of one
// byte each time the poller wakes it. The socket's read deadline bounds
// the wait (os.ErrDeadlineExceeded), and closing it ends the wait
// (net.ErrClosed).
func Readable(rc syscall.RawConn) error {
	return rc.Read(peek)
}

func peek(fd uintptr) bool {
	var b byte
	_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e != syscall.EAGAIN
}
