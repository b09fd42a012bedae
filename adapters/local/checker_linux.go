package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialAsGroup connects to addr (an IPv4 loopback address and port) with a
// socket created under group gid, which is what
// the guard's rules match (meta skgid: the group the socket was created
// with). The group is the thread's filesystem group for the one socket()
// call, on a locked thread, so no other goroutine runs with it.
func dialAsGroup(ctx context.Context, gid int, addr string) (net.Conn, error) {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil || ap.IP.To4() == nil {
		return nil, fmt.Errorf("dialing %s: not an IPv4 address and port", addr)
	}
	fd, err := socketAs(gid)
	if err != nil {
		return nil, err
	}
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	// Wait for the connection with the context's deadline.
	timeout := -1
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(int(time.Until(dl).Milliseconds()), 1)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		n, err := unix.Poll(pfd, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			unix.Close(fd)
			if err == nil {
				err = os.ErrDeadlineExceeded
			}
			return nil, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		break
	}
	if soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soErr != 0 {
		unix.Close(fd)
		if err == nil {
			err = syscall.Errno(soErr)
		}
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	f := os.NewFile(uintptr(fd), "check "+addr)
	defer f.Close() // FileConn dups it
	return net.FileConn(f)
}

// socketAs creates a non-blocking TCP socket with gid as the filesystem
// group of the thread that creates it. That thread runs a goroutine of
// its own, locked to it: if its group cannot be restored, the goroutine
// ends locked and the thread ends with it.
func socketAs(gid int) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		old, _ := unix.SetfsgidRetGid(gid)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		set, _ := unix.SetfsgidRetGid(old)
		restored, _ := unix.SetfsgidRetGid(old) // reads it back: set again to the same
		if set != gid || restored != old {
			if err == nil {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("creating a socket as group %d: the thread's group could not be set", gid)}
			return // locked: the thread ends with the goroutine
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("creating a socket: %w", err)
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}
