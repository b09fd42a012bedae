package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// The TCP pass-through's copy (pipe): each direction takes a buffer from
// copyBufs only while bytes flow, and waits for the next ones holding
// none, so that an idle connection costs its goroutines and crypto/tls's
// own state, not 32 KiB per direction (io.Copy's buffer, kept for the
// connection's life).
//
//   - From a socket (the app's connection, a plain TCP peer): the wait is
//     for readability (waitReadable: a non-blocking peek when woken), then
//     one read into a pooled buffer, written on and given back.
//   - From a TLS connection: the wait is a read of one byte (crypto/tls
//     reads and decrypts the record into its own buffer); the rest of what
//     crypto/tls holds is then taken into a pooled buffer without waiting
//     (reads with a deadline already past, which return at once what is
//     decrypted or buffered and nothing from the socket), written on, and
//     the buffer given back.
//   - Anything else (a net.Pipe in a test): io.Copy with a pooled buffer.

// copyBufSize is a pooled copy buffer: one TLS record's plaintext at most,
// so that a read from TLS takes a record whole.
const copyBufSize = 16 << 10

var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, copyBufSize)
	return &b
}}

// past is a read deadline already over: a read with it returns at once.
var past = time.Unix(1, 0)

// copyIdle copies from src to dst until src ends (nil at EOF) or either
// fails, holding a buffer only while bytes flow.
func copyIdle(dst, src net.Conn) (int64, error) {
	isTLS, rc := under(src)
	if isTLS {
		return copyFromTLS(dst, src)
	}
	if rc != nil {
		return copyFromSocket(dst, src, rc)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, *bp)
}

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so that
// io.CopyBuffer uses the buffer it is given.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// under looks through c's wrappers (trackedConn, protect's): whether a
// TLS connection is under them, else the socket, if any.
func under(c net.Conn) (isTLS bool, rc syscall.RawConn) {
	for {
		if _, ok := c.(*tls.Conn); ok {
			return true, nil
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	return false, rc
}

func copyFromSocket(dst, src net.Conn, rc syscall.RawConn) (int64, error) {
	var total int64
	for {
		if err := waitReadable(rc); err != nil {
			return total, err
		}
		bp := copyBufs.Get().(*[]byte)
		n, err := src.Read(*bp)
		if n > 0 {
			if _, werr := dst.Write((*bp)[:n]); werr != nil {
				copyBufs.Put(bp)
				return total, werr
			}
			total += int64(n)
		}
		copyBufs.Put(bp)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}

func copyFromTLS(dst, src net.Conn) (int64, error) {
	var total int64
	one := new([1]byte)
	for {
		n, err := src.Read(one[:])
		if n == 0 {
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
		bp := copyBufs.Get().(*[]byte)
		b := *bp
		b[0] = one[0]
		m := 1
		// What crypto/tls holds already, without waiting on the socket.
		src.SetReadDeadline(past)
		var rerr error
		for m < len(b) {
			k, err := src.Read(b[m:])
			m += k
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					rerr = err
				}
				break
			}
		}
		src.SetReadDeadline(time.Time{})
		_, werr := dst.Write(b[:m])
		copyBufs.Put(bp)
		total += int64(m)
		if werr != nil {
			return total, werr
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, nil
			}
			return total, rerr
		}
	}
}
