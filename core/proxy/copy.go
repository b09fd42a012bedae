package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/core/proxy/sockwait"
)

// The TCP pass-through's copy (pipe): each direction takes a buffer from
// copyBufs only while bytes flow, and waits for the next ones holding
// none, so that an idle connection costs its goroutines and crypto/tls's
// own state, not 32 KiB per direction (io.Copy's buffer, kept for the
// connection's life).
//
//   - From a socket (the app's connection, a plain TCP peer): the wait is
//     for readability (sockwait.Readable), then
//     one read into a pooled buffer, written on and given back.
//   - From a TLS connection: what crypto/tls holds already is taken into a
//     pooled buffer without waiting (drain: reads with a deadline already
//     past return at once what is decrypted or buffered in whole records,
//     and nothing from the socket), written on, and the buffer given
//     back; then the wait is for the socket under TLS to be readable, as
//     above (what crypto/tls holds then is at most part of a record, whose
//     rest is to come from the socket), then for one byte of data (a
//     record with none, a session ticket, is taken by crypto/tls), and
//     the rest is drained into a pooled buffer.
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
	isTLS, rc := sockwait.Under(src)
	if isTLS {
		return copyFromTLS(dst, src, rc)
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

func copyFromSocket(dst, src net.Conn, rc syscall.RawConn) (int64, error) {
	var total int64
	for {
		if err := sockwait.Readable(rc); err != nil {
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

func copyFromTLS(dst, src net.Conn, rc syscall.RawConn) (int64, error) {
	var total int64
	one := new([1]byte)
	held := true // crypto/tls may hold bytes: take them before waiting
	for {
		if !held && rc != nil {
			// crypto/tls holds nothing but a part of a record (drain
			// saw to it): the next bytes come from the socket.
			if err := sockwait.Readable(rc); err != nil {
				return total, err
			}
		}
		var m int
		var err error
		if !held {
			// One byte, holding no buffer yet: a record that carries
			// no data (a session ticket) is read and the wait goes on.
			m, err = src.Read(one[:])
			if m == 0 && err == nil {
				continue
			}
		}
		bp := copyBufs.Get().(*[]byte)
		b := *bp
		b[0] = one[0]
		if err == nil {
			var k int
			k, err = drain(src, b[m:])
			m += k
		}
		// A full buffer may have left bytes with crypto/tls.
		held = m == len(b)
		var werr error
		if m > 0 {
			_, werr = dst.Write(b[:m])
		}
		copyBufs.Put(bp)
		total += int64(m)
		switch {
		case werr != nil:
			return total, werr
		case errors.Is(err, io.EOF):
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// drain reads into b what the TLS connection src holds already, decrypted
// or in whole records, without waiting on its socket: reads with a
// deadline already past, which crypto/tls takes as a temporary error
// (the connection stays usable).
func drain(src net.Conn, b []byte) (int, error) {
	src.SetReadDeadline(past)
	defer src.SetReadDeadline(time.Time{})
	m := 0
	for m < len(b) {
		k, err := src.Read(b[m:])
		m += k
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			return m, err
		}
	}
	return m, nil
}
